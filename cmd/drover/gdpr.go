package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"drover/configs"
	"drover/httpapi"
	"drover/mta"
	"drover/policy"
	"drover/queue"
)

// gdprExport is what Drover holds about one address, over its stores:
// policy's records, the spool and the mail log.
type gdprExport struct {
	Exported time.Time `json:"exported"`
	*policy.Held
	Queued  []queue.Listed    `json:"queued"`
	MailLog []json.RawMessage `json:"mail_log"`
}

// gdprStores answers the admin API's data subject requests.
type gdprStores struct {
	pol     *policy.Policy
	spool   *queue.Spool
	senders []string
	mailLog string // the mail log's path ("-" or "off": not searched)
	log     *mta.MailLog
}

// Erase erases addr from every store (GDPR art. 17): policy's records
// (a keyed hash stays, so the address stays suppressed), the recipients
// queued to it, the mail-log lines that name it (redacted in place,
// rotated files included), and then the deleted values from the
// database's files (a flush and a compaction of everything).
func (g gdprStores) Erase(addr string) (any, error) {
	a, err := policy.Canonical(addr)
	if err != nil {
		return nil, &policy.InvalidConsentError{Msg: err.Error()}
	}
	if err := g.pol.Erase(a); err != nil {
		return nil, err
	}
	n, err := g.spool.Delete(queue.Selector{Recipient: a}, nil, false, nil)
	if err != nil {
		return nil, fmt.Errorf("deleting the queued recipients: %w", err)
	}
	if err := g.log.Redact(a, "[erased]"); err != nil {
		return nil, fmt.Errorf("redacting the mail log: %w", err)
	}
	if err := g.pol.Purge(); err != nil {
		return nil, fmt.Errorf("compacting the database: %w", err)
	}
	return map[string]any{"erased": true, "queued_deleted": n}, nil
}

func (g gdprStores) Export(addr string) (any, error) {
	held, err := g.pol.Held(addr, g.senders)
	if err != nil {
		return nil, err
	}
	out := &gdprExport{Exported: time.Now().UTC(), Held: held, Queued: []queue.Listed{}, MailLog: []json.RawMessage{}}
	after := ""
	for {
		page, err := g.spool.List(queue.ListOptions{Selector: queue.Selector{Recipient: held.Address}, After: after, Limit: queue.MaxListLimit}, nil)
		if err != nil {
			return nil, err
		}
		out.Queued = append(out.Queued, page.Messages...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if out.MailLog, err = mailLogLines(g.mailLog, held.Address); err != nil {
		return nil, err
	}
	return out, nil
}

// mailLogLines are the lines of the mail log, its rotated files
// included, that name addr (without regard to case), oldest file first.
func mailLogLines(path, addr string) ([]json.RawMessage, error) {
	lines := []json.RawMessage{}
	if path == "-" || path == "off" {
		return lines, nil
	}
	files, _ := filepath.Glob(path + ".*")
	slices.Sort(files)
	needle := []byte(strings.ToLower(addr))
	for _, f := range append(files, path) {
		if err := scanLines(f, func(line []byte) {
			if bytes.Contains(bytes.ToLower(line), needle) && json.Valid(line) {
				lines = append(lines, json.RawMessage(bytes.Clone(line)))
			}
		}); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

// scanLines calls fn for each line of file (a missing file has none).
func scanLines(file string, fn func([]byte)) error {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	return sc.Err()
}

// gdprAPI is the admin API's GDPR side; nil when list hygiene is off.
func gdprAPI(pol *policy.Policy, spool *queue.Spool, cfg *configs.Config, log *mta.MailLog) httpapi.GDPR {
	if pol == nil {
		return nil
	}
	return gdprStores{pol: pol, spool: spool, senders: slices.Sorted(maps.Keys(cfg.Senders)), mailLog: mailLogPath(cfg), log: log}
}

func newGDPRCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "gdpr", Short: "Data subject requests: what Drover holds about an address (admin API)"}
	client := addAdminFlags(cmd)
	var out string
	export := &cobra.Command{
		Use:   "export ADDRESS",
		Short: "Everything Drover holds about an address, as JSON (GDPR art. 15): consent with proof, suppressions, counters, engagement, queued mail, mail-log lines",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			if err := client.get(cmd.Context(), "/v1/gdpr/export?"+url.Values{"address": {args[0]}}.Encode(), &raw); err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			if err := writeFileAtomic(out, raw, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d bytes\n", cmp.Or(out, "-"), len(raw))
			return nil
		},
	}
	export.Flags().StringVarP(&out, "out", "o", "", "write the JSON to this file (mode 0600) instead of standard output")
	var yes bool
	erase := &cobra.Command{
		Use:   "erase ADDRESS --yes",
		Short: "Erase an address from every store (GDPR art. 17); a keyed hash keeps it suppressed. It cannot be undone",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("erasure cannot be undone: give --yes")
			}
			var res struct {
				QueuedDeleted int `json:"queued_deleted"`
			}
			if err := client.post(cmd.Context(), "/v1/gdpr/erase", map[string]string{"address": args[0]}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s erased (%d queued recipients deleted)\n", args[0], res.QueuedDeleted)
			return nil
		},
	}
	erase.Flags().BoolVar(&yes, "yes", false, "erase: it cannot be undone")
	cmd.AddCommand(export, erase)
	return cmd
}
