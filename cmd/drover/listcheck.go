package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"drover/configs"
	"drover/mta/resolve"
	"drover/policy/listcheck"
)

// newMailingListCmd returns `drover list`, the tools for mailing lists.
// (`drover queue list` is the queue's listing; this is another command.)
func newMailingListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "Mailing list tools: check a new list before its first campaign"}
	cmd.AddCommand(newListCheckCmd())
	return cmd
}

// suppressionCheckPath is the admin API endpoint that answers which
// addresses are suppressed: POST {"addresses": [...]}, answer
// {"suppressed": {"addr": "why, in words", ...}}.
const suppressionCheckPath = "/v1/suppressions/check"

// newListCheckCmd returns `drover list check`, the CLI of package
// listcheck.
func newListCheckCmd() *cobra.Command {
	var outPath, reportPath, resolverAddr, sender, list string
	var asJSON, progress, keepTypos, keepRoles, noSuppression bool
	var concurrency int
	cmd := &cobra.Command{
		Use:   "check FILE.csv",
		Short: "Check a list before its first campaign: syntax, duplicates, domains (MX), typos, role accounts, suppressions",
		Long: `Check a list of addresses (CSV, with or without a header row) before its
first campaign, and write the rows that pass to a clean file (same columns)
and what is wrong with the others to a report (CSV: line, address, problem,
detail, suggestion). The address column is the one named email, e-mail or
address, else the first.

Each row is checked for: invalid syntax (RFC 5321/6531: internationalised
addresses pass), duplicates (the first occurrence is kept), a domain without
MX or address records, or that does not exist (no_mx), a null MX (null_mx),
a temporary DNS failure (unverified: kept, but flagged), a typo of a big
mailbox domain (gmial.com: the report suggests gmail.com), role accounts
(info@, postmaster@, ...), and addresses already suppressed on the running
server (asked through its admin API; --no-suppression-check skips that).
Typos and role accounts stay out of the clean file unless --keep-typos or
--keep-roles. Each domain is looked up once.

The outputs are written whole or not at all, with mode 0600 (a list is
personal data). The summary goes to stdout (--json: JSON); progress to
stderr when it is a terminal, or with --progress.`,
		Args: cobra.ExactArgs(1),
	}
	client := addAdminFlags(cmd)
	adminSetup := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if noSuppression {
			return nil
		}
		if err := adminSetup(cmd, args); err != nil {
			return fmt.Errorf("the suppression check asks the running server: %w; or give --no-suppression-check to check the list without it", err)
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if concurrency < 1 {
			return fmt.Errorf("--concurrency %d: at least 1", concurrency)
		}
		cfg, err := configs.Load(cmd.Flag("config").Value.String())
		if err != nil {
			return err
		}
		in := args[0]
		if outPath == "" {
			outPath = derivedPath(in, ".clean.csv")
		}
		if reportPath == "" {
			reportPath = derivedPath(in, ".report.csv")
		}
		if err := distinctPaths(in, outPath, reportPath); err != nil {
			return err
		}
		servers := nonEmpty(cmp.Or(resolverAddr, cfg.Delivery.Resolver))
		for _, s := range servers {
			if _, _, err := net.SplitHostPort(s); err != nil {
				return fmt.Errorf("resolver %q: want HOST:PORT", s)
			}
		}

		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("cannot read the list: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("cannot read the list: %w", err)
		}
		if st.IsDir() {
			return fmt.Errorf("%s is a directory, not a CSV file", in)
		}
		if st.Size() == 0 {
			return fmt.Errorf("%s is empty", in)
		}
		clean, err := createOutput(outPath, "the clean file")
		if err != nil {
			return err
		}
		defer clean.abort()
		report, err := createOutput(reportPath, "the report")
		if err != nil {
			return err
		}
		defer report.abort()

		opt := listcheck.Options{
			Resolver:    resolve.New(resolve.Config{Servers: servers}),
			Concurrency: concurrency,
			KeepTypos:   keepTypos,
			KeepRoles:   keepRoles,
			Size:        st.Size(),
		}
		if !noSuppression {
			opt.Suppressed = func(ctx context.Context, addrs []string) (map[string]string, error) {
				var resp struct {
					Suppressed map[string]string `json:"suppressed"`
				}
				req := map[string]any{"addresses": addrs, "sender": sender, "list": list}
				if err := client.post(ctx, suppressionCheckPath, req, &resp); err != nil {
					return nil, suppressionError(client.base, err)
				}
				return resp.Suppressed, nil
			}
		}
		stderr := cmd.ErrOrStderr()
		tty := term.IsTerminal(int(os.Stderr.Fd()))
		printed := false
		if tty || progress {
			opt.Progress = func(p listcheck.Progress) {
				read := ""
				if p.TotalBytes > 0 {
					read = fmt.Sprintf(", %d%% of the file read", p.Bytes*100/p.TotalBytes)
				}
				if tty {
					fmt.Fprintf(stderr, "\r%d rows checked%s\033[K", p.Rows, read)
				} else {
					fmt.Fprintf(stderr, "list check: %d rows checked%s\n", p.Rows, read)
				}
				printed = true
			}
		}

		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		sum, err := listcheck.Check(ctx, f, clean, report, opt)
		if tty && printed {
			fmt.Fprint(stderr, "\r\033[K")
		}
		switch {
		case errors.Is(err, listcheck.ErrEmpty):
			return fmt.Errorf("%s has no rows", in)
		case err != nil:
			return fmt.Errorf("checking %s: %w", in, err)
		case sum.Rows == 0:
			return fmt.Errorf("%s has a header row but no rows", in)
		}
		if err := clean.commit(); err != nil {
			return err
		}
		if err := report.commit(); err != nil {
			return err
		}

		w := cmd.OutOrStdout()
		if asJSON {
			return json.NewEncoder(w).Encode(struct {
				File       string `json:"file"`
				CleanFile  string `json:"clean_file"`
				ReportFile string `json:"report_file"`
				listcheck.Summary
			}{in, outPath, reportPath, sum})
		}
		fmt.Fprintf(w, "%s:\n", in)
		sum.WriteText(w)
		fmt.Fprintf(w, "clean file:      %s (%s)\nreport:          %s (%s)\n", outPath, plural(sum.Kept, "row"), reportPath, plural(sum.Findings, "finding"))
		if sum.Domains > 0 && sum.DomainsUnverified == sum.Domains {
			fmt.Fprintf(stderr, "warning: no domain could be verified, every lookup failed for now: is the DNS server %s working? (--resolver names another)\n",
				cmp.Or(strings.Join(servers, ", "), "of /etc/resolv.conf"))
		}
		return nil
	}
	fl := cmd.Flags()
	fl.StringVar(&outPath, "out", "", "the clean file (default: FILE.clean.csv)")
	fl.StringVar(&reportPath, "report", "", "the report (default: FILE.report.csv)")
	fl.BoolVar(&asJSON, "json", false, "print the summary as JSON (snake_case)")
	fl.BoolVar(&progress, "progress", false, "print progress to stderr even when it is not a terminal")
	fl.StringVar(&resolverAddr, "resolver", "", "DNS server, HOST:PORT (default: the configuration's delivery.resolver, else the system's)")
	fl.BoolVar(&keepTypos, "keep-typos", false, "keep addresses with a typo'd domain in the clean file (they stay in the report)")
	fl.BoolVar(&keepRoles, "keep-roles", false, "keep role accounts in the clean file (they stay in the report)")
	fl.IntVar(&concurrency, "concurrency", listcheck.DefaultConcurrency, "DNS lookups at once")
	fl.BoolVar(&noSuppression, "no-suppression-check", false, "do not ask the running server which addresses are suppressed")
	fl.StringVar(&sender, "sender", "", "the sender whose suppressions count too (default: only the global ones: confirmed bounces, spam traps)")
	fl.StringVar(&list, "list", "", "with --sender, the list whose unsubscribes count too")
	return cmd
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// derivedPath is the default name of an output: list.csv gives
// list.clean.csv.
func derivedPath(in, suffix string) string {
	if ext := filepath.Ext(in); strings.EqualFold(ext, ".csv") {
		in = strings.TrimSuffix(in, ext)
	}
	return in + suffix
}

// distinctPaths refuses outputs that would overwrite the list or each
// other.
func distinctPaths(in, out, report string) error {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	switch {
	case abs(out) == abs(in):
		return fmt.Errorf("--out %s is the list itself", out)
	case abs(report) == abs(in):
		return fmt.Errorf("--report %s is the list itself", report)
	case abs(out) == abs(report):
		return fmt.Errorf("--out and --report are the same file %s", out)
	}
	return nil
}

// suppressionError says why the admin API did not answer the suppression
// check, and how to go without it.
func suppressionError(base string, err error) error {
	var ue *url.Error
	var ae *apiError
	switch {
	case errors.As(err, &ue):
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("the admin API of the running server (%s) is not reachable: %v; start drover serve (or name it with --server or --config), or give --no-suppression-check to check the list without the suppression list", base, ue.Err)
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		return fmt.Errorf("the server at %s does not answer %s (%s): it predates the check; upgrade it, or give --no-suppression-check", base, suppressionCheckPath, ae.text)
	case errors.As(err, &ae):
		return fmt.Errorf("the server at %s refused it: %s (HTTP %d); or give --no-suppression-check", base, ae.text, ae.status)
	}
	return fmt.Errorf("%w; or give --no-suppression-check", err)
}

// outputFile is an output written to a temporary file beside its path,
// and renamed over it once complete.
type outputFile struct {
	path, what string
	f          *os.File
	w          *bufio.Writer
	done       bool
}

func createOutput(path, what string) (*outputFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot write %s %s: %w", what, path, err)
	}
	return &outputFile{path: path, what: what, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// Write writes to the file; an error names the output.
func (o *outputFile) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		err = fmt.Errorf("%s: %w", o.path, unwrapPath(err))
	}
	return n, err
}

// commit flushes the file to disk and renames it over its path.
func (o *outputFile) commit() error {
	err := o.w.Flush()
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err == nil {
		o.done = true
		err = syncDir(filepath.Dir(o.path))
	}
	if err != nil {
		return fmt.Errorf("cannot write %s %s: %w", o.what, o.path, unwrapPath(err))
	}
	return nil
}

// abort removes the temporary file of an output not committed.
func (o *outputFile) abort() {
	if !o.done {
		o.f.Close()
		os.Remove(o.f.Name())
	}
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
