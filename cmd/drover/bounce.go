package main

import (
	"bufio"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"drover/bounce"
)

// newBounceCmd returns `drover bounce`, the admin commands of package
// bounce.
func newBounceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bounce",
		Short: "Bounce classification tools",
	}
	cmd.AddCommand(newBounceClassifyCmd())
	return cmd
}

// newBounceClassifyCmd returns `drover bounce classify`: it reads one raw
// message on stdin (an mbox "From " line is allowed, LF or CRLF) and
// prints one JSON line per recipient the message reports on, the
// contract of shared/corpus/bounces/score. A message that is no bounce,
// feedback report or auto-reply prints nothing and exits 0; only I/O
// errors exit non-zero.
func newBounceClassifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "classify",
		Short: "Classify one bounce, feedback report or auto-reply read on stdin",
		Long: `Reads one raw message on stdin and prints one JSON object per line for
each recipient it reports on, e.g.
  {"recipient":"user@example.org","status":"5.1.1","replycode":"550","reason":"userunknown","class":"hard","category":"bad-mailbox",...}
Nothing is printed for a message that is not a bounce.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), bounce.MaxMessageSize))
			if err != nil {
				return fmt.Errorf("reading the message from stdin: %w", err)
			}
			res, _ := bounce.ParseMessage(raw) // not a message: nothing to print
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, c := range res {
				w.Write(c.JSON())
				w.WriteByte('\n')
			}
			if err := w.Flush(); err != nil {
				return fmt.Errorf("writing the result: %w", err)
			}
			return nil
		},
	}
}
