package taskexec

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/state"
)

// A recovered record of the restore tests: key n, origin o ("in": the
// consumer's input channel state, "out": the producer's output channel
// state), the old subtask s and channel c of its object, and q its
// position among that channel's records of its key.
type csRec struct {
	N int64  `json:"n"`
	O string `json:"o"`
	S int64  `json:"s"`
	C int64  `json:"c"`
	Q int64  `json:"q"`
}

func (r csRec) frame() []byte {
	var rec record.Record
	rec.Set("n", record.Int(r.N))
	rec.Set("o", record.String(r.O))
	rec.Set("s", record.Int(r.S))
	rec.Set("c", record.Int(r.C))
	rec.Set("q", record.Int(r.Q))
	b := rec.AppendBinary(nil)
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func kgOf(n int64) int { return state.KeyGroupFor(record.Int(n), maxP) }

// writeCSObject writes the records of one channel as one channel state
// object, two records per buffer.
func writeCSObject(t *testing.T, loc snapshot.Location, name string, kind snapshot.StateKind, gate, channel, layout int, recs []csRec) snapshot.StateObject {
	t.Helper()
	var cd channelData
	var cur []byte
	for i, r := range recs {
		cur = append(cur, r.frame()...)
		if i%2 == 1 || i == len(recs)-1 {
			cd.add(cur)
			cur = nil
		}
	}
	obj, err := writeChannelState(t.Context(), loc, name, kind, gate, channel, layout, &cd)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// An unaligned checkpoint of src -> k restored with k (and src) at another
// parallelism: k's input channel state is redistributed (hash: by key
// group; rebalance: old subtask mod new parallelism), src's output channel
// state re-sent raw when k kept its parallelism, else rerouted through the
// partitioner. Every recovered record reaches exactly one subtask of k, the
// one that owns it; each subtask replays its input records before any of
// the producer's, and a channel's records of a key keep their order.
func TestChannelStateRescaledRestore(t *testing.T) {
	jm, err := snapshot.Open("jobmanager", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		route          string
		oldSrc, newSrc int
		oldP, newP     int
	}{
		{route: jobgraph.Hash, oldSrc: 2, newSrc: 2, oldP: 2, newP: 3},
		{route: jobgraph.Hash, oldSrc: 2, newSrc: 1, oldP: 3, newP: 1},
		{route: jobgraph.Hash, oldSrc: 2, newSrc: 3, oldP: 2, newP: 2},
		{route: jobgraph.Hash, oldSrc: 2, newSrc: 2, oldP: 2, newP: 2},
		{route: jobgraph.Rebalance, oldSrc: 2, newSrc: 3, oldP: 2, newP: 3},
		{route: jobgraph.Rebalance, oldSrc: 3, newSrc: 1, oldP: 3, newP: 2},
	} {
		name := fmt.Sprintf("%s src %d->%d k %d->%d", tc.route, tc.oldSrc, tc.newSrc, tc.oldP, tc.newP)
		t.Run(name, func(t *testing.T) {
			job := "cs-rescale-" + strings.NewReplacer(" ", "-", ">", "").Replace(name)
			loc, err := jm.CheckpointLocation(job, restoreID)
			if err != nil {
				t.Fatal(err)
			}
			// Keys 0..23; on a hash edge a record is in the channels of
			// the old consumer owning its key group.
			oldOwner := func(n int64) int { return state.SubtaskForKeyGroup(maxP, tc.oldP, kgOf(n)) }
			var all []csRec
			recsOf := func(o string, s, c int) []csRec {
				var out []csRec
				q := map[int64]int64{}
				for i := range 60 {
					n := int64((i*7 + s*3 + c) % 24)
					if tc.route == jobgraph.Hash && oldOwner(n) != map[string]int{"in": s, "out": c}[o] {
						continue
					}
					out = append(out, csRec{N: n, O: o, S: int64(s), C: int64(c), Q: q[n]})
					q[n]++
				}
				all = append(all, out...)
				return out
			}
			kState := &snapshot.OperatorState{ID: "k", Type: "test-ckpt", Parallelism: tc.oldP}
			for s := range tc.oldP {
				st := snapshot.SubtaskState{Subtask: s}
				for c := range tc.oldSrc {
					st.State = append(st.State, writeCSObject(t, loc, fmt.Sprintf("k-%d-in-0-%d", s, c), snapshot.KindInputChannel, 0, c, tc.oldSrc, recsOf("in", s, c)))
				}
				kState.Subtasks = append(kState.Subtasks, st)
			}
			srcState := &snapshot.OperatorState{ID: "src", Type: "test-gated", Parallelism: tc.oldSrc}
			for s := range tc.oldSrc {
				st := snapshot.SubtaskState{Subtask: s}
				for c := range tc.oldP {
					st.State = append(st.State, writeCSObject(t, loc, fmt.Sprintf("src-%d-out-0-%d", s, c), snapshot.KindResultSubpartition, 0, c, tc.oldP, recsOf("out", s, c)))
				}
				srcState.Subtasks = append(srcState.Subtasks, st)
			}

			m := newManager(t)
			managers := func(n int) []*network.Manager { return slices.Repeat([]*network.Manager{m}, n) }
			src := &vertex{index: 0, par: tc.newSrc, managers: managers(tc.newSrc), ops: [][]byte{opJSON(t, "src", "test-gated", map[string]any{"name": job})}}
			input := jobgraph.Input{From: "src", Partition: tc.route}
			if tc.route == jobgraph.Hash {
				input.Key = "n"
			}
			k := &vertex{index: 1, par: tc.newP, managers: managers(tc.newP), ops: [][]byte{opJSON(t, "k", "test-ckpt", map[string]any{"name": job}, input)}}
			e := edge{from: src, to: k, partition: tc.route, consumer: "k", producer: "src"}
			if tc.route == jobgraph.Hash {
				e.key = "n"
			}
			cfg := unalignedConfig("")
			r := func(op string, os *snapshot.OperatorState) *snapshot.TaskRestore {
				return &snapshot.TaskRestore{CheckpointID: restoreID, Location: loc.Path(), Operators: map[string]*snapshot.OperatorState{op: os}}
			}
			var rs []*running
			for i, d := range descriptors(job, k, []edge{e}, nil, cfg) {
				ckptLogs.Delete(fmt.Sprintf("%s-%d", job, i))
				d.Operators = [][]byte{opJSON(t, "k", "test-ckpt", map[string]any{"name": fmt.Sprintf("%s-%d", job, i)}, input)}
				rs = append(rs, startEnv(t, withRestore(t, d, r("k", kState)), Env{Network: m, Logger: zap.NewNop()}))
			}
			for _, d := range descriptors(job, src, nil, []edge{e}, cfg) {
				rs = append(rs, startEnv(t, withRestore(t, d, r("src", srcState)), Env{Network: m, Logger: zap.NewNop()}))
			}
			for _, x := range rs {
				x.mustEnd(t, Finished)
			}

			seen := map[csRec]int{}
			for idx := range tc.newP {
				last := map[[4]any]int64{}
				sawOut := false
				for _, line := range ckptLogOf(fmt.Sprintf("%s-%d", job, idx)).records() {
					var rec csRec
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("record %s: %v", line, err)
					}
					seen[rec]++
					switch {
					case tc.route == jobgraph.Hash:
						if want := state.SubtaskForKeyGroup(maxP, tc.newP, kgOf(rec.N)); want != idx {
							t.Errorf("record %s at subtask %d, want %d (its key group's)", line, idx, want)
						}
					case rec.O == "in" && tc.oldP != tc.newP:
						if want := int(rec.S) % tc.newP; want != idx {
							t.Errorf("record %s at subtask %d, want %d", line, idx, want)
						}
					}
					if rec.O == "out" {
						sawOut = true
					} else if sawOut {
						t.Errorf("subtask %d: recovered input record %s after a recovered output record", idx, line)
					}
					key := [4]any{rec.N, rec.O, rec.S, rec.C}
					if p, ok := last[key]; (ok && rec.Q != p+1) || (!ok && rec.Q != 0) {
						t.Errorf("subtask %d: record %s after q %d (%v): order lost", idx, line, p, ok)
					}
					last[key] = rec.Q
				}
			}
			for _, rec := range all {
				if seen[rec] != 1 {
					t.Errorf("record %+v delivered %d times", rec, seen[rec])
				}
			}
			if len(seen) != len(all) {
				t.Errorf("%d distinct records delivered, want %d", len(seen), len(all))
			}
		})
	}
}
