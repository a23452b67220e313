package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/proto/weirpb"
)

func (a *app) newListCommand() *cobra.Command {
	var (
		out                     outputFormat
		running, scheduled, all bool
	)
	cmd := &cobra.Command{
		Use:     "list [-r] [-s] [-a]",
		Aliases: []string{"ls"},
		Short:   "List the running and scheduled jobs (-a: all the JobManager knows)",
		Long: `List the jobs of the cluster, as flink list does: by default the running
and the scheduled ones; -r only the running ones (RUNNING, RESTARTING,
FAILING, CANCELING), -s only the scheduled ones (CREATED: waiting for
slots), -a all, those that ended (FINISHED, FAILED, CANCELED) too.`,
		Example: "  weir list\n  weir list -a\n  weir list -r -o json",
		Args:    cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var resp *weirpb.ListJobsResponse
			err := a.call(cmd.Context(), a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
				resp, err = c.ListJobs(ctx, &weirpb.ListJobsRequest{})
				return err
			})
			if err != nil {
				return err
			}
			if !running && !scheduled && !all {
				running, scheduled = true, true
			}
			var jobs []*weirpb.JobSummary
			for _, j := range resp.GetJobs() {
				switch jobListing(j.GetState()) {
				case listedRunning:
					if running || all {
						jobs = append(jobs, j)
					}
				case listedScheduled:
					if scheduled || all {
						jobs = append(jobs, j)
					}
				default:
					if all {
						jobs = append(jobs, j)
					}
				}
			}
			if out == outputJSON {
				return writeJSON(a.stdout, toJobSummaryJSON(jobs))
			}
			if len(jobs) == 0 {
				fmt.Fprintln(a.stderr, noJobsText(running, scheduled, all))
				return nil
			}
			now := a.now()
			t := newTable(a.stdout, "ID", "NAME", "STATE", "START TIME", "DURATION")
			for _, j := range jobs {
				t.row(j.GetId(), orDash(j.GetName()), j.GetState(),
					humanTime(j.GetStartTimeUnixMs(), a.loc),
					jobDuration(j.GetStartTimeUnixMs(), j.GetEndTimeUnixMs(), now))
			}
			return t.flush()
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&running, "running", "r", false, "only the running jobs (RUNNING, RESTARTING, FAILING, CANCELING)")
	f.BoolVarP(&scheduled, "scheduled", "s", false, "only the scheduled jobs (CREATED)")
	f.BoolVarP(&all, "all", "a", false, "all jobs, those that ended included")
	addOutputFlag(cmd, &out)
	return cmd
}

// How `weir list` sorts a job, as flink list does: CREATED (and Flink's
// INITIALIZING) is scheduled, a globally terminal state ended, any other
// running.
const (
	listedRunning = iota
	listedScheduled
	listedEnded
)

func jobListing(state string) int {
	switch {
	case state == "CREATED" || state == "INITIALIZING":
		return listedScheduled
	case isGloballyTerminal(state):
		return listedEnded
	}
	return listedRunning
}

// noJobsText is what `weir list` says when it lists nothing.
func noJobsText(running, scheduled, all bool) string {
	switch {
	case all:
		return "No jobs."
	case running && scheduled:
		return "No running or scheduled jobs."
	case running:
		return "No running jobs."
	}
	return "No scheduled jobs."
}

func (a *app) newStatusCommand() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:     "status JOBID",
		Short:   "Show a job's state, its tasks and their progress",
		Example: "  weir status 7f3c2a1e\n  weir status -o json 7f3c2a1e | jq .tasks",
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			d, err := a.getJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.writeJobDetails(d, out)
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) getJob(ctx context.Context, id string) (*weirpb.JobDetails, error) {
	var d *weirpb.JobDetails
	err := a.call(ctx, a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
		d, err = c.GetJob(ctx, &weirpb.GetJobRequest{JobId: id})
		return err
	})
	return d, err
}

func (a *app) writeJobDetails(d *weirpb.JobDetails, out outputFormat) error {
	if out == outputJSON {
		return writeJSON(a.stdout, toJobDetailsJSON(d))
	}
	return writeJobDetailsTable(a.stdout, d, a.now(), a.loc)
}

// writeJobDetailsTable writes the human form of `weir status`: a header block,
// the task table, and the exceptions if there are any.
func writeJobDetailsTable(w io.Writer, d *weirpb.JobDetails, now time.Time, loc *time.Location) error {
	h := newTable(w)
	h.row("Job:", d.GetId())
	h.row("Name:", orDash(d.GetName()))
	h.row("State:", d.GetState())
	par := strconv.Itoa(int(d.GetParallelism()))
	if mp := d.GetMaxParallelism(); mp > 0 {
		par += fmt.Sprintf(" (max %d)", mp)
	}
	h.row("Parallelism:", par)
	h.row("Started:", humanTime(d.GetStartTimeUnixMs(), loc))
	h.row("Duration:", jobDuration(d.GetStartTimeUnixMs(), d.GetEndTimeUnixMs(), now))
	if r := d.GetRestarts(); r > 0 {
		h.row("Restarts:", strconv.Itoa(int(r)))
	}
	if cp := d.GetCheckpoints(); cp.GetCompleted()+cp.GetFailed()+cp.GetInProgress() > 0 {
		s := fmt.Sprintf("%d completed, %d failed, %d in progress", cp.GetCompleted(), cp.GetFailed(), cp.GetInProgress())
		if l := cp.GetLatest(); l != nil {
			s += fmt.Sprintf("; latest %d (%s, %s) %s", l.GetId(), humanSize(l.GetSizeBytes()),
				humanDuration(time.Duration(l.GetDurationMs())*time.Millisecond), orDash(l.GetPath()))
		}
		h.row("Checkpoints:", s)
	}
	if m := d.GetStatusMessage(); m != "" {
		h.row("Message:", m)
	}
	if err := h.flush(); err != nil {
		return err
	}
	if len(d.GetTasks()) > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "OPERATOR", "SUBTASK", "STATE", "TASKMANAGER", "RECORDS IN", "RECORDS OUT")
		for _, ts := range d.GetTasks() {
			t.row(ts.GetOperator(), strconv.Itoa(int(ts.GetSubtask())), ts.GetState(), orDash(ts.GetTaskmanager()),
				strconv.FormatInt(ts.GetRecordsIn(), 10), strconv.FormatInt(ts.GetRecordsOut(), 10))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(d.GetExceptions()) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Exceptions:")
		for _, e := range d.GetExceptions() {
			fmt.Fprintf(w, "  %s  %s: %s\n", humanTime(e.GetTimeUnixMs(), loc), printable(orDash(e.GetTask())), printable(e.GetMessage()))
		}
	}
	// A task's failure is the first thing a user needs after a FAILED; show
	// those the exception history does not already tell.
	told := make(map[string]bool, len(d.GetExceptions()))
	for _, e := range d.GetExceptions() {
		told[e.GetMessage()] = true
	}
	header := false
	for _, ts := range d.GetTasks() {
		if f := ts.GetFailure(); f != "" && !told[f] {
			if !header {
				fmt.Fprintln(w)
				fmt.Fprintln(w, "Task failures:")
				header = true
			}
			fmt.Fprintf(w, "  %s (subtask %d, attempt %d): %s\n", printable(ts.GetOperator()), ts.GetSubtask(), ts.GetAttempt(), printable(f))
		}
	}
	return nil
}

func (a *app) newCancelCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "cancel JOBID",
		Short:   "Cancel a job (its state is not kept; use stop to take a savepoint first)",
		Example: "  weir cancel 7f3c2a1e",
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id := args[0]
			err := a.call(cmd.Context(), a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) error {
				_, err := c.CancelJob(ctx, &weirpb.CancelJobRequest{JobId: id})
				return err
			})
			if err != nil {
				return err
			}
			// Cancelling is asynchronous: the tasks are told to stop and the
			// job is CANCELED once all have. Say which of the two it is.
			verb := "Cancelling"
			if d, err := a.getJob(cmd.Context(), id); err == nil && d.GetState() == "CANCELED" {
				verb = "Cancelled"
			}
			fmt.Fprintf(a.stdout, "%s job %s\n", verb, printable(id))
			return nil
		}),
	}
}

// savepointTimeout is --timeout if the user set it, else the longer default
// a savepoint needs.
func (a *app) savepointTimeout(cmd *cobra.Command) time.Duration {
	if f := cmd.Flags().Lookup("timeout"); f != nil && f.Changed {
		return a.timeout
	}
	return defaultSavepointTimeout
}

func (a *app) newStopCommand() *cobra.Command {
	var dir string
	var drain bool
	var typ savepointType
	cmd := &cobra.Command{
		Use:   "stop [--savepoint-path DIR] [--drain] JOBID",
		Short: "Stop a job with a savepoint, to resume it later with run --from-savepoint",
		Example: "  weir stop 7f3c2a1e\n" +
			"  weir stop --savepoint-path file:///savepoints --drain 7f3c2a1e",
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id := args[0]
			var resp *weirpb.StopJobResponse
			fmt.Fprintf(a.stderr, "Stopping job %s with a savepoint...\n", printable(id))
			err := a.call(cmd.Context(), a.savepointTimeout(cmd), func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
				resp, err = c.StopJob(ctx, &weirpb.StopJobRequest{JobId: id, TargetDirectory: dir, Drain: drain})
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Stopped job %s. Savepoint:\n", printable(id))
			fmt.Fprintln(a.stdout, printable(resp.GetPath()))
			return nil
		}),
	}
	cmd.Flags().StringVarP(&dir, "savepoint-path", "p", "", "directory for the savepoint (default: execution.checkpointing.savepoint-dir) (Flink: --savepointPath)")
	cmd.Flags().BoolVarP(&drain, "drain", "d", false, "end the input first (operators flush) and then take the savepoint: for a job that will not be resumed")
	addSavepointTypeFlag(cmd, &typ)
	return cmd
}

func (a *app) newSavepointCommand() *cobra.Command {
	var dispose bool
	var typ savepointType
	cmd := &cobra.Command{
		Use:   "savepoint JOBID [TARGET_DIR] | savepoint --dispose PATH",
		Short: "Trigger a savepoint of a running job, or dispose of one",
		Example: "  weir savepoint 7f3c2a1e\n" +
			"  weir savepoint 7f3c2a1e file:///savepoints\n" +
			"  weir savepoint --dispose file:///savepoints/savepoint-7f3c2a-9a8b7c6d5e4f",
		Args: func(cmd *cobra.Command, args []string) error {
			if dispose {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.RangeArgs(1, 2)(cmd, args)
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			timeout := a.savepointTimeout(cmd)
			if dispose {
				path, err := localPath(args[0])
				if err != nil {
					return err
				}
				err = a.call(cmd.Context(), timeout, func(ctx context.Context, c weirpb.JobServiceClient) error {
					_, err := c.DisposeSavepoint(ctx, &weirpb.DisposeSavepointRequest{Path: path})
					return err
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Disposed savepoint %s\n", printable(path))
				return nil
			}
			id, dir := args[0], ""
			if len(args) == 2 {
				// A relative target is left to the JobManager to refuse:
				// the JobManager and every TaskManager write there, on
				// machines where weir's working directory means nothing.
				dir = args[1]
			}
			fmt.Fprintf(a.stderr, "Triggering savepoint for job %s...\n", printable(id))
			var resp *weirpb.TriggerSavepointResponse
			err := a.call(cmd.Context(), timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
				resp, err = c.TriggerSavepoint(ctx, &weirpb.TriggerSavepointRequest{JobId: id, TargetDirectory: dir})
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Savepoint completed. Resume with: weir run --from-savepoint %s JOBFILE\n", printable(resp.GetPath()))
			fmt.Fprintln(a.stdout, printable(resp.GetPath()))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&dispose, "dispose", "d", false, "dispose of the savepoint at PATH instead of triggering one")
	addSavepointTypeFlag(cmd, &typ)
	return cmd
}

// savepointType is --type of savepoint and stop: Flink's choice between
// the canonical format and the state backend's native one. weir writes one
// format, which any weir reads, so canonical is accepted and native is
// refused rather than silently ignored.
type savepointType string

func (t *savepointType) String() string { return string(*t) }
func (t *savepointType) Type() string   { return "canonical" }
func (t *savepointType) Set(s string) error {
	switch strings.ToLower(s) {
	case "canonical":
		*t = "canonical"
		return nil
	case "native":
		return errors.New("weir's savepoints have one format, canonical (any weir job reads it, whatever its state); there is no native format: leave --type out or pass canonical")
	}
	return fmt.Errorf("unknown savepoint format %q: weir writes canonical savepoints only", clip(s))
}

func addSavepointTypeFlag(cmd *cobra.Command, t *savepointType) {
	*t = "canonical"
	cmd.Flags().VarP(t, "type", "t", "the savepoint's format: canonical, the only one weir has (Flink's --type)")
}

func (a *app) newCheckpointsCommand() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "checkpoints JOBID [CHECKPOINT_ID]",
		Short: "List a job's recent checkpoints, or show one checkpoint per subtask",
		Long: "With a CHECKPOINT_ID, show that checkpoint's details as Flink does: per subtask, its\n" +
			"acknowledgement, state size, alignment, and the sync and async durations of its snapshot.",
		Example: "  weir checkpoints 7f3c2a1e\n  weir checkpoints -o json 7f3c2a1e\n  weir checkpoints 7f3c2a1e 12",
		Args:    cobra.RangeArgs(1, 2),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				return a.checkpointDetails(cmd.Context(), args[0], args[1], out)
			}
			var resp *weirpb.ListCheckpointsResponse
			err := a.call(cmd.Context(), a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
				resp, err = c.ListCheckpoints(ctx, &weirpb.ListCheckpointsRequest{JobId: args[0]})
				return err
			})
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(a.stdout, toCheckpointsJSON(resp.GetCheckpoints()))
			}
			if len(resp.GetCheckpoints()) == 0 {
				fmt.Fprintf(a.stderr, "No checkpoints for job %s.\n", printable(args[0]))
				return nil
			}
			// A failed checkpoint has no path: its last column says why it failed.
			t := newTable(a.stdout, "ID", "TYPE", "STATUS", "TRIGGER TIME", "DURATION", "SIZE", "IN-FLIGHT", "ALIGNMENT", "PATH OR FAILURE")
			for _, c := range resp.GetCheckpoints() {
				t.row(strconv.FormatInt(c.GetId(), 10), checkpointType(c), c.GetStatus(),
					humanTime(c.GetTriggerTimeUnixMs(), a.loc),
					humanDuration(time.Duration(c.GetDurationMs())*time.Millisecond),
					humanSize(c.GetSizeBytes()),
					humanSize(c.GetPersistedInFlightBytes()),
					humanDuration(time.Duration(c.GetAlignmentMs())*time.Millisecond),
					orDash(cmp.Or(c.GetPath(), c.GetFailure())))
			}
			return t.flush()
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// checkpointDetails is `weir checkpoints JOBID CHECKPOINT_ID`: the
// checkpoint's row, then one row per subtask that acknowledged it.
func (a *app) checkpointDetails(ctx context.Context, jobID, arg string, out outputFormat) error {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("checkpoint id %q: want a positive integer", printable(arg))
	}
	var resp *weirpb.ListCheckpointsResponse
	err = a.call(ctx, a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
		resp, err = c.ListCheckpoints(ctx, &weirpb.ListCheckpointsRequest{JobId: jobID, CheckpointId: id})
		return err
	})
	if err != nil {
		return err
	}
	if len(resp.GetCheckpoints()) != 1 || resp.GetCheckpoints()[0].GetId() != id {
		return fmt.Errorf("checkpoint %d of job %s: the JobManager answered %d checkpoints, not this one", id, printable(jobID), len(resp.GetCheckpoints()))
	}
	c := resp.GetCheckpoints()[0]
	if out == outputJSON {
		return writeJSON(a.stdout, toCheckpointDetailsJSON(c))
	}
	fmt.Fprintf(a.stdout, "Checkpoint %d (%s) %s, triggered %s, %s, %s",
		c.GetId(), checkpointType(c), c.GetStatus(), humanTime(c.GetTriggerTimeUnixMs(), a.loc),
		humanDuration(time.Duration(c.GetDurationMs())*time.Millisecond), humanSize(c.GetSizeBytes()))
	if p := cmp.Or(c.GetPath(), c.GetFailure()); p != "" {
		fmt.Fprintf(a.stdout, ", %s", printable(p))
	}
	fmt.Fprintf(a.stdout, "\n%d subtasks acknowledged.\n", len(c.GetSubtasks()))
	if len(c.GetSubtasks()) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout)
	t := newTable(a.stdout, "OPERATOR", "SUBTASK", "ACKNOWLEDGED", "END TO END", "SIZE", "IN-FLIGHT", "ALIGNMENT", "SYNC", "ASYNC")
	for _, s := range c.GetSubtasks() {
		t.row(printable(s.GetOperator()), strconv.Itoa(int(s.GetSubtask())),
			humanTime(s.GetAckTimeUnixMs(), a.loc),
			humanDuration(time.Duration(s.GetEndToEndDurationMs())*time.Millisecond),
			humanSize(s.GetStateSize()), humanSize(s.GetPersistedInFlightBytes()),
			humanDuration(time.Duration(s.GetAlignmentMs())*time.Millisecond),
			snapshotDuration(s.GetSyncDurationMicros()), snapshotDuration(s.GetAsyncDurationMicros()))
	}
	return t.flush()
}

// snapshotDuration shows a sync or async duration to the microsecond below
// a millisecond: a copy-on-write sync part is usually a few µs.
func snapshotDuration(micros int64) string {
	if d := time.Duration(micros) * time.Microsecond; d >= time.Millisecond {
		return humanDuration(d)
	}
	return fmt.Sprintf("%dµs", max(micros, 0))
}

// checkpointType is the TYPE column of `weir checkpoints`.
func checkpointType(c *weirpb.CheckpointInfo) string {
	switch {
	case c.GetSavepoint():
		return "savepoint"
	case c.GetUnaligned():
		return "unaligned"
	}
	return "checkpoint"
}

func (a *app) newTaskManagersCommand() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:     "taskmanagers",
		Aliases: []string{"tm", "tms"},
		Short:   "List the TaskManagers registered with the JobManager and their slots",
		Example: "  weir taskmanagers\n  weir taskmanagers -o json",
		Args:    cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var resp *weirpb.ListTaskManagersResponse
			err := a.call(cmd.Context(), a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
				resp, err = c.ListTaskManagers(ctx, &weirpb.ListTaskManagersRequest{})
				return err
			})
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(a.stdout, toTaskManagersJSON(resp.GetTaskmanagers()))
			}
			if len(resp.GetTaskmanagers()) == 0 {
				fmt.Fprintln(a.stderr, "No TaskManagers registered.")
				return nil
			}
			now := a.now()
			t := newTable(a.stdout, "ID", "ADDRESS", "DATA ADDRESS", "SLOTS", "LAST HEARTBEAT")
			for _, tm := range resp.GetTaskmanagers() {
				hb := "-"
				if ms := tm.GetLastHeartbeatUnixMs(); ms != 0 {
					hb = humanDuration(now.Sub(time.UnixMilli(ms))) + " ago"
				}
				t.row(tm.GetId(), orDash(tm.GetAddress()), orDash(tm.GetDataAddress()),
					fmt.Sprintf("%d/%d", tm.GetSlotsFree(), tm.GetSlotsTotal()), hb)
			}
			return t.flush()
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) newVersionCommand() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print weir's version",
		Args:  cobra.NoArgs,
		RunE: runE(func(*cobra.Command, []string) error {
			v := versionJSON{Version: Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			if out == outputJSON {
				return writeJSON(a.stdout, v)
			}
			_, err := fmt.Fprintf(a.stdout, "weir %s (%s %s)\n", v.Version, v.Go, v.Platform)
			return err
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// completionShells are the shells `weir completion` writes scripts for.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

func (a *app) newCompletionCommand() *cobra.Command {
	var noDesc bool
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the completion script of weir for a shell, for example:

  source <(weir completion bash)
  weir completion zsh > "${fpath[1]}/_weir"
  weir completion fish > ~/.config/fish/completions/weir.fish`,
		ValidArgs: completionShells,
		Args: func(_ *cobra.Command, args []string) error {
			want := "bash, zsh, fish or powershell"
			switch {
			case len(args) != 1:
				return fmt.Errorf("want one shell: %s", want)
			case !slices.Contains(completionShells, args[0]):
				return fmt.Errorf("unknown shell %q: want %s", args[0], want)
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, !noDesc)
			case "zsh":
				if noDesc {
					return root.GenZshCompletionNoDesc(a.stdout)
				}
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, !noDesc)
			default:
				if noDesc {
					return root.GenPowerShellCompletion(a.stdout)
				}
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
		}),
	}
	cmd.Flags().BoolVar(&noDesc, "no-descriptions", false, "leave the descriptions of commands and flags out of the completions")
	return cmd
}
