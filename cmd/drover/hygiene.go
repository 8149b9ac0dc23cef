package main

// drover hygiene report and drover events send: a sender's list hygiene
// and the engagement its tracking reports, through the admin API
// (/v1/hygiene, /v1/events).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"drover/policy"
)

func newHygieneCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "hygiene", Short: "A sender's list hygiene on a running server (admin API)"}
	client := addAdminFlags(cmd)
	cmd.AddCommand(newHygieneReportCmd(client))
	return cmd
}

func newHygieneReportCmd(client *adminClient) *cobra.Command {
	var sender, campaign, since, export string
	var inactive int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "report --sender S",
		Short: "A sender's outcomes per campaign (bounce rate, flagged above 2 %) and its non-engagers",
		Long: fmt.Sprintf(`A sender's outcomes per campaign: delivered, hard and soft bounces,
confirmed bounces, complaints, unsubscribes and the bounce rate (bounces
over delivered and bounced), FLAG above %g %%; then the recipients who
engaged with none of the last 5, 10, 20 and 30 marketing messages.

--since takes a date (2026-11-01) or a duration back (30d, 12h).
--export writes the addresses the sender should take off its list as CSV
(address,reason,scope,list): those suppressed for it and, with --inactive
N, those without engagement with its last N marketing messages.`, policy.BounceRateLimit*100),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sender == "" {
				return errors.New("--sender is required: a report is one sender's")
			}
			if inactive < 0 {
				return errors.New("--inactive: a number of messages (0: suppressed addresses only)")
			}
			q := url.Values{"sender": {sender}}
			if campaign != "" {
				q.Set("campaign", campaign)
			}
			if since != "" {
				q.Set("since", since)
			}
			var rep policy.Report
			if err := client.get(cmd.Context(), pathQuery("/v1/hygiene/report", q), &rep); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := json.NewEncoder(w).Encode(rep); err != nil {
					return err
				}
			} else if err := printReport(w, &rep); err != nil {
				return err
			}
			if export == "" {
				return nil
			}
			eq := url.Values{"sender": {sender}, "inactive": {fmt.Sprint(inactive)}}
			return download(cmd, client, pathQuery("/v1/hygiene/export", eq), export)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sender, "sender", "", "sender (account) name (required)")
	f.StringVar(&campaign, "campaign", "", "only this campaign (X-Drover-Campaign)")
	f.StringVar(&since, "since", "", "from this day (2026-11-01) or this long ago (30d) on; default: all")
	f.StringVar(&export, "export", "", "write the addresses to remove to this CSV file (- for stdout)")
	f.IntVar(&inactive, "inactive", 30, "with --export: also the recipients without engagement with the last N marketing messages (0: none)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// printReport prints a report as tables.
func printReport(w io.Writer, rep *policy.Report) error {
	table := [][]string{{"CAMPAIGN", "DELIVERED", "HARD", "SOFT", "CONFIRMED", "COMPLAINTS", "UNSUBSCRIBES", "BOUNCE RATE", ""}}
	row := func(c policy.CampaignReport, name string) {
		flag := ""
		if c.Flagged {
			flag = "FLAG"
		}
		table = append(table, []string{name, fmt.Sprint(c.Delivered), fmt.Sprint(c.HardBounces), fmt.Sprint(c.SoftBounces),
			fmt.Sprint(c.ConfirmedBounces), fmt.Sprint(c.Complaints), fmt.Sprint(c.Unsubscribes), fmt.Sprintf("%.2f %%", c.BounceRate*100), flag})
	}
	for _, c := range rep.Campaigns {
		row(c, dash(c.Campaign))
	}
	if len(rep.Campaigns) != 1 {
		row(rep.Total, "(total)")
	}
	printTable(w, table)
	fmt.Fprintf(w, "\nnon-engagers of sender %s (of %d recipients with a record):\n", rep.Sender, rep.Recipients)
	table = [][]string{{"NO ENGAGEMENT WITH THE LAST", "RECIPIENTS"}}
	for _, n := range policy.SunsetSteps {
		table = append(table, []string{fmt.Sprintf("%d messages", n), fmt.Sprint(rep.NonEngagers[n])})
	}
	_, err := printTable(w, table)
	return err
}

// printTable prints rows in columns two spaces apart: the first
// left-aligned, the others (numbers) right-aligned.
func printTable(w io.Writer, rows [][]string) (int, error) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				line.WriteString(c + pad)
				continue
			}
			line.WriteString("  " + pad + c)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return io.WriteString(w, b.String())
}

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Report engagement events to a running server (admin API)"}
	client := addAdminFlags(cmd)
	var asJSON bool
	send := &cobra.Command{
		Use:   "send FILE|-",
		Short: "Send engagement events (opened, clicked) as JSON lines",
		Long: `Send engagement events, one JSON object a line, from FILE or stdin (-):

  {"event": "opened", "time": "2026-11-30T14:05:00Z", "sender": "shop",
   "rcpt": "ann@example.com", "id": "QUEUEID", "campaign": "spring"}

event is opened or clicked; time (default now), id and campaign are
optional. An engagement ends a recipient's run of marketing messages
without one and lifts its suppression for inactivity. The events are
applied all or none: a malformed line is reported with its number and
none is applied. At most 100000 events a call.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				body = f
			}
			resp, err := client.send(cmd.Context(), "POST", "/v1/events", "application/x-ndjson", body, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			defer resp.Body.Close()
			var out struct {
				Accepted int `json:"accepted"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return fmt.Errorf("the server's answer: %w", err)
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d events accepted\n", out.Accepted)
			return nil
		},
	}
	send.Flags().BoolVar(&asJSON, "json", false, `print {"accepted": n}`)
	cmd.AddCommand(send)
	return cmd
}
