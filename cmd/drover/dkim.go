package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"drover/mta/dkim"
)

// newDKIMCmd returns "drover dkim", the DKIM key commands.
func newDKIMCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dkim",
		Short: "Manage DKIM signing keys",
	}
	cmd.AddCommand(newDKIMKeygenCmd())
	return cmd
}

func newDKIMKeygenCmd() *cobra.Command {
	var (
		domain, selector, algo, out string
		bits                        int
		force                       bool
	)
	cmd := &cobra.Command{
		Use:   "keygen --domain DOMAIN --selector SELECTOR",
		Short: "Generate a DKIM private key and print its DNS TXT record",
		Long: `Generate a DKIM private key for a signing domain and selector.

The key is written as PKCS#8 PEM with mode 0600 to --out (default
SELECTOR._domainkey.DOMAIN.pem); an existing file is kept unless --force is
given. The DNS TXT record to publish is printed on standard output, as a
zone-file line with the value split into strings of at most 255 characters.

Send with both an RSA key (understood by every receiver) and an Ed25519 key
(RFC 8463, smaller and faster) under two selectors to get two signatures.`,
		Example: `  drover dkim keygen --domain news.example.com --selector rsa2025
  drover dkim keygen --domain news.example.com --selector ed2025 --algo ed25519`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if algo == "ed25519" {
				if cmd.Flags().Changed("bits") {
					return errors.New("--bits applies to RSA keys only; Ed25519 keys have a fixed size")
				}
				bits = 0
			}
			if out == "" {
				out = selector + "._domainkey." + strings.ToLower(strings.TrimSuffix(domain, ".")) + ".pem"
			}
			if !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("%s exists; use --force to replace it", out)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			pemBytes, txt, err := dkim.GenerateKey(algo, bits)
			if err != nil {
				return err
			}
			record, err := dkim.ZoneRecord(domain, selector, txt)
			if err != nil {
				return err
			}
			if err := writeKeyFile(out, pemBytes, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote the private key to %s (mode 0600). Publish this DNS record:\n", out)
			fmt.Fprintln(cmd.OutOrStdout(), record)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "", "signing domain (d=), normally the From domain")
	f.StringVar(&selector, "selector", "", "selector (s=) naming the key in DNS")
	f.StringVar(&algo, "algo", "rsa", "key algorithm: rsa or ed25519")
	f.IntVar(&bits, "bits", 2048, "RSA key size in bits (2048 to 4096)")
	f.StringVar(&out, "out", "", "private key file (default SELECTOR._domainkey.DOMAIN.pem)")
	f.BoolVar(&force, "force", false, "replace an existing key file")
	for _, name := range []string{"domain", "selector"} {
		if err := cmd.MarkFlagRequired(name); err != nil {
			panic(err) // only if the flag above is misnamed
		}
	}
	return cmd
}

// writeKeyFile writes a private key with mode 0600. Without force it fails
// if path exists; with force it replaces path atomically (temp file and
// rename), so a reader never sees half a key.
func writeKeyFile(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s exists; use --force to replace it", path)
			}
			return err
		}
		if err := writeAndClose(f, data); err != nil {
			_ = os.Remove(path)
			return err
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name() // CreateTemp makes it 0600
	err = writeAndClose(f, data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func writeAndClose(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}
