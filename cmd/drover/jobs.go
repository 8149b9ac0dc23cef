package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"drover/httpapi"
)

// jobHelp is the help shared by the commands that run as jobs.
const jobHelp = `The server runs the operation as a job and answers at once; this command
follows the job, printing its progress to stderr, and prints the count when
it ends. Interrupting it, or losing the server, leaves the job running:
drover queue jobs shows it. Exit status: 0 done, 1 failed or refused,
3 outcome unknown (the job may still be running).`

// exitPending is the exit status of a command that lost track of a job.
const exitPending = 3

// pendingError ends a command that lost track of a queue operation that
// may still be running: its outcome is unknown, which is not a failure.
type pendingError struct{ msg string }

func (e *pendingError) Error() string { return e.msg }

// followTiming paces followJob.
type followTiming struct {
	wait    time.Duration // how long the server holds each request for the job to end
	retries int           // failed requests in a row before giving up
	pause   time.Duration // after a failed request
}

var jobFollow = followTiming{wait: 2 * time.Second, retries: 5, pause: time.Second}

// followJob asks the server about a job until it ends, showing its
// progress on progress (one line, rewritten on a terminal). It does not
// report a failure while the job may be running: an interrupt, or a
// server that stops answering, end it with a pendingError naming the job.
func (c *adminClient) followJob(ctx context.Context, j httpapi.Job, progress io.Writer) (httpapi.Job, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	line := newProgressLine(progress)
	defer line.end()
	path := "/v1/jobs/" + url.PathEscape(j.ID) + "?wait=" + jobFollow.wait.String()
	lost := func(cause any) error {
		return &pendingError{fmt.Sprintf("%s: stopped following job %s (%v); it may still be running: see drover queue jobs %s", j.Op, j.ID, cause, j.ID)}
	}
	for fails := 0; j.State == httpapi.JobRunning; {
		var resp struct {
			Job httpapi.Job `json:"job"`
		}
		err := c.get(ctx, path, &resp)
		if ctx.Err() != nil {
			return j, lost("interrupted")
		}
		if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusNotFound {
			return j, &pendingError{fmt.Sprintf("%s: the server no longer knows job %s (restarted?); it may have stopped partway: see drover queue ls", j.Op, j.ID)}
		}
		if err != nil {
			if fails++; fails > jobFollow.retries {
				return j, lost(err)
			}
			select {
			case <-time.After(jobFollow.pause):
			case <-ctx.Done():
			}
			continue
		}
		fails = 0
		j = resp.Job
		if j.State == httpapi.JobRunning {
			line.show(progressText(j))
		}
	}
	return j, nil
}

// progressText describes a running job.
func progressText(j httpapi.Job) string {
	if j.Total == 0 && j.Scanned == 0 {
		return fmt.Sprintf("%s: job %s waiting for another queue operation to finish", j.Op, j.ID)
	}
	pct := 100
	if j.Total > 0 {
		pct = min(100, j.Scanned*100/j.Total)
	}
	return fmt.Sprintf("%s: job %s: %d of about %d recipients scanned (%d%%), %d %s", j.Op, j.ID, j.Scanned, j.Total, pct, j.Affected, affectedWord(j))
}

func affectedWord(j httpapi.Job) string {
	if j.DryRun {
		return "would be affected"
	}
	return "affected"
}

// progressLine shows progress on stderr: rewritten in place on a
// terminal, a line per change elsewhere.
type progressLine struct {
	w    io.Writer
	tty  bool
	last string
}

func newProgressLine(w io.Writer) *progressLine {
	f, ok := w.(*os.File)
	return &progressLine{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *progressLine) show(s string) {
	if s == p.last {
		return
	}
	p.last = s
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
	} else {
		fmt.Fprintln(p.w, s)
	}
}

func (p *progressLine) end() {
	if p.tty && p.last != "" {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// printJobEnd prints the outcome of a finished job as the queue commands
// always did ("flush: 12 recipients affected"), or as JSON; a failed job
// is an error.
func printJobEnd(w io.Writer, j httpapi.Job, asJSON bool) error {
	if asJSON {
		if err := json.NewEncoder(w).Encode(j); err != nil {
			return err
		}
	}
	if j.State == httpapi.JobFailed {
		return fmt.Errorf("%s: job %s failed after %d recipients %s: %s", j.Op, j.ID, j.Affected, affectedWord(j), j.Error)
	}
	switch {
	case asJSON:
	case j.DryRun:
		fmt.Fprintf(w, "%s: %d recipients would be affected (dry run)\n", j.Op, j.Affected)
	default:
		fmt.Fprintf(w, "%s: %d recipients affected\n", j.Op, j.Affected)
	}
	return nil
}

// newJobsCmd is `drover queue jobs [ID]`.
func newJobsCmd(client *adminClient) *cobra.Command {
	var asJSON, follow bool
	cmd := &cobra.Command{
		Use:   "jobs [ID]",
		Short: "List the queue operations (flush, bounce, delete) the server ran recently, or show one",
		Long: `List the queue operations (flush, bounce, delete) the server runs or ran in
the last hour, newest first, or show one. With --follow, follow a running job
to its end as the command that started it does.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if len(args) == 0 {
				if follow {
					return errors.New("--follow needs a job ID")
				}
				var resp struct {
					Jobs []httpapi.Job `json:"jobs"`
				}
				if err := client.get(cmd.Context(), "/v1/jobs", &resp); err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(w).Encode(resp.Jobs)
				}
				return printJobs(w, resp.Jobs)
			}
			var resp struct {
				Job httpapi.Job `json:"job"`
			}
			if err := client.get(cmd.Context(), "/v1/jobs/"+url.PathEscape(args[0]), &resp); err != nil {
				return err
			}
			if follow {
				j, err := client.followJob(cmd.Context(), resp.Job, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				return printJobEnd(w, j, asJSON)
			}
			if asJSON {
				return json.NewEncoder(w).Encode(resp.Job)
			}
			return printJobs(w, []httpapi.Job{resp.Job})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&follow, "follow", false, "follow the job until it ends")
	return cmd
}

func printJobs(w io.Writer, jobs []httpapi.Job) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOP\tSELECTOR\tSTATE\tSCANNED\tAFFECTED\tSTARTED\tTOOK\tERROR")
	now := time.Now()
	for _, j := range jobs {
		state, end := j.State, j.Finished
		if j.DryRun {
			state += " (dry run)"
		}
		if end.IsZero() {
			end = now
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", j.ID, j.Op, selectorText(j), state, j.Scanned, j.Total, j.Affected,
			j.Started.Local().Format(time.DateTime), end.Sub(j.Started).Round(100*time.Millisecond), j.Error)
	}
	return tw.Flush()
}

// selectorText renders a job's selector as the command's flags name it.
func selectorText(j httpapi.Job) string {
	var parts []string
	for _, id := range j.Selector.IDs {
		parts = append(parts, id)
	}
	if j.Selector.All {
		parts = append(parts, "all")
	}
	for _, kv := range [][2]string{{"recipient", j.Selector.Recipient}, {"site", j.Selector.Site}, {"domain", j.Selector.Domain}, {"sender", j.Selector.Sender}, {"campaign", j.Selector.Campaign}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "(all)"
	}
	return strings.Join(parts, " ")
}
