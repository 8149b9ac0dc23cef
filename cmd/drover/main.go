// Command drover is the Drover mail transfer agent: `drover serve` runs it,
// the other subcommands administer it (queue, config, DKIM keys, bounce
// classification, password hashes).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "drover",
		Short:         "Drover: a mail transfer agent for campaign and lifecycle mail",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newConfigCmd(), newQueueCmd(), newDKIMCmd(), newBounceCmd(), newPasswdCmd(), newVersionCmd(), newReloadCmd(), newLinksCmd(), newFormCmd(), newGDPRCmd(), newMailingListCmd())
	root.AddCommand(newSuppressionCmd())
	root.AddCommand(newConsentCmd())
	root.AddCommand(newHygieneCmd())
	root.AddCommand(newEventsCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "drover:", err)
		if pe := (*pendingError)(nil); errors.As(err, &pe) {
			os.Exit(exitPending)
		}
		os.Exit(1)
	}
}
