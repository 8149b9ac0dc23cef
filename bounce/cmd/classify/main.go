// Command classify is the corpus score harness of package bounce: it
// reads one raw message on stdin and prints one JSON line per recipient,
// the contract of shared/corpus/bounces/score. `drover bounce classify`
// does the same inside the main binary.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"drover/bounce"
)

func main() {
	raw, err := io.ReadAll(io.LimitReader(os.Stdin, bounce.MaxMessageSize))
	if err != nil {
		fmt.Fprintln(os.Stderr, "classify: reading stdin:", err)
		os.Exit(1)
	}
	res, _ := bounce.ParseMessage(raw)
	w := bufio.NewWriter(os.Stdout)
	for _, c := range res {
		w.Write(c.JSON())
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "classify:", err)
		os.Exit(1)
	}
}
