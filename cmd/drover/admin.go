package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"drover/configs"
	"drover/queue"
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
				return fmt.Errorf("%s: %w", args[0], err)
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
	cmd.AddCommand(check, show)
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
	cmd.PersistentFlags().StringVar(&c.token, "token", "", "admin bearer token (default: the configuration's http.admin_token, or $DROVER_ADMIN_TOKEN)")
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
		return nil
	}
	return c
}

func (c *adminClient) get(path string, out any) error {
	req, err := http.NewRequest("GET", strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("is drover serve running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Inspect the queue of a running server (admin API)"}
	client := addAdminFlags(cmd)
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List destinations: recipients waiting, oldest message, last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Destinations []queue.DestSummary `json:"destinations"`
			}
			if err := client.get("/v1/queue", &resp); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Destinations)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DESTINATION\tRECIPIENTS\tOLDEST\tLAST ERROR")
			for _, d := range resp.Destinations {
				age := "-"
				if !d.Oldest.IsZero() {
					age = time.Since(d.Oldest).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.Dest, d.Recipients, age, d.LastError)
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one queued message and its recipients",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Message    queue.Message     `json:"message"`
				Recipients []queue.Recipient `json:"recipients"`
			}
			if err := client.get("/v1/queue/"+url.PathEscape(args[0]), &resp); err != nil {
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
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Addr, r.Attempts, r.NextAttempt.Format(time.RFC3339), r.LastError)
			}
			return tw.Flush()
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(ls, show)
	return cmd
}
