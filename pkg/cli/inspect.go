package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/snapshot"
)

// StorageDrivers registers checkpoint storage drivers beyond the built-in
// file and jobmanager ones, configured by the keys given to the commands
// that read storage themselves (--config, -D): main passes s3.Register, as
// the daemons' main functions do, so that this package links no storage
// client and the choice of drivers stays with main.
type StorageDrivers func(*config.Config) error

func (a *app) newCheckpointCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Work with checkpoints and savepoints in storage",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(a.newInspectCommand())
	return cmd
}

func (a *app) newInspectCommand() *cobra.Command {
	var (
		out    outputFormat
		verify bool
	)
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Show what a checkpoint or savepoint holds, reading its storage directly",
		Long: `inspect reads the _metadata of the checkpoint or savepoint at PATH (a
directory or its _metadata, on a filesystem or s3://bucket/prefix) and shows
its job, id, kind, operators and state sizes. No JobManager is needed.

With --verify it also reads every state object and checks its size and
CRC-32C; any missing, truncated or corrupt object is listed and weir exits 1.

S3 credentials and endpoint come from the same keys as the daemons' (s3.*),
given with --config or -D, or from the standard AWS environment.`,
		Example: "  weir checkpoint inspect /data/checkpoints/7f3c2a1e/chk-42\n" +
			"  weir checkpoint inspect --verify -o json s3://state/savepoints/savepoint-7f3c2a-9a8b7c6d5e4f\n" +
			"  weir checkpoint inspect -D s3.endpoint=http://127.0.0.1:9000 -D s3.path-style-access=true s3://state/cp/7f3c2a1e/chk-42",
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if err := a.registerStorage(); err != nil {
				return err
			}
			rep, err := inspect(cmd.Context(), args[0], verify)
			if err != nil {
				if cmd.Context().Err() != nil {
					return errInterrupted
				}
				return failf("%v", err)
			}
			if out == outputJSON {
				if err := writeJSON(a.stdout, rep.json()); err != nil {
					return err
				}
			} else if err := rep.writeTable(a.stdout, verify); err != nil {
				return err
			}
			if len(rep.problems) > 0 {
				return failf("%s failed verification: %d problem(s)", rep.path, len(rep.problems))
			}
			return nil
		}),
	}
	addOutputFlag(cmd, &out)
	f := cmd.Flags()
	f.BoolVar(&verify, "verify", false, "read every state object and check its checksum (exit 1 if any is missing, truncated or corrupt)")
	return cmd
}

// registerStorage lets main's drivers read the configuration (--config,
// -D).
func (a *app) registerStorage() error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	for _, register := range a.services.Storage {
		if err := register(cfg); err != nil {
			return failf("%v", err)
		}
	}
	return nil
}

// inspection is what inspect found: the metadata's figures and, with
// --verify, the problems of its state objects.
type inspection struct {
	path     string // as given, for messages
	m        *snapshot.Metadata
	ops      []operatorFigures
	size     int64
	inFlight int64
	objects  int // state objects read by --verify
	problems []string
}

type operatorFigures struct {
	op       *snapshot.OperatorState
	state    int64 // everything but in-flight data
	inFlight int64
	subtasks []subtaskFigures
}

type subtaskFigures struct {
	state, inFlight int64
	finished        bool
}

func isInFlight(k snapshot.StateKind) bool {
	return k == snapshot.KindInputChannel || k == snapshot.KindResultSubpartition
}

// inspect loads the metadata at path and, if verify, reads every state
// object it references. A metadata that cannot be read is an error; a bad
// state object is a problem of the report.
func inspect(ctx context.Context, path string, verify bool) (*inspection, error) {
	m, err := snapshot.LoadMetadata(ctx, path)
	if err != nil {
		return nil, err
	}
	rep := &inspection{path: path, m: m, ops: make([]operatorFigures, len(m.Operators)), problems: []string{}}
	for i := range m.Operators {
		op := &m.Operators[i]
		of := operatorFigures{op: op, subtasks: make([]subtaskFigures, len(op.Subtasks))}
		for j, st := range op.Subtasks {
			sf := subtaskFigures{finished: st.Finished}
			for _, o := range st.State {
				if isInFlight(o.Kind) {
					sf.inFlight += o.Size
				} else {
					sf.state += o.Size
				}
			}
			of.subtasks[j] = sf
			of.state += sf.state
			of.inFlight += sf.inFlight
		}
		rep.ops[i] = of
		rep.size += of.state + of.inFlight
		rep.inFlight += of.inFlight
	}
	if !verify {
		return rep, nil
	}
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for k, o := range st.State {
				rep.objects++
				if err := readState(ctx, m.Dir, o.StateHandle); err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					rep.problems = append(rep.problems,
						fmt.Sprintf("operator %q subtask %d %s state %d: %v", op.ID, st.Subtask, o.Kind, k, err))
				}
			}
		}
	}
	return rep, nil
}

// readState reads one state object to its end: OpenState checks its size
// at once and its CRC-32C at the end.
func readState(ctx context.Context, dir string, h snapshot.StateHandle) error {
	rc, err := snapshot.OpenState(ctx, dir, h)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	return errors.Join(err, rc.Close())
}

func (r *inspection) kind() string {
	if r.m.Savepoint {
		return "savepoint"
	}
	return "checkpoint"
}

// unaligned: the metadata records no alignment mode, but only an
// unaligned checkpoint holds in-flight data.
func (r *inspection) unaligned() bool { return r.inFlight > 0 || r.hasChannelState() }

func (r *inspection) hasChannelState() bool {
	for _, op := range r.m.Operators {
		for _, st := range op.Subtasks {
			for _, o := range st.State {
				if isInFlight(o.Kind) {
					return true
				}
			}
		}
	}
	return false
}

// inspectJSON is the -o json shape of `weir checkpoint inspect`.
type inspectJSON struct {
	ID            int64                 `json:"id"`
	JobID         string                `json:"job_id"`
	Kind          string                `json:"kind"`
	Unaligned     bool                  `json:"unaligned"`
	SizeBytes     int64                 `json:"size_bytes"`
	InFlightBytes int64                 `json:"in_flight_bytes"`
	Operators     []inspectOperatorJSON `json:"operators"`
	Valid         bool                  `json:"valid"`
	Problems      []string              `json:"problems"`
}

type inspectOperatorJSON struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Parallelism    int    `json:"parallelism"`
	MaxParallelism int    `json:"max_parallelism"`
	// StateBytes excludes in-flight data (counted in in_flight_bytes), so
	// that the operators' state_bytes and in_flight_bytes add up to
	// size_bytes.
	StateBytes int64 `json:"state_bytes"`
}

func (r *inspection) json() inspectJSON {
	ops := make([]inspectOperatorJSON, len(r.ops))
	for i, of := range r.ops {
		ops[i] = inspectOperatorJSON{
			ID: of.op.ID, Type: of.op.Type, Parallelism: of.op.Parallelism,
			MaxParallelism: r.m.MaxParallelism, StateBytes: of.state,
		}
	}
	return inspectJSON{
		ID: r.m.CheckpointID, JobID: r.m.JobID, Kind: r.kind(), Unaligned: r.unaligned(),
		SizeBytes: r.size, InFlightBytes: r.inFlight, Operators: ops,
		Valid: len(r.problems) == 0, Problems: r.problems,
	}
}

func (r *inspection) writeTable(w io.Writer, verified bool) error {
	m := r.m
	head := newTable(w)
	head.row("Path:", m.Dir)
	job := m.JobID
	if m.JobName != "" {
		job += " (" + m.JobName + ")"
	}
	head.row("Job:", job)
	head.row("ID:", strconv.FormatInt(m.CheckpointID, 10))
	head.row("Kind:", r.kind())
	head.row("Unaligned:", yesNo(r.unaligned()))
	head.row("Max parallelism:", strconv.Itoa(m.MaxParallelism))
	head.row("Size:", fmt.Sprintf("%s (%d bytes)", humanSize(r.size), r.size))
	head.row("In-flight:", fmt.Sprintf("%s (%d bytes)", humanSize(r.inFlight), r.inFlight))
	if err := head.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := newTable(w, "OPERATOR", "TYPE", "SUBTASK", "PARALLELISM", "MAX PARALLELISM", "STATE", "IN-FLIGHT", "FINISHED")
	for _, of := range r.ops {
		p, maxP := strconv.Itoa(of.op.Parallelism), strconv.Itoa(m.MaxParallelism)
		t.row(of.op.ID, orDash(of.op.Type), "all", p, maxP, humanSize(of.state), humanSize(of.inFlight), "-")
		for i, sf := range of.subtasks {
			t.row(of.op.ID, orDash(of.op.Type), strconv.Itoa(i), p, maxP, humanSize(sf.state), humanSize(sf.inFlight), yesNo(sf.finished))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !verified {
		return nil
	}
	fmt.Fprintln(w)
	if len(r.problems) == 0 {
		fmt.Fprintf(w, "Verified %d state object(s): all present, complete and matching their checksums.\n", r.objects)
		return nil
	}
	fmt.Fprintf(w, "Verified %d state object(s): %d problem(s):\n", r.objects, len(r.problems))
	for _, p := range r.problems {
		fmt.Fprintf(w, "  %s\n", printable(p))
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
