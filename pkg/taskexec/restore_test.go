package taskexec

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
	"github.com/weirstream/weir/proto/weirpb"
)

const restoreID = 7

// withRestore makes d attempt 1, restoring from r.
func withRestore(t *testing.T, d *weirpb.TaskDeploymentDescriptor, r *snapshot.TaskRestore) *weirpb.TaskDeploymentDescriptor {
	t.Helper()
	b, err := snapshot.EncodeTaskRestore(r)
	if err != nil {
		t.Fatal(err)
	}
	d.Execution.Attempt = 1
	d.RestoreState = b
	d.RestoreCheckpointId = r.CheckpointID
	return d
}

// oldItems and oldKeyGroup are the state writeOldState gives old subtask s.
func oldItems(s int) []string { return []string{fmt.Sprintf("s%d-a", s), fmt.Sprintf("s%d-b", s)} }

// oldKeyGroup is the keyed state of key group kg written by old subtask s;
// every fifth key group is empty.
func oldKeyGroup(kg, s int) string {
	if kg%5 == 0 {
		return ""
	}
	return fmt.Sprintf("k%d@s%d;", kg, s)
}

// writeOldState writes checkpoint restoreID of operator op at parallelism
// oldP with the task's own writer functions: items and keyed state for
// every old subtask.
func writeOldState(t *testing.T, st snapshot.Storage, job, op string, oldP int) (*snapshot.OperatorState, snapshot.Location) {
	t.Helper()
	loc, err := st.CheckpointLocation(job, restoreID)
	if err != nil {
		t.Fatal(err)
	}
	ops := &snapshot.OperatorState{ID: op, Type: "test-ckpt", Parallelism: oldP}
	for s := range oldP {
		var items [][]byte
		for _, it := range oldItems(s) {
			items = append(items, []byte(it))
		}
		itemsObj, err := writeItems(t.Context(), loc, fmt.Sprintf("%s-%d-items", op, s), items)
		if err != nil {
			t.Fatal(err)
		}
		ko, err := writeKeyed(context.Background(), loc, fmt.Sprintf("%s-%d-keyed", op, s), state.KeyGroupRangeForSubtask(maxP, oldP, s),
			func(kg int, w io.Writer) error {
				_, err := w.Write([]byte(oldKeyGroup(kg, s)))
				return err
			})
		if err != nil {
			t.Fatal(err)
		}
		ops.Subtasks = append(ops.Subtasks, snapshot.SubtaskState{Subtask: s, State: []snapshot.StateObject{itemsObj, ko}})
	}
	return ops, loc
}

// restoredVertex is a chain that restores and ends at once: an empty
// source, then test-ckpt "c" named name.
func restoredVertex(t *testing.T, m *network.Manager, name string, par int, props map[string]any) *vertex {
	p := map[string]any{"name": name}
	for k, v := range props {
		p[k] = v
	}
	ms := make([]*network.Manager, par)
	for i := range ms {
		ms[i] = m
	}
	return &vertex{index: 0, par: par, managers: ms, ops: [][]byte{
		opJSON(t, "src", "test-count", map[string]any{"count": 0}),
		opJSON(t, "c", "test-ckpt", p, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
	}}
}

// runRestored deploys every subtask of v restoring from r and returns how
// each ended.
func runRestored(t *testing.T, job string, v *vertex, r *snapshot.TaskRestore) []Result {
	t.Helper()
	return runRestoredEnv(t, job, v, r, Env{Network: v.managers[0], Logger: zap.NewNop()})
}

// runRestoredEnv is runRestored with the tasks' Env.
func runRestoredEnv(t *testing.T, job string, v *vertex, r *snapshot.TaskRestore, env Env) []Result {
	t.Helper()
	var rs []*running
	for _, d := range descriptors(job, v, nil, nil, nil) {
		rs = append(rs, startEnv(t, withRestore(t, d, r), env))
	}
	var out []Result
	for _, r := range rs {
		out = append(out, r.wait(t))
	}
	return out
}

// Checkpoint state written by the writer functions is restored at the same
// parallelism and rescaled: every new subtask gets the items of every old
// subtask in old-subtask order, and exactly the key groups of its range,
// each from the old subtask that owned it; across the new subtasks every
// key group is restored exactly once. With filesystem storage (every
// object in a file) and jobmanager storage (inline handles).
func TestRestoreRescaled(t *testing.T) {
	for _, tc := range []struct {
		storage    string
		oldP, newP int
	}{
		{"file", 2, 2},
		{"file", 2, 3},
		{"file", 2, 1},
		{"file", 3, 2},
		{"jobmanager", 2, 3},
		{"jobmanager", 1, 2},
		// The descriptor points at the _metadata; the subtasks read it
		// once, through one MetadataCache.
		{"file-metadata", 2, 3},
	} {
		t.Run(fmt.Sprintf("%s/%d-to-%d", tc.storage, tc.oldP, tc.newP), func(t *testing.T) {
			job := fmt.Sprintf("restore-%s-%d-%d", tc.storage, tc.oldP, tc.newP)
			var st snapshot.Storage
			var err error
			if tc.storage != "jobmanager" {
				st, err = snapshot.OpenWithOptions(t.TempDir(), zap.NewNop(), snapshot.Options{FileInlineThreshold: -1})
			} else {
				st, err = snapshot.Open("jobmanager", zap.NewNop())
			}
			if err != nil {
				t.Fatal(err)
			}
			ops, loc := writeOldState(t, st, job, "c", tc.oldP)
			for _, sub := range ops.Subtasks {
				for _, o := range sub.State {
					if o.IsInline() != (tc.storage == "jobmanager") {
						t.Fatalf("%s state of old subtask %d: inline %t", o.Kind, sub.Subtask, o.IsInline())
					}
				}
			}
			ckptLogs.Delete(job)
			forgetRestoreLogs(job, tc.newP)
			r := &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), Operators: map[string]*snapshot.OperatorState{
				"c": ops,
				// Not in the chain: ignored.
				"gone": {ID: "gone", Type: "test-ckpt", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{State: []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: snapshot.StateHandle{Path: "missing"}}}}}},
			}}
			env := Env{Logger: zap.NewNop()}
			var loads atomic.Int32
			if tc.storage == "file-metadata" {
				md := &snapshot.Metadata{JobID: job, CheckpointID: restoreID, MaxParallelism: maxP, Operators: []snapshot.OperatorState{*ops, *r.Operators["gone"]}}
				if _, err := loc.WriteMetadata(t.Context(), md); err != nil {
					t.Fatal(err)
				}
				r = &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), FromMetadata: true}
				cache := NewMetadataCache(time.Minute)
				cache.load = func(ctx context.Context, location string) (*snapshot.Metadata, error) {
					loads.Add(1)
					return snapshot.LoadMetadata(ctx, location)
				}
				env.Metadata = cache.Load
			}
			m := newManager(t)
			env.Network = m
			for s, res := range runRestoredEnv(t, job, restoredVertex(t, m, job, tc.newP, nil), r, env) {
				if res.State != Finished {
					t.Fatalf("subtask %d: %s %v", s, res.State, res.Err)
				}
			}
			var wantItems []string
			for s := range tc.oldP {
				wantItems = append(wantItems, oldItems(s)...)
			}
			seen := make([]int, maxP)
			for s := range tc.newP {
				l, ok := restoreLogOf(job, s)
				if !ok {
					t.Fatalf("subtask %d: RestoreState not called", s)
				}
				if l.checkpoint != restoreID || l.kgErr != nil {
					t.Errorf("subtask %d: checkpoint %d, KeyGroups error %v", s, l.checkpoint, l.kgErr)
				}
				if !slices.Equal(l.items, wantItems) {
					t.Errorf("subtask %d: items %q, want %q", s, l.items, wantItems)
				}
				var want []string
				rng := state.KeyGroupRangeForSubtask(maxP, tc.newP, s)
				for kg := rng.Start; kg <= rng.End; kg++ {
					if b := oldKeyGroup(kg, state.SubtaskForKeyGroup(maxP, tc.oldP, kg)); b != "" {
						want = append(want, fmt.Sprintf("%d=%s", kg, b))
					}
				}
				if !slices.Equal(l.keyGroups, want) {
					t.Errorf("subtask %d: key groups\n%s\nwant\n%s", s, strings.Join(l.keyGroups, " "), strings.Join(want, " "))
				}
				for _, kv := range l.keyGroups {
					var kg int
					fmt.Sscanf(kv, "%d=", &kg)
					seen[kg]++
				}
			}
			for kg, n := range seen {
				if want := min(1, kg%5); n != want {
					t.Errorf("key group %d restored %d times, want %d", kg, n, want)
				}
			}
			if n := loads.Load(); tc.storage == "file-metadata" && n != 1 {
				t.Errorf("the _metadata was read %d times by %d subtasks, want once", n, tc.newP)
			}
		})
	}
}

// corrupt flips the last byte of file.
func corrupt(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// A corrupt or truncated state file fails the task with an error naming
// the operator, subtask, checkpoint and file, also when the operator
// swallows the error KeyGroups returned to it; no corrupt byte reaches the
// operator.
func TestRestoreCorruptStateFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage breaks a file of the checkpoint and returns the expected
		// error after the common prefix.
		damage func(t *testing.T, dir string, ops *snapshot.OperatorState) string
	}{
		{"items checksum", func(t *testing.T, dir string, ops *snapshot.OperatorState) string {
			h := ops.Subtasks[1].State[0].StateHandle
			file := filepath.Join(dir, h.Path)
			b := corrupt(t, file)
			return fmt.Sprintf("operator state of old subtask 1: checksum mismatch in state file %s: CRC-32C %08x, the metadata says %08x",
				file, crc32.Checksum(b, castagnoliTable), h.CRC)
		}},
		{"keyed checksum", func(t *testing.T, dir string, ops *snapshot.OperatorState) string {
			o := ops.Subtasks[0].State[1]
			file := filepath.Join(dir, o.Path)
			b := corrupt(t, file)
			// The last non-empty key group of old subtask 0 holds the flip.
			last := o.KeyGroups.End
			for oldKeyGroup(last, 0) == "" {
				last--
			}
			seg := b[o.KeyGroups.Offsets[last-o.KeyGroups.Start]:]
			return fmt.Sprintf("keyed state of old subtask 0: checksum mismatch in state file %s: CRC-32C %08x, the metadata says %08x",
				file, crc32.Checksum(seg, castagnoliTable), crc32.Checksum([]byte(oldKeyGroup(last, 0)), castagnoliTable))
		}},
		{"empty key group checksum", func(t *testing.T, dir string, ops *snapshot.OperatorState) string {
			o := ops.Subtasks[0].State[1]
			o.KeyGroups.CRCs[0] = 1 // key group 0 is empty: its CRC-32C is 0
			return fmt.Sprintf("keyed state of old subtask 0: checksum mismatch in state file %s: CRC-32C 00000000, the metadata says 00000001", filepath.Join(dir, o.Path))
		}},
		{"keyed truncated", func(t *testing.T, dir string, ops *snapshot.OperatorState) string {
			o := ops.Subtasks[1].State[1]
			file := filepath.Join(dir, o.Path)
			if err := os.Truncate(file, o.Size-1); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("keyed state of old subtask 1: state file %s has %d bytes, the metadata says %d (truncated or corrupt)", file, o.Size-1, o.Size)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := "restore-corrupt-" + strings.ReplaceAll(tc.name, " ", "-")
			st, err := snapshot.OpenWithOptions(t.TempDir(), zap.NewNop(), snapshot.Options{FileInlineThreshold: -1})
			if err != nil {
				t.Fatal(err)
			}
			ops, loc := writeOldState(t, st, job, "c", 2)
			want := fmt.Sprintf("restore operator \"c\" subtask 0 from checkpoint %d: %s", restoreID, tc.damage(t, loc.Path(), ops))
			ckptLogs.Delete(job)
			forgetRestoreLogs(job, 1)
			r := &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), Operators: map[string]*snapshot.OperatorState{"c": ops}}
			m := newManager(t)
			res := runRestored(t, job, restoredVertex(t, m, job, 1, map[string]any{"swallow-errors": true}), r)[0]
			if res.State != Failed || res.Err == nil || res.Err.Error() != want {
				t.Fatalf("result %s %v\nwant FAILED %s", res.State, res.Err, want)
			}
			if l, ok := restoreLogOf(job, 0); ok {
				// Each key group is offered only after its checksum matched:
				// what the operator got is intact (the damaged key group 63
				// never reaches it).
				for _, kv := range l.keyGroups {
					var kg int
					if _, err := fmt.Sscanf(kv, "%d=", &kg); err != nil || kg == 63 && tc.name == "keyed checksum" ||
						kv != fmt.Sprintf("%d=%s", kg, oldKeyGroup(kg, state.SubtaskForKeyGroup(maxP, 2, kg))) {
						t.Errorf("operator got key group %q", kv)
					}
				}
			}
			if got := ckptLogOf(job).eventList(); !slices.Equal(got[len(got)-1:], []string{"close"}) {
				t.Errorf("events %v: the operator was not closed", got)
			}
		})
	}
}

// An operator without an entry in the restore state gets RestoreState with
// empty state; state recorded for another operator type, and an error of
// RestoreState, fail the task naming the operator.
func TestRestoreEntries(t *testing.T) {
	jm, err := snapshot.Open("jobmanager", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ops   func(ops *snapshot.OperatorState) map[string]*snapshot.OperatorState
		props map[string]any
		want  string
	}{
		{"missing entry", func(*snapshot.OperatorState) map[string]*snapshot.OperatorState { return nil }, nil, ""},
		{"empty entry", func(*snapshot.OperatorState) map[string]*snapshot.OperatorState {
			return map[string]*snapshot.OperatorState{"c": {ID: "c", Type: "test-ckpt", Parallelism: 2, Subtasks: []snapshot.SubtaskState{{Subtask: 0}, {Subtask: 1}}}}
		}, nil, ""},
		{"other type", func(ops *snapshot.OperatorState) map[string]*snapshot.OperatorState {
			ops.Type = "test-map"
			return map[string]*snapshot.OperatorState{"c": ops}
		}, nil, `restore operator "c" subtask 0 from checkpoint 7: the checkpoint holds state of an operator of type "test-map" with this id, but the operator is of type "test-ckpt"`},
		{"operator error", func(ops *snapshot.OperatorState) map[string]*snapshot.OperatorState {
			return map[string]*snapshot.OperatorState{"c": ops}
		}, map[string]any{"fail-restore": true}, `restore operator "c" subtask 0 from checkpoint 7: cannot restore today`},
		{"channel state", func(ops *snapshot.OperatorState) map[string]*snapshot.OperatorState {
			ops.Subtasks[1].State = append(ops.Subtasks[1].State, snapshot.StateObject{Kind: snapshot.KindInputChannel, StateHandle: snapshot.StateHandle{Inline: []byte{}}, Channel: &snapshot.ChannelStateInfo{}})
			return map[string]*snapshot.OperatorState{"c": ops}
		}, nil, `checkpoint 7 has in-flight data (unaligned) that cannot be restored here; use a savepoint (always aligned) instead (input channel state of operator "c", which is not the head of its chain now)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := "restore-entries-" + strings.ReplaceAll(tc.name, " ", "-")
			ops, loc := writeOldState(t, jm, job, "c", 2)
			ckptLogs.Delete(job)
			forgetRestoreLogs(job, 1)
			r := &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), Operators: tc.ops(ops)}
			m := newManager(t)
			res := runRestored(t, job, restoredVertex(t, m, job, 1, tc.props), r)[0]
			if tc.want != "" {
				if res.State != Failed || res.Err == nil || res.Err.Error() != tc.want {
					t.Fatalf("result %s %v\nwant FAILED %s", res.State, res.Err, tc.want)
				}
				return
			}
			if res.State != Finished {
				t.Fatalf("result %s %v", res.State, res.Err)
			}
			l, ok := restoreLogOf(job, 0)
			if !ok || l.checkpoint != restoreID || len(l.items) != 0 || len(l.keyGroups) != 0 || l.kgErr != nil {
				t.Fatalf("restore log %+v (called %t), want empty state of checkpoint %d", l, ok, restoreID)
			}
			want := []string{"open checkpointing=false exactly-once=true", "restore 7", "end-input", "close"}
			if got := ckptLogOf(job).eventList(); !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
		})
	}
}

// A malformed restore_state fails the task.
func TestRestoreMalformed(t *testing.T) {
	job := "restore-malformed"
	ckptLogs.Delete(job)
	m := newManager(t)
	v := restoredVertex(t, m, job, 1, nil)
	d := descriptors(job, v, nil, nil, nil)[0]
	d.RestoreState = []byte("{not json")
	d.RestoreCheckpointId = 3
	res := startEnv(t, d, Env{Network: m, Logger: zap.NewNop()}).wait(t)
	want := "restore subtask 0 from checkpoint 3: decode restore state: invalid character 'n' looking for beginning of object key string"
	if res.State != Failed || res.Err == nil || res.Err.Error() != want {
		t.Fatalf("result %s %v\nwant FAILED %s", res.State, res.Err, want)
	}
}

// ackRestore builds what the JobManager sends a restored vertex: the
// acknowledged state of operator op of vertex v (parallelism p) in
// checkpoint id.
func ackRestore(t *testing.T, resp *fakeResponder, v int32, p int, id int64, op, typ, location string) *snapshot.TaskRestore {
	t.Helper()
	ops := &snapshot.OperatorState{ID: op, Type: typ, Parallelism: p}
	for s := range p {
		var ack *weirpb.AcknowledgeCheckpointRequest
		resp.mu.Lock()
		for _, a := range resp.acks {
			if a.GetExecution().GetVertex() == v && int(a.GetExecution().GetSubtask()) == s && a.GetCheckpointId() == id {
				ack = a
			}
		}
		resp.mu.Unlock()
		if ack == nil {
			t.Fatalf("no ack of checkpoint %d by vertex %d subtask %d", id, v, s)
		}
		ts, err := snapshot.DecodeTaskState(ack.GetState())
		if err != nil {
			t.Fatal(err)
		}
		ops.Subtasks = append(ops.Subtasks, snapshot.SubtaskState{Subtask: s, State: ts.Operators[op]})
	}
	return &snapshot.TaskRestore{CheckpointID: id, Location: location, Operators: map[string]*snapshot.OperatorState{op: ops}}
}

// Failover end to end within the runtime: keyed tasks at parallelism 2
// take checkpoint 7 into a directory; a new attempt at parallelism 3
// restores from their acknowledgements, after Open and before its first
// record, and goes on processing.
func TestRestoreFromTaskCheckpoint(t *testing.T) {
	job := "restore-e2e"
	src1, src2 := job+"-1", job+"-2"
	reset(src1, src2)
	ckptLogs.Delete(job)
	forgetRestoreLogs(job, 3)
	dir := t.TempDir()
	m := newManager(t)
	cfg := ckptConfig("EXACTLY_ONCE")
	cfg["execution.checkpointing.dir"] = dir
	resp := &fakeResponder{}
	env := Env{Network: m, Logger: zap.NewNop(), Responder: resp}

	// Attempt 0: trickle -hash-> k (p=2), checkpoint 7.
	src := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{opJSON(t, "drip", "test-trickle", map[string]any{"name": src1})}}
	sink := &vertex{index: 1, par: 2, managers: []*network.Manager{m, m}, ops: [][]byte{
		opJSON(t, "k", "test-ckpt", map[string]any{"name": job, "keyed": true}, jobgraph.Input{From: "drip", Partition: jobgraph.Hash, Key: "n"}),
	}}
	e := edge{from: src, to: sink, partition: jobgraph.Hash, key: "n", consumer: "k", producer: "drip"}
	var rs []*running
	for _, d := range descriptors(job, sink, []edge{e}, nil, cfg) {
		rs = append(rs, startEnv(t, d, env))
	}
	rs = append(rs, startEnv(t, descriptors(job, src, nil, []edge{e}, cfg)[0], env))
	for v := range int64(6) {
		feed(src1) <- v
	}
	waitUntil(t, "6 records", func() bool { return len(ckptLogOf(job).records()) == 6 })
	if err := rs[2].task.TriggerCheckpoint(restoreID, 0, CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "acks", func() bool {
		resp.mu.Lock()
		defer resp.mu.Unlock()
		return len(resp.acks) == 3
	})
	feed(src1) <- -1
	waitAll(t, rs)
	r := ackRestore(t, resp, 1, 2, restoreID, "k", "test-ckpt", filepath.Join(dir, job, "chk-7"))
	var wantItems []string
	for _, st := range r.Operators["k"].Subtasks {
		for _, o := range st.State {
			if o.Kind == snapshot.KindOperator {
				items, err := DecodeOperatorItems(strings.NewReader(string(o.Inline)))
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					wantItems = append(wantItems, string(it))
				}
			}
		}
	}
	if got := sorted(wantItems); !slices.Equal(got, sorted(ckptLogOf(job).records())) {
		t.Fatalf("checkpointed items %v, want the 6 records", got)
	}
	ckptLogs.Delete(job)

	// Attempt 1 at parallelism 3.
	src.ops = [][]byte{opJSON(t, "drip", "test-trickle", map[string]any{"name": src2})}
	sink.par, sink.managers = 3, []*network.Manager{m, m, m}
	var rs2 []*running
	for _, d := range descriptors(job+"-2", sink, []edge{e}, nil, cfg) {
		rs2 = append(rs2, startEnv(t, withRestore(t, d, r), env))
	}
	rs2 = append(rs2, startEnv(t, descriptors(job+"-2", src, nil, []edge{e}, cfg)[0], env))
	feed(src2) <- 100
	feed(src2) <- -1
	waitAll(t, rs2)
	for s := range 3 {
		l, ok := restoreLogOf(job, s)
		if !ok {
			t.Fatalf("subtask %d not restored", s)
		}
		if !slices.Equal(l.items, wantItems) {
			t.Errorf("subtask %d: items %q, want %q", s, l.items, wantItems)
		}
		var want []string
		rng := state.KeyGroupRangeForSubtask(maxP, 3, s)
		for kg := rng.Start; kg <= rng.End; kg++ {
			want = append(want, fmt.Sprintf("%d=k%d;", kg, kg))
		}
		if !slices.Equal(l.keyGroups, want) {
			t.Errorf("subtask %d: key groups %v, want %v", s, l.keyGroups, want)
		}
	}
	// The subtasks run concurrently: per subtask, Open comes before
	// RestoreState, so no prefix of the events has more restores.
	events := ckptLogOf(job).eventList()
	opens, restores := 0, 0
	for _, ev := range events {
		switch {
		case strings.HasPrefix(ev, "open"):
			opens++
		case ev == "restore 7":
			restores++
			if restores > opens {
				t.Fatalf("restore before open: %v", events)
			}
		}
	}
	if opens != 3 || restores != 3 {
		t.Fatalf("events %v", events)
	}
	if got := ckptLogOf(job).records(); !slices.Equal(got, []string{`{"n":100}`}) {
		t.Errorf("records after restore %v", got)
	}
}

// A restored source resumes at its position: RestoreState runs before the
// first PollNext, and the task reports RUNNING (OnRunning) only after it.
func TestRestoreSourceResumes(t *testing.T) {
	job := "restore-source"
	reset(job)
	m := newManager(t)
	v := &vertex{index: 0, par: 1, managers: []*network.Manager{m}, ops: [][]byte{
		opJSON(t, "seq", "test-resume", map[string]any{"name": job, "count": 8}),
		opJSON(t, "out", "test-sink", map[string]any{"name": job}, jobgraph.Input{From: "seq", Partition: jobgraph.Forward}),
	}}
	st, err := snapshot.Open("jobmanager", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	loc, err := st.CheckpointLocation(job, restoreID)
	if err != nil {
		t.Fatal(err)
	}
	ops := &snapshot.OperatorState{ID: "seq", Type: "test-resume", Parallelism: 2}
	for s, item := range []string{"s0=5", "s1=3"} {
		o, err := writeItems(t.Context(), loc, "seq", [][]byte{[]byte(item)})
		if err != nil {
			t.Fatal(err)
		}
		ops.Subtasks = append(ops.Subtasks, snapshot.SubtaskState{Subtask: s, State: []snapshot.StateObject{o}})
	}
	r := &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), Operators: map[string]*snapshot.OperatorState{"seq": ops}}
	runningAfterRestore := make(chan bool, 1)
	env := Env{Network: m, Logger: zap.NewNop(), OnRunning: func() {
		v, _ := resumeSources.Load(job)
		runningAfterRestore <- v.(*resumeSource).restored.Load()
	}}
	res := startEnv(t, withRestore(t, descriptors(job, v, nil, nil, nil)[0], r), env).wait(t)
	if res.State != Finished {
		t.Fatalf("result %s %v", res.State, res.Err)
	}
	if !<-runningAfterRestore {
		t.Error("RUNNING reported before the restore")
	}
	want := []string{`{"n":5}`, `{"n":6}`, `{"n":7}`}
	if got := jsons(store(job).snapshot()); !slices.Equal(got, want) {
		t.Errorf("source emitted %v, want %v", got, want)
	}
}
