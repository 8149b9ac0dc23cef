package main

// drover suppression ...: the suppression list of a running server,
// through the admin API (/v1/suppressions).

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"drover/httpapi"
	"drover/policy"
)

func newSuppressionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "suppression",
		Short: "Manage the suppression list of a running server (admin API)",
		Long: `Manage the suppression list of a running server (admin API).

An entry suppresses an address in a scope: global (every sender), sender
(one sender's mail) or list (one list of one sender), for a reason:
` + strings.Join(reasonStrings(), ", ") + `.
--scope defaults to what --sender and --list name.`,
	}
	client := addAdminFlags(cmd)
	cmd.AddCommand(newSuppressionAddCmd(client), newSuppressionRemoveCmd(client), newSuppressionLsCmd(client),
		newSuppressionShowCmd(client), newSuppressionImportCmd(client), newSuppressionExportCmd(client))
	return cmd
}

func reasonStrings() []string {
	out := make([]string, len(policy.Reasons))
	for i, r := range policy.Reasons {
		out[i] = string(r)
	}
	return out
}

// entryFlags are the scope and reason flags of the suppression commands.
type entryFlags struct {
	scope, sender, list, reason string
}

func (e *entryFlags) add(f *pflag.FlagSet, reasonDefault, verb string) {
	f.StringVar(&e.sender, "sender", "", "sender (account) name: "+verb+" the entries of this sender")
	f.StringVar(&e.list, "list", "", "list of the sender (X-Drover-List)")
	f.StringVar(&e.reason, "reason", reasonDefault, "reason: "+strings.Join(reasonStrings(), ", "))
	f.StringVar(&e.scope, "scope", "", "global, sender or list (default: from --sender and --list)")
}

// query is the flags as the API's parameters.
func (e *entryFlags) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"scope": e.scope, "sender": e.sender, "list": e.list, "reason": e.reason} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// pathQuery joins a path and its query.
func pathQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func dash(s string) string { return cmp.Or(s, "-") }

// printEntries prints entries as a table.
func printEntries(w io.Writer, header bool, es []policy.Entry) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "ADDRESS\tSCOPE\tSENDER\tLIST\tREASON\tSOURCE\tTIME")
	}
	for _, e := range es {
		entryRow(tw, e)
	}
	return tw
}

// entryRow prints an entry as a row of printEntries' table.
func entryRow(tw io.Writer, e policy.Entry) {
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Address, e.Kind, dash(e.Sender), dash(e.List), e.Reason, dash(e.Source),
		e.Time.Local().Format(time.DateTime))
}

// entryWords describes an entry in a line: "unsubscribed (list news of sender shop)".
func entryWords(e policy.Entry) string {
	switch e.Kind {
	case policy.PerList:
		return fmt.Sprintf("%s (list %s of sender %s)", e.Reason, e.List, e.Sender)
	case policy.PerSender:
		return fmt.Sprintf("%s (sender %s)", e.Reason, e.Sender)
	}
	return fmt.Sprintf("%s (global)", e.Reason)
}

func newSuppressionAddCmd(client *adminClient) *cobra.Command {
	var ef entryFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add ADDRESS...",
		Short: "Suppress addresses (all or none: a bad address adds nothing)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			es := make([]policy.Entry, len(args))
			for i, a := range args {
				es[i] = policy.Entry{Address: a, Scope: policy.Scope{Kind: policy.ScopeKind(ef.scope), Sender: ef.sender, List: ef.list},
					Reason: policy.Reason(ef.reason)}
			}
			var resp struct {
				Added      int            `json:"added"`
				Duplicates int            `json:"duplicates"`
				Entries    []policy.Entry `json:"entries"`
			}
			if err := client.post(cmd.Context(), "/v1/suppressions", map[string]any{"entries": es}, &resp); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp)
			}
			for _, e := range resp.Entries {
				fmt.Fprintf(w, "suppressed %s: %s\n", e.Address, entryWords(e))
			}
			fmt.Fprintf(w, "%d added, %d already suppressed\n", resp.Added, resp.Duplicates)
			return nil
		},
	}
	ef.add(cmd.Flags(), string(policy.Manual), "suppress for")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newSuppressionRemoveCmd(client *adminClient) *cobra.Command {
	var ef entryFlags
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "remove ADDRESS",
		Short: "Remove an address's suppressions (those that match the flags; every one without)",
		Long: `Remove an address's suppressions: those that match --scope, --sender, --list
and --reason, every one without them. An unsubscribe or a complaint is the
recipient's own wish: removing one needs --force. Each removal is an event.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ef.query()
			if force {
				q.Set("force", "true")
			}
			var resp struct {
				Removed []policy.Entry `json:"removed"`
			}
			err := client.do(cmd.Context(), "DELETE", pathQuery("/v1/suppressions/"+url.PathEscape(args[0]), q), nil, &resp)
			if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusConflict {
				return fmt.Errorf("%s: %w (add --force if it must go)", args[0], err)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp.Removed)
			}
			for _, e := range resp.Removed {
				fmt.Fprintf(w, "removed %s: %s\n", e.Address, entryWords(e))
			}
			return nil
		},
	}
	ef.add(cmd.Flags(), "", "remove")
	cmd.Flags().BoolVar(&force, "force", false, "remove an unsubscribe or a complaint too")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the removed entries as JSON")
	return cmd
}

func newSuppressionLsCmd(client *adminClient) *cobra.Command {
	var ef entryFlags
	var asJSON, all bool
	var limit int
	var from string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List suppressions in address order, filtered by scope, sender, list and reason",
		Long: `List suppressions in address order: address, scope, sender, list, reason,
source, time. The filters combine. At most --limit entries are printed
(--all: every one, fetched a page at a time); the last line names the
--from of the next page.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit <= 0 {
				return errors.New("--limit: a positive number")
			}
			q := ef.query()
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			var tw *tabwriter.Writer
			if !asJSON {
				tw = printEntries(w, true, nil)
			}
			left, next := limit, from
			for {
				n := httpapi.MaxSuppressionPage
				if !all {
					n = min(left, n)
				}
				q.Set("limit", fmt.Sprint(n))
				if next != "" {
					q.Set("from", next)
				}
				var page struct {
					Entries []policy.Entry `json:"entries"`
					Next    string         `json:"next"`
				}
				if err := client.get(cmd.Context(), pathQuery("/v1/suppressions", q), &page); err != nil {
					return err
				}
				for _, e := range page.Entries {
					if asJSON {
						if err := enc.Encode(e); err != nil {
							return err
						}
						continue
					}
					entryRow(tw, e)
				}
				left -= len(page.Entries)
				next = page.Next
				if next == "" || !all && left <= 0 {
					break
				}
			}
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: drover suppression ls --from %s\n", next)
			}
			return nil
		},
	}
	ef.add(cmd.Flags(), "", "list")
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 100, "print at most this many entries")
	f.BoolVar(&all, "all", false, "print every matching entry (a page at a time)")
	f.StringVar(&from, "from", "", "start at this address (as the last line says)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per entry")
	return cmd
}

func newSuppressionShowCmd(client *adminClient) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ADDRESS",
		Short: "Show an address's suppressions, every scope",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Address string         `json:"address"`
				Entries []policy.Entry `json:"entries"`
			}
			if err := client.get(cmd.Context(), "/v1/suppressions/"+url.PathEscape(args[0]), &resp); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp)
			}
			return printEntries(cmd.OutOrStdout(), true, resp.Entries).Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// fileFormat is an import's format: the flag's, else the file's
// extension's.
func fileFormat(flag, file string) (policy.Format, error) {
	if flag != "" {
		return policy.ParseFormat(flag)
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".csv":
		return policy.CSV, nil
	case ".jsonl", ".ndjson", ".json":
		return policy.JSONLines, nil
	}
	return "", fmt.Errorf("%s: cannot tell the format from the name: give --format csv or jsonl", file)
}

func contentType(f policy.Format) string {
	if f == policy.JSONLines {
		return "application/x-ndjson"
	}
	return "text/csv"
}

func newSuppressionImportCmd(client *adminClient) *cobra.Command {
	var ef entryFlags
	var format string
	var skipInvalid, asJSON bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a file of suppressions (CSV or JSON lines) in one atomic commit",
		Long: `Import a file of suppressions in one atomic commit: all of it, or nothing.

CSV has a header line naming its columns: address (or email), and
optionally scope, sender, list, reason, source, time (RFC 3339), as
drover suppression export writes them. JSON lines have one entry a line.
Lines that do not name a scope, sender, list or reason take the flags';
the source of each entry is import:FILE. The file is streamed to the
server (no time limit: a file of millions of lines works).

An invalid line is reported with its number and, without --skip-invalid,
nothing is imported (the exit status is then 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			fmtName := format
			if name == "-" && fmtName == "" {
				return errors.New("reading stdin: give --format csv or jsonl")
			}
			f, err := fileFormat(fmtName, name)
			if err != nil {
				return err
			}
			q := ef.query()
			q.Set("format", string(f))
			if skipInvalid {
				q.Set("skip_invalid", "true")
			}
			var body io.Reader = cmd.InOrStdin()
			if name != "-" {
				file, err := os.Open(name)
				if err != nil {
					return err
				}
				defer file.Close()
				body = file
				q.Set("source", filepath.Base(name))
			}
			return importFile(cmd, client, pathQuery("/v1/suppressions/import", q), contentType(f), name, body, asJSON)
		},
	}
	ef.add(cmd.Flags(), "", "import for")
	cmd.Flags().StringVar(&format, "format", "", "csv or jsonl (default: from the file's extension)")
	cmd.Flags().BoolVar(&skipInvalid, "skip-invalid", false, "import the valid lines of a file with invalid ones")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// Invalid lines of an import: the server reports at most
// maxInvalidReported, the table shows at most maxInvalidShown.
const (
	maxInvalidReported = 1000
	maxInvalidShown    = 20
)

// printImport prints what an import did and its first invalid lines.
func printImport(w io.Writer, res *policy.ImportResult) {
	state := "committed"
	if !res.Committed {
		state = "nothing imported"
	}
	invalid := fmt.Sprint(res.InvalidLines)
	fmt.Fprintf(w, "read %d, added %d, duplicates %d, invalid %s: %s\n", res.Read, res.Added, res.Duplicates, invalid, state)
	for i, l := range res.Invalid {
		if i == maxInvalidShown {
			fmt.Fprintf(w, "and %d more invalid lines (--json lists the first %d)\n", res.InvalidLines-i, maxInvalidReported)
			break
		}
		fmt.Fprintf(w, "line %d: %s\n", l.Line, l.Err)
	}
}

func newSuppressionExportCmd(client *adminClient) *cobra.Command {
	var ef entryFlags
	var format, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export suppressions (CSV or JSON lines) to stdout or a file",
		Long: `Export the suppressions that match the filters, in address order, as CSV
(address,scope,sender,list,reason,source,time) or JSON lines: what
drover suppression import reads. --out writes a file (mode 0600: it holds
addresses) that appears whole or not at all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := policy.ParseFormat(format)
			if err != nil {
				return err
			}
			q := ef.query()
			q.Set("format", string(f))
			return download(cmd, client, pathQuery("/v1/suppressions/export", q), out)
		},
	}
	ef.add(cmd.Flags(), "", "export")
	cmd.Flags().StringVar(&format, "format", "csv", "csv or jsonl")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to this file (default: stdout)")
	return cmd
}

// download streams a file of the admin API to out ("" or "-": stdout).
func download(cmd *cobra.Command, client *adminClient, path, out string) error {
	resp, err := client.send(cmd.Context(), "GET", path, "", nil, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == "" || out == "-" {
		if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
			return fmt.Errorf("the export was cut: %w", err)
		}
		return nil
	}
	n, err := writeStreamAtomic(out, resp.Body, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w (nothing written)", out, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d bytes)\n", out, n)
	return nil
}

// writeStreamAtomic is writeFileAtomic for a stream: path gets all of r,
// or keeps what it held.
func writeStreamAtomic(path string, r io.Reader, perm os.FileMode) (n int64, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return 0, err
	}
	if n, err = io.Copy(f, r); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return n, err
	}
	return n, syncDir(dir)
}
