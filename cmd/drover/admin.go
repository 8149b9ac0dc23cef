package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
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
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"drover/configs"
	"drover/httpapi"
	"drover/queue"
	"drover/queue/engine"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with configuration files"}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file (keys, values, DKIM keys, routes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configs.Load(args[0])
			if err != nil {
				return err
			}
			if _, err := buildStatic(cfg); err != nil {
				return err // named after the file, as serve names it
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
	show := &cobra.Command{
		Use:   "default",
		Short: "Print the embedded default configuration",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			cmd.OutOrStdout().Write(configs.DefaultYAML())
		},
	}
	providers := &cobra.Command{
		Use:   "providers",
		Short: "Print the shipped shaping defaults: mailbox providers and adaptive-backoff rules, with sources",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			cmd.OutOrStdout().Write(configs.ProvidersYAML())
		},
	}
	cmd.AddCommand(check, show, providers, newConfigEffectiveCmd())
	return cmd
}

func newPasswdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Read a password on stdin and print its bcrypt hash for senders.*.password_hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw []byte
			if term.IsTerminal(int(os.Stdin.Fd())) {
				fmt.Fprint(os.Stderr, "Password: ")
				p, err := term.ReadPassword(int(os.Stdin.Fd()))
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return err
				}
				pw = p
			} else {
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				pw = []byte(strings.TrimRight(line, "\r\n"))
			}
			if len(pw) == 0 {
				return errors.New("empty password")
			}
			hash, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(hash))
			return nil
		},
	}
}

// adminClient talks to a running server's admin API.
type adminClient struct {
	base  string
	token string
}

func addAdminFlags(cmd *cobra.Command) *adminClient {
	c := &adminClient{}
	var cfgPath string
	cmd.PersistentFlags().StringVar(&cfgPath, "config", "", "configuration file (default: the embedded default) giving the admin address and token")
	cmd.PersistentFlags().StringVar(&c.base, "server", "", "admin API base URL (default: from the configuration's http.address)")
	cmd.PersistentFlags().StringVar(&c.token, "token", "", "admin bearer token (default: $DROVER_ADMIN_TOKEN, else the configuration's http.admin_token, else the file admin-token that drover serve keeps in its data_dir)")
	cmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := configs.Load(cfgPath)
		if err != nil {
			return err
		}
		if c.base == "" {
			if cfg.HTTP.Address == "" {
				return errors.New("the configuration has no http.address; give --server")
			}
			c.base = "http://" + cfg.HTTP.Address
		}
		if c.token == "" {
			c.token = cmp.Or(os.Getenv("DROVER_ADMIN_TOKEN"), cfg.HTTP.AdminToken)
		}
		if c.token == "" {
			path, _ := filepath.Abs(adminTokenPath(cfg))
			if c.token, err = readAdminToken(path); err != nil {
				return fmt.Errorf("no admin token: --token, $DROVER_ADMIN_TOKEN and http.admin_token are empty, and the token file of drover serve cannot be read: %w (give the server's --config, or run as a user who can read the file)", err)
			}
		}
		return nil
	}
	return c
}

func (c *adminClient) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, "GET", path, nil, out)
}

func (c *adminClient) post(ctx context.Context, path string, body, out any) error {
	return c.do(ctx, "POST", path, body, out)
}

// apiError is an answer of the admin API other than 2xx.
type apiError struct {
	status int
	text   string // the API's error message: "no such job"
	body   []byte // the whole answer, for the callers that read more of it
}

func (e *apiError) Error() string { return e.text }

func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctype := ""
	if method != "GET" {
		// The admin API takes state-changing calls only as JSON.
		ctype = "application/json"
	}
	resp, err := c.send(ctx, method, path, ctype, rd, 30*time.Second)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if raw, ok := out.(*[]byte); ok {
		b, err := io.ReadAll(resp.Body)
		*raw = b
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// send makes a request of the admin API with the token: body (of type
// contentType, "" for none) is streamed as it is read. It returns a 2xx
// answer, whose body the caller closes, or else an *apiError in the API's
// words. timeout 0 is none, for files of any size.
func (c *adminClient) send(ctx context.Context, method, path, contentType string, body io.Reader, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is drover serve running? %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		var e struct{ Error string }
		json.Unmarshal(raw, &e)
		// The API's own words; the status line only when it gave none.
		return nil, &apiError{status: resp.StatusCode, text: cmp.Or(e.Error, resp.Status), body: raw}
	}
	return resp, nil
}

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Inspect the queue of a running server (admin API)"}
	client := addAdminFlags(cmd)
	var asJSON, showBody bool
	var by string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the queue by site, domain, sender or campaign: recipients, oldest, last error, shaping state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Groups []engine.Summary `json:"groups"`
			}
			if err := client.get(cmd.Context(), "/v1/queue?by="+url.QueryEscape(by), &resp); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Groups)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "%s\tRECIPIENTS\tMESSAGES\tOLDEST\tSTATE\tLAST ERROR\n", strings.ToUpper(by))
			for _, g := range resp.Groups {
				age := "-"
				if !g.Oldest.IsZero() {
					age = time.Since(g.Oldest).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", g.Key, g.Recipients, g.Messages, age, siteState(g.Site), g.LastError)
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	ls.Flags().StringVar(&by, "by", "site", "group by site, domain, sender or campaign")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one queued message and its recipients",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Message    queue.Message     `json:"message"`
				Recipients []queue.Recipient `json:"recipients"`
			}
			if showBody {
				var body []byte
				if err := client.get(cmd.Context(), "/v1/queue/"+url.PathEscape(args[0])+"/body", &body); err != nil {
					return err
				}
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			if err := client.get(cmd.Context(), "/v1/queue/"+url.PathEscape(args[0]), &resp); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp)
			}
			m := resp.Message
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "id:        %s\nsender:    %s\nfrom:      <%s>\nreceived:  %s (%s ago)\nsize:      %d\n",
				m.ID, m.Sender, m.ReturnPath, m.Received.Format(time.RFC3339), time.Since(m.Received).Round(time.Second), m.Size)
			for _, kv := range [][2]string{{"stream", m.Stream}, {"campaign", m.Campaign}, {"list", m.List}, {"flow", m.Flow}, {"envid", m.EnvID}, {"ret", m.Ret}} {
				if kv[1] != "" {
					fmt.Fprintf(w, "%-10s %s\n", kv[0]+":", kv[1])
				}
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nRECIPIENT\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
			for _, r := range resp.Recipients {
				next := r.NextAttempt.Format(time.RFC3339)
				if r.Held {
					next = "held (drover queue release)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Addr, r.Attempts, next, r.LastError)
			}
			return tw.Flush()
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show.Flags().BoolVar(&showBody, "body", false, "print the stored message itself (headers and body), like postcat")
	suspensions := &cobra.Command{
		Use:   "suspensions",
		Short: "List the suspensions and slowdowns in force (operator's and adaptive)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Suspensions []engine.Suspension `json:"suspensions"`
			}
			if err := client.get(cmd.Context(), "/v1/queue/suspensions", &resp); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Suspensions)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAME\tBY\tSTATE\tUNTIL\tREASON")
			for _, sp := range resp.Suspensions {
				until := "resumed by hand"
				if !sp.Until.IsZero() {
					until = sp.Until.Format(time.RFC3339)
				}
				by, state := "operator", "suspended"
				if sp.Adaptive {
					by = "rule"
				}
				if sp.Factor > 0 {
					state = fmt.Sprintf("slowed x%g", sp.Factor)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sp.Kind, sp.Name, by, state, until, sp.Reason)
			}
			return tw.Flush()
		},
	}
	suspensions.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(ls, newListCmd(client), show, suspensions, newJobsCmd(client))
	cmd.AddCommand(queueOps(client)...)
	return cmd
}

// siteState renders a site's shaping state for `queue ls`.
func siteState(s *engine.SiteStatus) string {
	if s == nil {
		return "-"
	}
	now := time.Now()
	var parts []string
	if s.SuspendedUntil.After(now) {
		parts = append(parts, "suspended "+s.SuspendedUntil.Sub(now).Round(time.Second).String())
	}
	if s.Factor > 0 && s.Factor < 1 && s.SlowUntil.After(now) {
		parts = append(parts, fmt.Sprintf("slowed x%.2g %s", s.Factor, s.SlowUntil.Sub(now).Round(time.Second)))
	}
	parts = append(parts, fmt.Sprintf("conns %d/%d", s.Connections, s.MaxConnections))
	if s.Reason != "" && len(parts) > 1 {
		parts = append(parts, "("+s.Reason+")")
	}
	return strings.Join(parts, " ")
}

// queueOps are the queue's control commands: suspend, resume, flush,
// bounce, delete. Flush, bounce and delete run as jobs on the server:
// they start one, then follow it to its end (see followJob).
func queueOps(client *adminClient) []*cobra.Command {
	type request struct {
		IDs       []string `json:"ids,omitempty"`
		Recipient string   `json:"recipient,omitempty"`
		All       bool     `json:"all,omitempty"`
		Site      string   `json:"site,omitempty"`
		Domain    string   `json:"domain,omitempty"`
		Sender    string   `json:"sender,omitempty"`
		Campaign  string   `json:"campaign,omitempty"`
		For       string   `json:"for,omitempty"`
		Reason    string   `json:"reason,omitempty"`
		DryRun    bool     `json:"dry_run,omitempty"`
	}
	mk := func(op, short string, selector, duration, reason, dryRun bool) *cobra.Command {
		var req request
		var asJSON, detach, yes bool
		use, args := op, cobra.PositionalArgs(cobra.NoArgs)
		if selector {
			use, args = op+" [ID...]", cobra.ArbitraryArgs
		}
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				req.IDs = args
				if req.All && !req.DryRun && op != "flush" {
					if err := confirmAll(cmd, op, yes); err != nil {
						return err
					}
				}
				if op == "suspend" || op == "resume" {
					var resp struct {
						Warning string `json:"warning"`
					}
					if err := client.post(cmd.Context(), "/v1/queue/"+op, req, &resp); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", op)
					if resp.Warning != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", resp.Warning)
					}
					return nil
				}
				var resp struct {
					Job httpapi.Job `json:"job"`
				}
				if err := client.post(cmd.Context(), "/v1/queue/"+op, req, &resp); err != nil {
					if ue := (*url.Error)(nil); errors.As(err, &ue) && ue.Timeout() {
						return &pendingError{fmt.Sprintf("%s: no answer from the server (%v); the operation may have started: see drover queue jobs", op, err)}
					}
					return err
				}
				if detach {
					if asJSON {
						return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Job)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: job %s started; follow it with drover queue jobs %s --follow\n", op, resp.Job.ID, resp.Job.ID)
					return nil
				}
				j, err := client.followJob(cmd.Context(), resp.Job, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				return printJobEnd(cmd.OutOrStdout(), j, asJSON)
			},
		}
		f := cmd.Flags()
		f.StringVar(&req.Site, "site", "", "site, as drover queue ls names it (google.com, outlook.com, ...)")
		f.StringVar(&req.Domain, "domain", "", "recipient domain")
		if selector {
			f.StringVar(&req.Sender, "sender", "", "sender (account) name")
			f.StringVar(&req.Campaign, "campaign", "", "campaign (X-Drover-Campaign)")
			f.StringVar(&req.Recipient, "recipient", "", "recipient address, or @domain")
			f.BoolVar(&req.All, "all", false, "every queued recipient (asks first on a terminal)")
			f.BoolVar(&yes, "yes", false, "do not ask before acting on --all")
		}
		if duration {
			f.StringVar(&req.For, "for", "1h", "how long")
		}
		if reason {
			f.StringVar(&req.Reason, "reason", "", "reason, shown in queue ls and DSNs")
		}
		if dryRun {
			f.BoolVar(&req.DryRun, "dry-run", false, "count what would be affected, change nothing")
		}
		if selector {
			f.BoolVar(&asJSON, "json", false, "print the finished job as JSON")
			f.BoolVar(&detach, "detach", false, "start the job and print its id, without following it")
			cmd.Long = short + ".\n\nMessages are named by their IDs (as arguments, in any case), or by\n--recipient and the other selectors; --all names every one.\n\n" + jobHelp
		}
		return cmd
	}
	return []*cobra.Command{
		mk("suspend", "Stop delivering to a site or domain for a while", false, true, true, false),
		mk("resume", "Resume a suspended site or domain", false, false, false, false),
		mk("flush", "Retry now every matching recipient", true, false, false, false),
		mk("bounce", "Fail matching recipients for good (DSNs and bounce events follow)", true, false, true, true),
		mk("delete", "Remove matching recipients silently (a deleted event each)", true, false, false, true),
		mk("hold", "Keep matching recipients from delivery, across restarts, until released", true, false, false, false),
		mk("release", "Deliver held recipients now", true, false, false, false),
	}
}

// confirmAll asks on a terminal before an operation on every queued
// recipient; elsewhere it takes --yes.
func confirmAll(cmd *cobra.Command, op string, yes bool) error {
	if yes {
		return nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return fmt.Errorf("%s --all acts on every queued recipient: add --yes", op)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s every queued recipient? [y/N] ", op)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return fmt.Errorf("%s: not confirmed", op)
	}
	return nil
}

// newListCmd is `drover queue list`, the per-message listing (mailq).
func newListCmd(client *adminClient) *cobra.Command {
	var recipient, site, domain, sender, campaign, olderThan, newerThan, after string
	var newest, asJSON, all bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list [ID...]",
		Short: "List queued messages, oldest first (like mailq): id, age, size, sender, recipients and their last errors",
		Long: `List queued messages, oldest first (like mailq): id, age, size, sender,
and each recipient with its attempts and last error. Filters combine:
--recipient (an address or @domain), --older-than/--newer-than (1h, 10m),
and the selectors of flush and delete. At most --limit messages are
printed (--all: every one, fetched a page at a time); the last line names
the --after of the next page.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for _, id := range args {
				q.Add("id", id)
			}
			for k, v := range map[string]string{"recipient": recipient, "site": site, "domain": domain, "sender": sender,
				"campaign": campaign, "older_than": olderThan, "newer_than": newerThan} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if newest {
				q.Set("order", "newest")
			}
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "ID\tAGE\tSIZE\tSENDER\tRECIPIENT\tATTEMPTS\tLAST ERROR")
			}
			enc := json.NewEncoder(w)
			left := limit
			for {
				n := queue.MaxListLimit
				if !all {
					n = min(left, queue.MaxListLimit)
				}
				q.Set("limit", fmt.Sprint(n))
				if after != "" {
					q.Set("after", after)
				}
				var page queue.ListPage
				if err := client.get(cmd.Context(), "/v1/queue/messages?"+q.Encode(), &page); err != nil {
					return err
				}
				for _, m := range page.Messages {
					if asJSON {
						if err := enc.Encode(m); err != nil {
							return err
						}
						continue
					}
					for i, r := range m.Recipients {
						id, age, size, from := "", "", "", ""
						if i == 0 {
							id, age, size, from = m.ID, time.Since(m.Received).Round(time.Second).String(), fmt.Sprint(m.Size), m.Sender+" <"+m.ReturnPath+">"
						}
						lastErr := r.LastError
						if r.Held {
							lastErr = strings.TrimSpace("(held) " + lastErr)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", id, age, size, from, r.Address, r.Attempts, lastErr)
					}
				}
				left -= len(page.Messages)
				after = page.Next
				if after == "" || !all && left <= 0 {
					break
				}
			}
			if asJSON {
				return nil
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if after != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: drover queue list --after %s\n", after)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&recipient, "recipient", "", "recipient address, or @domain")
	f.StringVar(&site, "site", "", "site (as `drover queue ls` names it)")
	f.StringVar(&domain, "domain", "", "recipient domain")
	f.StringVar(&sender, "sender", "", "sender (account) name")
	f.StringVar(&campaign, "campaign", "", "campaign (X-Drover-Campaign)")
	f.StringVar(&olderThan, "older-than", "", "only messages received longer ago than this (e.g. 1h)")
	f.StringVar(&newerThan, "newer-than", "", "only messages received within this (e.g. 10m)")
	f.BoolVar(&newest, "newest", false, "newest first")
	f.IntVar(&limit, "limit", 100, "print at most this many messages")
	f.BoolVar(&all, "all", false, "print every matching message (a page at a time)")
	f.StringVar(&after, "after", "", "continue after this message ID (as the last line says)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per message (snake_case)")
	return cmd
}
