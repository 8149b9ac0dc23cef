package main

// drover consent repermission ...: the re-permission campaigns of a
// running server's lists, through the admin API
// (/v1/consent/repermission).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"drover/policy"
)

const repermissionLong = `A re-permission campaign asks the addresses of a list whose consent is
confirmed to confirm it again by a deadline. Starting one changes no
record, and mail to the list still goes to every confirmed address while
it runs: send them the re-permission message, and its reminders, with an
[opt-in: ...] link, whose confirmation page records a fresh consent.

While it runs, drover consent ls --status pending lists those who have
not re-confirmed yet (STATUS "pending (re-permission)"; a plain
"pending" is a double opt-in's sign-up), and --status confirmed those
who have. When the deadline has passed (the server looks at start and
every hour; drover consent repermission run looks now), each address
that has not re-confirmed gets a lapsed record (source
repermission:STARTED), and mail to the list is refused to it from then
on. A list has one campaign running at a time.`

func newConsentRepermissionCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var deadline string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "repermission --sender S --list L --deadline 30d",
		Short: "Ask a list's confirmed addresses to confirm their consent again by a deadline",
		Long: repermissionLong + `

drover consent repermission --sender S --list L --deadline D is
drover consent repermission start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if deadline == "" && !cmd.Flags().Changed("sender") && !tg.hasList() {
				return cmd.Help()
			}
			return startRepermission(cmd, client, &tg, deadline, asJSON)
		},
	}
	addStartFlags(cmd, &tg, &deadline, &asJSON)
	cmd.AddCommand(newRepermissionStartCmd(client), newRepermissionStatusCmd(client), newRepermissionRunCmd(client))
	return cmd
}

func addStartFlags(cmd *cobra.Command, tg *consentTarget, deadline *string, asJSON *bool) {
	tg.add(cmd, true)
	cmd.Flags().StringVar(deadline, "deadline", "", "when those who have not re-confirmed lapse: a duration from now (30d, 72h) or a time (RFC 3339)")
	cmd.Flags().BoolVar(asJSON, "json", false, "print JSON")
}

func newRepermissionStartCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var deadline string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "start --sender S --list L --deadline 30d",
		Short: "Start a re-permission campaign of a list",
		Long:  repermissionLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return startRepermission(cmd, client, &tg, deadline, asJSON)
		},
	}
	addStartFlags(cmd, &tg, &deadline, &asJSON)
	return cmd
}

func startRepermission(cmd *cobra.Command, client *adminClient, tg *consentTarget, deadline string, asJSON bool) error {
	if err := tg.require(); err != nil {
		return err
	}
	if deadline == "" {
		return errors.New("--deadline is required: a duration from now (30d) or a time (RFC 3339)")
	}
	var resp struct {
		Repermission policy.Repermission `json:"repermission"`
	}
	req := map[string]string{"sender": tg.sender, "list": tg.list, "deadline": deadline}
	if err := client.post(cmd.Context(), "/v1/consent/repermission", req, &resp); err != nil {
		return consentAPIError(err)
	}
	w := cmd.OutOrStdout()
	if asJSON {
		return json.NewEncoder(w).Encode(resp.Repermission)
	}
	r := resp.Repermission
	fmt.Fprintf(w, "started: re-permission of %s: %d confirmed consent(s) to confirm again by %s\n",
		listWords(r.Sender, r.List), r.Confirmed, stamp(r.Deadline))
	return nil
}

func newRepermissionStatusCmd(client *adminClient) *cobra.Command {
	var tg consentTarget
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status --sender S [--list L]",
		Aliases: []string{"show"},
		Short:   "Show the re-permission campaigns of a list and where they stand",
		Long: `Show the re-permission campaigns of a list (without --list, of every list
of the sender), oldest first: state (running, ended), start, deadline,
end, and the addresses confirmed at the start, re-confirmed since,
pending (not re-confirmed yet, while it runs) and lapsed at the deadline.
A running campaign's counts are read now (about a second a million).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tg.sender == "" {
				return errors.New("--sender is required: a campaign is a sender's")
			}
			var resp struct {
				Repermissions []policy.Repermission `json:"repermissions"`
			}
			if err := client.get(cmd.Context(), pathQuery("/v1/consent/repermission", tg.query()), &resp); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp)
			}
			if len(resp.Repermissions) == 0 {
				fmt.Fprintf(w, "no re-permission campaign of %s\n", targetWords(&tg))
				return nil
			}
			return printRepermissions(w, resp.Repermissions)
		},
	}
	tg.add(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// targetWords names the target of a command in a sentence.
func targetWords(tg *consentTarget) string {
	if !tg.hasList() {
		return "any list of sender " + tg.sender
	}
	return listWords(tg.sender, tg.list)
}

// printRepermissions prints campaigns as a table.
func printRepermissions(w io.Writer, rs []policy.Repermission) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDER\tLIST\tSTATE\tSTARTED\tDEADLINE\tENDED\tCONFIRMED\tRECONFIRMED\tPENDING\tLAPSED")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", r.Sender, dash(r.List), r.State, stamp(r.Started),
			stamp(r.Deadline), stamp(r.Ended), r.Confirmed, r.Reconfirmed, r.Pending, r.Lapsed)
	}
	return tw.Flush()
}

func newRepermissionRunCmd(client *adminClient) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "End now the re-permission campaigns whose deadline has passed",
		Long: `End now every re-permission campaign, of any list, whose deadline has
passed by the server's clock, as the server does at start and every
hour: each address of the list that has not re-confirmed gets a lapsed
record. It prints the campaigns ended.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Ended []policy.Repermission `json:"ended"`
			}
			if err := client.post(cmd.Context(), "/v1/consent/repermission/run", struct{}{}, &resp); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(resp)
			}
			if len(resp.Ended) == 0 {
				fmt.Fprintln(w, "no re-permission campaign is past its deadline")
				return nil
			}
			for _, r := range resp.Ended {
				fmt.Fprintf(w, "ended: re-permission of %s: %d re-confirmed, %d lapsed (of %d confirmed at the start)\n",
					listWords(r.Sender, r.List), r.Reconfirmed, r.Lapsed, r.Confirmed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
