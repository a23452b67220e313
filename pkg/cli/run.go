package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/fsutil"
	"github.com/weirstream/weir/proto/weirpb"
)

func (a *app) newRunCommand() *cobra.Command {
	var (
		detached         bool
		fromSavepoint    string
		allowNonRestored bool
		parallelism      int
		out              outputFormat
	)
	cmd := &cobra.Command{
		Use:   "run [-d] [-s PATH [-n]] [-p N] [-D key=value]... JOBFILE",
		Short: "Submit a job and follow it until it ends (or only submit it, with -d)",
		Long: `Submit the job described in JOBFILE (YAML or JSON) to the JobManager.

Without -d, weir follows the job: progress goes to stderr, and when the job
ends its final status goes to stdout; the exit code is 0 only if the job
FINISHED. Ctrl-C stops following, it does not cancel the job.

With -d (detached), weir prints the job id and exits.

-p sets the job's default parallelism (its parallelism field: operators
without their own parallelism), and -D a key of its config: section, in
place of what the file says.`,
		Example: "  weir run wordcount.yaml\n" +
			"  ID=$(weir run -d wordcount.yaml)\n" +
			"  weir run -d --from-savepoint file:///savepoints/savepoint-7f3c2a-9a8b7c6d5e4f wordcount.yaml\n" +
			"  weir run -p 4 -D execution.checkpointing.interval=10s wordcount.yaml",
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if allowNonRestored && fromSavepoint == "" {
				// Flink ignores it silently; a flag that does nothing is a
				// mistake the user should hear about.
				return usageError{errors.New("--allow-non-restored-state (-n) needs --from-savepoint (-s)")}
			}
			spec, err := readJobFile(path)
			if err != nil {
				return err
			}
			if spec, err = a.withOverrides(path, spec, parallelism); err != nil {
				return err
			}
			if fromSavepoint, err = localPath(fromSavepoint); err != nil {
				return err
			}
			var (
				id       string
				warnings []string
			)
			err = a.call(cmd.Context(), a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) error {
				resp, err := c.SubmitJob(ctx, &weirpb.SubmitJobRequest{
					JobSpec:               spec,
					FileName:              path,
					FromSavepoint:         fromSavepoint,
					AllowNonRestoredState: allowNonRestored,
				})
				id, warnings = resp.GetJobId(), resp.GetWarnings()
				return err
			})
			if err != nil {
				return err
			}
			for _, w := range warnings { // the JobManager's, about the job's config:
				fmt.Fprintf(a.stderr, "warning: %s\n", printable(w))
			}
			if detached {
				fmt.Fprintln(a.stdout, printable(id))
				return nil
			}
			fmt.Fprintf(a.stderr, "Job %s submitted\n", printable(id))
			return a.follow(cmd.Context(), id, out)
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&detached, "detached", "d", false, "only submit the job: print its id and exit")
	f.StringVarP(&fromSavepoint, "from-savepoint", "s", "", "restore the job's state from this savepoint or retained checkpoint (Flink: --fromSavepoint)")
	f.BoolVarP(&allowNonRestored, "allow-non-restored-state", "n", false,
		"allow state in the savepoint that no operator of the job claims (Flink: --allowNonRestoredState)")
	addParallelismFlag(cmd, &parallelism)
	addOutputFlag(cmd, &out)
	return cmd
}

// readJobFile reads a job file of at most config.MaxJobFileSize bytes. It
// reads no more than one byte beyond the limit, whatever the file, and
// refuses what is not a regular file (a directory, a device such as
// /dev/zero, a named pipe that might never end) before reading it.
func readJobFile(path string) ([]byte, error) {
	cannot := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return failf("cannot read job file %s: %v", path, err)
	}
	// Stat before opening: opening a named pipe blocks until a writer comes.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, cannot(err)
	}
	if err := regularFile(path, fi); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, cannot(err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, cannot(err)
	}
	if err := regularFile(path, fi); err != nil { // replaced since the Stat
		return nil, err
	}
	tooLarge := func(size int64) error {
		return failf("job file %s is %s (%d bytes): the limit is %s (%d bytes)",
			path, humanSize(size), size, humanSize(config.MaxJobFileSize), config.MaxJobFileSize)
	}
	if fi.Size() > config.MaxJobFileSize {
		return nil, tooLarge(fi.Size())
	}
	spec, err := io.ReadAll(io.LimitReader(f, config.MaxJobFileSize+1))
	if err != nil {
		return nil, cannot(err)
	}
	if len(spec) > config.MaxJobFileSize { // it grew while being read
		return nil, failf("job file %s is larger than the limit of %s (%d bytes)", path, humanSize(config.MaxJobFileSize), config.MaxJobFileSize)
	}
	return spec, nil
}

// regularFile refuses a job file that is not a regular file, naming what it is.
func regularFile(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return failf("job file %s is %s: want a regular file", path, fsutil.Kind(fi.Mode()))
}

// follow polls the job until it reaches a globally terminal state, printing
// progress to stderr and the final status to stdout.
func (a *app) follow(ctx context.Context, id string, out outputFormat) error {
	ticker := time.NewTicker(a.pollInterval)
	defer ticker.Stop()
	var p progress
	for {
		d, err := a.getJob(ctx, id)
		if err != nil {
			if err == errInterrupted {
				return a.stoppedFollowing(id)
			}
			return err
		}
		if state := d.GetState(); isGloballyTerminal(state) {
			if err := a.writeJobDetails(d, out); err != nil {
				return err
			}
			if state == "FINISHED" {
				return nil
			}
			if m := d.GetStatusMessage(); m != "" {
				return failf("job %s %s: %s", id, state, m)
			}
			return failf("job %s %s", id, state)
		}
		if line, ok := p.next(a.now(), d); ok {
			fmt.Fprintln(a.stderr, printable(line))
		}
		select {
		case <-ctx.Done():
			return a.stoppedFollowing(id)
		case <-ticker.C:
		}
	}
}

// stoppedFollowing is the answer to Ctrl-C during `weir run`: the job is the
// user's, and cancelling it is a separate, explicit decision.
func (a *app) stoppedFollowing(id string) error {
	fmt.Fprintf(a.stderr, "\nStopped following job %s; it keeps running.\nCancel it with: %s\n", printable(id), printable(a.cancelHint(id)))
	return &exitError{code: exitInterrupted}
}

// isGloballyTerminal reports whether a job in this state will never run again
// (Flink's JobStatus.isGloballyTerminalState).
func isGloballyTerminal(state string) bool {
	switch state {
	case "FINISHED", "FAILED", "CANCELED":
		return true
	}
	return false
}

// progress decides which progress lines `weir run` prints: one when the
// line would change, at most one a second, so that a busy job does not flood
// the terminal. A change held back is printed by a later poll, as it is then.
type progress struct {
	last    string
	lastAt  time.Time
	printed bool
}

func (p *progress) next(now time.Time, d *weirpb.JobDetails) (string, bool) {
	line := progressLine(d)
	if p.printed && (line == p.last || now.Sub(p.lastAt) < time.Second) {
		return "", false
	}
	p.last, p.lastAt, p.printed = line, now, true
	return line, true
}

// progressLine summarizes a job in one line, e.g.
// "RUNNING: 4/4 tasks running, 1200 records into counted -> out".
func progressLine(d *weirpb.JobDetails) string {
	var b strings.Builder
	b.WriteString(d.GetState())
	if tasks := d.GetTasks(); len(tasks) > 0 {
		running := 0
		for _, t := range tasks {
			if t.GetState() == "RUNNING" {
				running++
			}
		}
		fmt.Fprintf(&b, ": %d/%d tasks running", running, len(tasks))
		if chain, in := lastChainRecordsIn(tasks); in > 0 || d.GetState() == "RUNNING" {
			fmt.Fprintf(&b, ", %d records into %s", in, chain)
		}
	}
	if r := d.GetRestarts(); r > 0 {
		fmt.Fprintf(&b, ", %d restarts", r)
	}
	if m := d.GetStatusMessage(); m != "" {
		fmt.Fprintf(&b, " (%s)", m)
	}
	return b.String()
}

// lastChainRecordsIn sums records_in over the subtasks of the last operator
// chain in the list, and names it. The API lists the job's vertices in
// topological order, so the last one ends in a sink; a sink emits nothing
// downstream, so what went into its chain is the job's output so far (a
// job with several sinks: the last one's). TaskStatus does not say which
// chains end in sinks.
func lastChainRecordsIn(tasks []*weirpb.TaskStatus) (string, int64) {
	last := tasks[len(tasks)-1].GetOperator()
	var n int64
	for _, t := range tasks {
		if t.GetOperator() == last {
			n += t.GetRecordsIn()
		}
	}
	return last, n
}
