package main

// drover consent ...: the consent records of a running server and their
// proof, through the admin API (/v1/consent).

import (
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

	"drover/httpapi"
	"drover/policy"
)

func newConsentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consent",
		Short: "Manage the consent records of a running server and their proof (admin API)",
		Long: `Manage the consent records of a running server (admin API).

A record says where an address's consent to one list of one sender stands
(pending, confirmed, withdrawn, lapsed), how it was obtained
(single-opt-in, double-opt-in, import, api) and its proof: the time, IP
address, user agent and source of the sign-up, the consent text shown
(stored once, by its SHA-256) and the purposes consented to; for a double
opt-in, the confirmation's time, IP address and user agent. The history is
append-only: every change is a new record.

--list "" names the sender's mail that names no list. Where the
configuration requires consent (senders.NAME.consent_required), marketing
mail goes only to addresses whose latest record for the list is confirmed.`,
	}
	client := addAdminFlags(cmd)
	cmd.AddCommand(newConsentRecordCmd(client), newConsentShowCmd(client), newConsentWithdrawCmd(client),
		newConsentLsCmd(client), newConsentImportCmd(client), newConsentExportCmd(client), newConsentRepermissionCmd(client))
	return cmd
}

// consentTarget is the sender and list flags of the consent commands.
type consentTarget struct {
	sender, list string
	cmd          *cobra.Command
}

func (c *consentTarget) add(cmd *cobra.Command, required bool) {
	c.cmd = cmd
	how := "(default: every list of the sender)"
	if required {
		how = `(required; "" for the sender's mail that names no list)`
	}
	cmd.Flags().StringVar(&c.sender, "sender", "", "sender (account) name")
	cmd.Flags().StringVar(&c.list, "list", "", "list of the sender (X-Drover-List) "+how)
}

// hasList reports whether --list was given (maybe "").
func (c *consentTarget) hasList() bool { return c.cmd.Flags().Changed("list") }

// require checks that --sender and --list were given.
func (c *consentTarget) require() error {
	if c.sender == "" {
		return errors.New("--sender is required: consent is given to a sender")
	}
	if !c.hasList() {
		return errors.New(`--list is required (--list "" for the sender's mail that names no list)`)
	}
	return nil
}

// query is the target as the API's parameters (list only when given).
func (c *consentTarget) query() url.Values {
	q := url.Values{}
	if c.sender != "" {
		q.Set("sender", c.sender)
	}
	if c.hasList() {
		q.Set("list", c.list)
	}
	return q
}

// listWords names a list in a sentence.
func listWords(sender, list string) string {
	if list == "" {
		return "the mail of sender " + sender
	}
	return fmt.Sprintf("list %s of sender %s", list, sender)
}

// parseTime reads a time flag (RFC 3339; "" is now).
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, fmt.Errorf("--%s %q: a time as RFC 3339 (2026-11-30T14:05:00Z)", flag, v)
	}
	return t, nil
}

func newConsentRecordCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var status, method, at, ip, ua, source, textFile, confAt, confIP, confUA string
	var purposes []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "record ADDRESS --sender S --list L --text-file F",
		Short: "Record a sign-up or a consent, with its proof",
		Long: `Record a sign-up (--status pending, a double opt-in's) or a consent
(--status confirmed, the default), with its proof: --time (default now),
--ip, --user-agent, --source (default cli) and the consent text shown
(--text-file, "-" for stdin), and the --purpose(s) consented to. A double
opt-in confirmed elsewhere gives --confirmed-time (and --confirmed-ip,
--confirmed-user-agent) too.

To confirm a pending double opt-in, give --method double-opt-in and no
--text-file: the record repeats the sign-up's proof, and --time (default:
the server's now), --ip and --user-agent are the confirmation's.

An address suppressed for every sender, or for the sender for a
complaint, is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tg.require(); err != nil {
				return err
			}
			in := policy.ConsentInput{Sender: tg.sender, List: tg.list, Address: args[0],
				Status: policy.ConsentStatus(status), Method: policy.ConsentMethod(method)}
			t, err := parseTime("time", at)
			if err != nil {
				return err
			}
			confirming := textFile == "" && in.Method == policy.DoubleOptIn && (status == "" || in.Status == policy.ConsentConfirmed)
			switch {
			case confirming:
				if confAt != "" || confIP != "" || confUA != "" || len(purposes) > 0 || source != "" {
					return errors.New("confirming a pending sign-up: --time, --ip and --user-agent are the confirmation's (no --confirmed-*, --purpose or --source)")
				}
				in.Confirmation = &policy.ConsentAct{IP: ip, UserAgent: ua}
				if at != "" {
					in.Confirmation.Time = t // else the server's now
				}
			case textFile == "":
				return errors.New("--text-file is required: the consent text shown is part of the proof")
			default:
				text, err := readText(cmd, textFile)
				if err != nil {
					return err
				}
				in.Time, in.IP, in.UserAgent, in.Text, in.Purposes = t, ip, ua, text, purposes
				in.Source = source
				if in.Source == "" {
					in.Source = "cli"
				}
				if confAt != "" || confIP != "" || confUA != "" {
					ct, err := parseTime("confirmed-time", confAt)
					if err != nil {
						return err
					}
					if confAt == "" {
						return errors.New("--confirmed-ip and --confirmed-user-agent go with --confirmed-time")
					}
					in.Confirmation = &policy.ConsentAct{Time: ct, IP: confIP, UserAgent: confUA}
				}
			}
			var resp struct {
				Consent  policy.Consent `json:"consent"`
				Recorded bool           `json:"recorded"`
			}
			if err := client.post(cmd.Context(), "/v1/consent", in, &resp); err != nil {
				return consentAPIError(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp)
			}
			c := resp.Consent
			verb := "recorded"
			if !resp.Recorded {
				verb = "already recorded, unchanged"
			}
			fmt.Fprintf(w, "%s: record %d of %s for %s: %s (%s), text sha256 %s\n", verb, c.Seq, c.Address,
				listWords(c.Sender, c.List), c.Status, c.Method, c.Proof.TextHash)
			return nil
		},
	}
	tg.add(cmd, true)
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "pending or confirmed (default confirmed)")
	f.StringVar(&method, "method", "", "single-opt-in, double-opt-in, import or api (default api; double-opt-in when pending)")
	f.StringVar(&at, "time", "", "when the consent was given, RFC 3339 (default now)")
	f.StringVar(&ip, "ip", "", "the IP address it was given from")
	f.StringVar(&ua, "user-agent", "", "the user agent it was given with")
	f.StringVar(&source, "source", "", "where it was given: the form's URL, a file, an API key's name (default cli)")
	f.StringVar(&textFile, "text-file", "", `file holding the consent text shown ("-": stdin)`)
	f.StringArrayVar(&purposes, "purpose", nil, "a purpose consented to (short name; repeat for several)")
	f.StringVar(&confAt, "confirmed-time", "", "a double opt-in's confirmation time, RFC 3339")
	f.StringVar(&confIP, "confirmed-ip", "", "a double opt-in's confirmation IP address")
	f.StringVar(&confUA, "confirmed-user-agent", "", "a double opt-in's confirmation user agent")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// readText reads the consent text from a file ("-": stdin).
func readText(cmd *cobra.Command, name string) (string, error) {
	var r io.Reader = cmd.InOrStdin()
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("%s: the consent text is empty", name)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// consentAPIError says that a 409 is a refusal (an address suppressed).
func consentAPIError(err error) error {
	if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusConflict {
		return fmt.Errorf("refused: %w", err)
	}
	return err
}

func newConsentShowCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ADDRESS [--sender S] [--list L]",
		Short: "Show an address's consent history, with its proof and the texts shown",
		Long: `Show an address's consent history, oldest first, with the texts shown.
Without --list, every list of the sender; without --sender, every
sender's (a scan of every latest record: seconds for millions).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tg.hasList() && tg.sender == "" {
				return errors.New("--list names a list of a sender: give --sender too")
			}
			var resp struct {
				Address string           `json:"address"`
				Records []policy.Consent `json:"records"`
			}
			if err := client.get(cmd.Context(), pathQuery("/v1/consent/"+url.PathEscape(args[0]), tg.query()), &resp); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp)
			}
			return printHistory(w, resp.Records)
		},
	}
	tg.add(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// stamp is a time in a table ("-" when none).
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// printHistory prints records as a table, then each text shown once.
func printHistory(w io.Writer, cs []policy.Consent) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDER\tLIST\tSEQ\tSTATUS\tMETHOD\tTIME\tIP\tSOURCE\tPURPOSES\tCONFIRMED\tENDED\tTEXT")
	var texts []policy.ConsentProof
	seen := map[string]bool{}
	for _, c := range cs {
		conf, ended := "-", "-"
		if c.Confirmation != nil {
			conf = stamp(c.Confirmation.Time) + " " + dash(c.Confirmation.IP)
		}
		if c.Ended != nil {
			ended = stamp(c.Ended.Time) + " " + dash(c.Ended.Source)
		}
		hash := dash(c.Proof.TextHash)
		if len(hash) > 12 {
			hash = hash[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Sender, dash(c.List), c.Seq, c.Status, c.Method,
			stamp(c.Proof.Time), dash(c.Proof.IP), dash(c.Proof.Source), dash(strings.Join(c.Proof.Purposes, " ")), conf, ended, hash)
		if c.Proof.TextHash != "" && !seen[c.Proof.TextHash] {
			seen[c.Proof.TextHash] = true
			texts = append(texts, c.Proof)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range texts {
		fmt.Fprintf(w, "\ntext %s:\n", p.TextHash)
		for _, line := range strings.Split(p.Text, "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return nil
}

func newConsentWithdrawCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var source string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "withdraw ADDRESS --sender S --list L",
		Short: "Record the withdrawal of an address's consent to a list",
		Long: `Record the withdrawal of an address's consent to a list: a new record,
withdrawn, that repeats the consent's proof (the history keeps both).
Withdrawing an ended consent changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tg.require(); err != nil {
				return err
			}
			var resp struct {
				Consent   policy.Consent `json:"consent"`
				Withdrawn bool           `json:"withdrawn"`
			}
			req := map[string]string{"sender": tg.sender, "list": tg.list, "address": args[0], "source": source}
			if err := client.post(cmd.Context(), "/v1/consent/withdraw", req, &resp); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp)
			}
			c := resp.Consent
			if !resp.Withdrawn {
				fmt.Fprintf(w, "%s: consent for %s had ended already (%s, record %d)\n", c.Address, listWords(c.Sender, c.List), c.Status, c.Seq)
				return nil
			}
			fmt.Fprintf(w, "withdrawn: record %d of %s for %s\n", c.Seq, c.Address, listWords(c.Sender, c.List))
			return nil
		},
	}
	tg.add(cmd, true)
	cmd.Flags().StringVar(&source, "source", "cli", "through what it was withdrawn")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newConsentLsCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var status, from string
	var limit int
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "ls --sender S --list L [--status confirmed|pending|withdrawn|lapsed]",
		Short: "List the latest consent record of each address of a list",
		Long: `List the latest consent record of each address of a list, in address
order: address, status, method, time, source, record number. At most
--limit are printed (--all: every one, fetched a page at a time); the last
line names the --from of the next page.

While a re-permission campaign of the list runs (drover consent
repermission), a consent confirmed before its start is listed, and
selected by --status, as "pending (re-permission)"; --status confirmed
gives those confirmed since.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tg.require(); err != nil {
				return err
			}
			if limit <= 0 {
				return errors.New("--limit: a positive number")
			}
			q := tg.query()
			if status != "" {
				q.Set("status", status)
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "ADDRESS\tSTATUS\tMETHOD\tTIME\tSOURCE\tSEQ")
			}
			left, next := limit, from
			for {
				n := httpapi.MaxConsentPage
				if !all {
					n = min(left, n)
				}
				q.Set("limit", fmt.Sprint(n))
				if next != "" {
					q.Set("from", next)
				}
				var page struct {
					Records []policy.Consent `json:"records"`
					Next    string           `json:"next"`
				}
				if err := client.get(cmd.Context(), pathQuery("/v1/consent", q), &page); err != nil {
					return err
				}
				for _, c := range page.Records {
					if asJSON {
						if err := enc.Encode(c); err != nil {
							return err
						}
						continue
					}
					at, src := c.Proof.Time, c.Proof.Source
					if c.Ended != nil {
						at, src = c.Ended.Time, c.Ended.Source
					} else if c.Confirmation != nil {
						at = c.Confirmation.Time
					}
					status := string(c.Status)
					if c.Repermission == policy.RepermissionPending {
						status += " (re-permission)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", c.Address, status, c.Method, stamp(at), dash(src), c.Seq)
				}
				left -= len(page.Records)
				next = page.Next
				if next == "" || !all && left <= 0 {
					break
				}
			}
			if !asJSON {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: drover consent ls --from %s\n", next)
			}
			return nil
		},
	}
	tg.add(cmd, true)
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only the addresses whose latest record has this status: confirmed, pending, withdrawn, lapsed")
	f.IntVar(&limit, "limit", 100, "print at most this many records")
	f.BoolVar(&all, "all", false, "print every matching record (a page at a time)")
	f.StringVar(&from, "from", "", "start at this address (as the last line says)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per record")
	return cmd
}

func newConsentImportCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var format string
	var skipInvalid, asJSON bool
	cmd := &cobra.Command{
		Use:   "import FILE --sender S --list L",
		Short: "Import a file of consent records (CSV or JSON lines) in one atomic commit",
		Long: `Import a file of consent records in one atomic commit: all of it, or nothing.

CSV has a header line naming its columns: address (or email), status,
method, time (RFC 3339), ip, user_agent, source, text, purposes (separated
by spaces), confirmation_time, confirmation_ip, confirmation_user_agent,
and optionally sender and list (default --sender and --list), as drover
consent export writes them. JSON lines have one record a line, as the
admin API's POST /v1/consent takes it. Lines are recorded in order, so a
line may confirm or withdraw an earlier one's consent; every line needs
its proof (time, text; the source defaults to import:FILE), and a line
that repeats a record of its address's history is a duplicate.

An invalid line (a bad proof, a suppressed address) is reported with its
number and, without --skip-invalid, nothing is imported (the exit status
is then 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := tg.require(); err != nil {
				return err
			}
			name := args[0]
			if name == "-" && format == "" {
				return errors.New("reading stdin: give --format csv or jsonl")
			}
			f, err := fileFormat(format, name)
			if err != nil {
				return err
			}
			q := tg.query()
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
			return importFile(cmd, client, pathQuery("/v1/consent/import", q), contentType(f), name, body, asJSON)
		},
	}
	tg.add(cmd, true)
	cmd.Flags().StringVar(&format, "format", "", "csv or jsonl (default: from the file's extension)")
	cmd.Flags().BoolVar(&skipInvalid, "skip-invalid", false, "import the valid lines of a file with invalid ones")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// importFile streams an import to the admin API and prints what it did:
// for a refused import, its invalid lines.
func importFile(cmd *cobra.Command, client *adminClient, path, ctype, name string, body io.Reader, asJSON bool) error {
	w := cmd.OutOrStdout()
	resp, err := client.send(cmd.Context(), "POST", path, ctype, body, 0)
	if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusUnprocessableEntity {
		var res policy.ImportResult
		if json.Unmarshal(ae.body, &res) == nil && len(res.Invalid) > 0 {
			if asJSON {
				w.Write(ae.body)
			} else {
				printImport(w, &res)
			}
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	var res policy.ImportResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("%s: the server's answer: %w", name, err)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	printImport(w, &res)
	return nil
}

func newConsentExportCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var format, out string
	cmd := &cobra.Command{
		Use:   "export --sender S [--list L]",
		Short: "Export consent histories (CSV or JSON lines) to stdout or a file",
		Long: `Export the consent history of a list (without --list, of every list of
the sender): every record, with the text shown, as drover consent import
reads it. --out writes a file (mode 0600: it holds addresses and proof)
that appears whole or not at all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tg.sender == "" {
				return errors.New("--sender is required: consent is given to a sender")
			}
			f, err := policy.ParseFormat(format)
			if err != nil {
				return err
			}
			q := tg.query()
			q.Set("format", string(f))
			return download(cmd, client, pathQuery("/v1/consent/export", q), out)
		},
	}
	tg.add(cmd, false)
	cmd.Flags().StringVar(&format, "format", "csv", "csv or jsonl")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to this file (default: stdout)")
	return cmd
}
