package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"drover/configs"
)

// redacted stands for a secret in `drover config effective`.
const redacted = "<redacted>"

// newConfigEffectiveCmd is `drover config effective [FILE]`: the
// configuration serve would run with, the embedded default layered under
// FILE, as YAML (like `postconf -n`), secrets redacted.
func newConfigEffectiveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "effective [FILE]",
		Short: "Print the configuration serve runs with: the embedded default layered under FILE, secrets redacted",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ""
			if len(args) == 1 {
				path = args[0]
			}
			cfg, err := configs.Load(path)
			if err != nil {
				return err
			}
			out := *cfg
			if out.HTTP.AdminToken != "" {
				out.HTTP.AdminToken = redacted
			}
			out.Senders = make(map[string]*configs.Sender, len(cfg.Senders))
			for name, s := range cfg.Senders {
				c := *s
				if c.PasswordHash != "" {
					c.PasswordHash = redacted
				}
				out.Senders[name] = &c
			}
			b, err := yaml.Marshal(&out)
			if err != nil {
				return fmt.Errorf("config effective: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}

// newReloadCmd is `drover reload`: the running server rereads its
// configuration, as on SIGHUP.
func newReloadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running server reread its configuration file (as SIGHUP; a bad file is refused and the old one kept)",
		Args:  cobra.NoArgs,
	}
	client := addAdminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var resp map[string]any
		if err := client.post(cmd.Context(), "/v1/reload", struct{}{}, &resp); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
		return nil
	}
	return cmd
}
