package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

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
		Use:   "classify [FILE]",
		Short: "Classify one bounce, feedback report or auto-reply (from FILE, or stdin)",
		Long: `Reads one raw message from FILE (stdin without FILE, or with "-") and
prints one JSON object per line for
each recipient it reports on, e.g.
  {"recipient":"user@example.org","status":"5.1.1","reply_code":"550","reason":"userunknown","class":"hard","category":"bad-mailbox",...}
Nothing is printed for a message that is not a bounce.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, from := cmd.InOrStdin(), "stdin"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in, from = f, args[0]
			}
			raw, err := io.ReadAll(io.LimitReader(in, bounce.MaxMessageSize))
			if err != nil {
				return fmt.Errorf("reading the message from %s: %w", from, err)
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
