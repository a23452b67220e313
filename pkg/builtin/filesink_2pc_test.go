package builtin

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

// openTwoPhaseSink opens a checkpointing file-sink subtask on dir.
func openTwoPhaseSink(t *testing.T, dir string, sub, par int) *fileSink {
	t.Helper()
	sink := newOperator(t, "file-sink", operator.Properties{"path": dir, "format": "text"}).(*fileSink)
	ctx := testCtx("sink", sub, par)
	ctx.Checkpointing, ctx.ExactlyOnce = true, true
	if err := sink.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink
}

func writeLines(t *testing.T, sink operator.Operator, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if err := sink.ProcessRecord(decodeJSON(t, fmt.Sprintf(`{"line":%q}`, l)), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// pendingItems renders snapshot items as "checkpoint:final name".
func pendingItems(t *testing.T, items [][]byte) []string {
	t.Helper()
	var out []string
	for _, it := range items {
		p, err := decodePendingItem(it)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", p.checkpointID, p.final()))
	}
	return out
}

// TestFileSinkTwoPhaseCommit walks one subtask through checkpoints: parts
// become pending at the snapshot, are in every snapshot until committed,
// and become visible only when a checkpoint that covers them completes.
func TestFileSinkTwoPhaseCommit(t *testing.T) {
	dir := t.TempDir()
	sink := openTwoPhaseSink(t, dir, 0, 1)
	type step struct {
		name    string
		do      func() [][]byte // returns the snapshot items, if a snapshot
		items   []string
		listing map[string]string
	}
	snapshot := func(id int64) func() [][]byte {
		return func() [][]byte { return snapshotItems(t, sink, id) }
	}
	notify := func(f func(int64) error, id int64) func() [][]byte {
		return func() [][]byte {
			if err := f(id); err != nil {
				t.Fatal(err)
			}
			return nil
		}
	}
	steps := []step{
		{"snapshot without data", snapshot(1), nil, map[string]string{}},
		{"records", func() [][]byte { writeLines(t, sink, "a", "b"); return nil }, nil,
			map[string]string{".part-0-0.inprogress": ""}}, // buffered
		{"pre-commit at checkpoint 2", snapshot(2), []string{"2:part-0-0"},
			map[string]string{".part-0-0.inprogress": "a\nb\n"}},
		{"next record opens part 1", func() [][]byte { writeLines(t, sink, "c"); return nil }, nil,
			map[string]string{".part-0-0.inprogress": "a\nb\n", ".part-0-1.inprogress": ""}},
		{"pre-commit at checkpoint 3", snapshot(3), []string{"2:part-0-0", "3:part-0-1"},
			map[string]string{".part-0-0.inprogress": "a\nb\n", ".part-0-1.inprogress": "c\n"}},
		{"abort of 3 does nothing", notify(sink.NotifyCheckpointAborted, 3), nil,
			map[string]string{".part-0-0.inprogress": "a\nb\n", ".part-0-1.inprogress": "c\n"}},
		{"completion of 2 commits part 0", notify(sink.NotifyCheckpointComplete, 2), nil,
			map[string]string{"part-0-0": "a\nb\n", ".part-0-1.inprogress": "c\n"}},
		{"part 1 is still in snapshot 4", snapshot(4), []string{"3:part-0-1"},
			map[string]string{"part-0-0": "a\nb\n", ".part-0-1.inprogress": "c\n"}},
		{"completion of 4 commits the part of aborted 3", notify(sink.NotifyCheckpointComplete, 4), nil,
			map[string]string{"part-0-0": "a\nb\n", "part-0-1": "c\n"}},
		{"completion again is a no-op", notify(sink.NotifyCheckpointComplete, 4), nil,
			map[string]string{"part-0-0": "a\nb\n", "part-0-1": "c\n"}},
		{"nothing pending", snapshot(5), nil, map[string]string{"part-0-0": "a\nb\n", "part-0-1": "c\n"}},
	}
	for i, st := range steps {
		items := st.do()
		if got := pendingItems(t, items); !slices.Equal(got, st.items) {
			t.Fatalf("step %d (%s): items %q, want %q", i, st.name, got, st.items)
		}
		if got := dirListing(t, dir); !equalListing(got, st.listing) {
			t.Fatalf("step %d (%s): listing %q, want %q", i, st.name, got, st.listing)
		}
		if sink.NeedsFinalCheckpoint() {
			t.Fatalf("step %d (%s): NeedsFinalCheckpoint before EndInput", i, st.name)
		}
	}
	// Item bytes: version 1, varint checkpoint id 3 (6), name.
	if got := string(appendPendingItem(nil, pendingPart{checkpointID: 3, subtask: 0, n: 1})); got != "\x01\x06\x08part-0-1" {
		t.Fatalf("item bytes %q", got)
	}
}

// TestFileSinkFinalCheckpoint: at end of input the last part waits for the
// final checkpoint; without checkpointing it is visible at once.
func TestFileSinkFinalCheckpoint(t *testing.T) {
	dir := t.TempDir()
	sink := openTwoPhaseSink(t, dir, 0, 1)
	writeLines(t, sink, "a")
	snapshotItems(t, sink, 1) // part 0 pending for 1
	writeLines(t, sink, "b")
	if err := sink.EndInput(nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".part-0-0.inprogress": "a\n", ".part-0-1.inprogress": "b\n"}
	if got := dirListing(t, dir); !equalListing(got, want) || !sink.NeedsFinalCheckpoint() {
		t.Fatalf("after EndInput: %q, final checkpoint %v", got, sink.NeedsFinalCheckpoint())
	}
	if err := sink.ProcessRecord(decodeJSON(t, `{"line":"late"}`), nil); errString(err) != `file-sink "sink": record after end of input` {
		t.Fatalf("record after EndInput: %v", err)
	}
	if got := pendingItems(t, snapshotItems(t, sink, 2)); !slices.Equal(got, []string{"1:part-0-0", "2:part-0-1"}) {
		t.Fatalf("final snapshot items %q", got)
	}
	if !sink.NeedsFinalCheckpoint() {
		t.Fatal("pending parts, but no final checkpoint needed")
	}
	if err := sink.NotifyCheckpointComplete(2); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"part-0-0": "a\n", "part-0-1": "b\n"}
	if got := dirListing(t, dir); !equalListing(got, want) || sink.NeedsFinalCheckpoint() {
		t.Fatalf("after the final checkpoint: %q, final checkpoint %v", got, sink.NeedsFinalCheckpoint())
	}

	// A subtask without output needs no final checkpoint.
	empty := openTwoPhaseSink(t, t.TempDir(), 1, 2)
	if err := empty.EndInput(nil); err != nil || empty.NeedsFinalCheckpoint() {
		t.Fatalf("empty subtask: %v, final checkpoint %v", err, empty.NeedsFinalCheckpoint())
	}
	// Without checkpointing: visible at EndInput, no final checkpoint.
	plain := newOperator(t, "file-sink", operator.Properties{"path": dir, "format": "text"}).(*fileSink)
	if err := plain.Open(testCtx("sink", 0, 1)); err != nil {
		t.Fatal(err)
	}
	writeLines(t, plain, "c")
	if err := plain.EndInput(nil); err != nil || plain.NeedsFinalCheckpoint() {
		t.Fatalf("plain: %v, final checkpoint %v", err, plain.NeedsFinalCheckpoint())
	}
	want["part-0-2"] = "c\n"
	if got := dirListing(t, dir); !equalListing(got, want) {
		t.Fatalf("plain: %q, want %q", got, want)
	}
}

// TestFileSinkCommitIdempotent: committing a committed part, or one whose
// files are both gone, is a no-op.
func TestFileSinkCommitIdempotent(t *testing.T) {
	dir := t.TempDir()
	sink := openTwoPhaseSink(t, dir, 0, 1)
	writeFiles(t, dir, map[string]string{".part-0-0.inprogress": "x\n"})
	for i := 0; i < 2; i++ {
		if err := sink.commit(pendingPart{checkpointID: 1, subtask: 0, n: 0}); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if got := dirListing(t, dir); !equalListing(got, map[string]string{"part-0-0": "x\n"}) {
			t.Fatalf("commit %d: %q", i, got)
		}
	}
	if err := sink.commit(pendingPart{checkpointID: 1, subtask: 0, n: 7}); err != nil {
		t.Fatalf("commit of a missing part: %v", err)
	}
}

// TestFileSinkRestore: a restore commits the pending parts the new subtask
// owns (old subtask number mod new parallelism), deletes the in-progress
// files of failed attempts it owns, and numbers new parts after every
// existing one.
func TestFileSinkRestore(t *testing.T) {
	// What a job at parallelism 3 left behind after checkpoint 5: each old
	// subtask s had part-s-0 committed, .part-s-1 pending for 5 (in the
	// checkpoint) and .part-s-2 in progress when it failed. Subtask 2 had
	// committed its pending part already. .part-7-0 is the in-progress
	// file of a subtask 7 of some earlier run at a higher parallelism.
	leftovers := map[string]string{
		"part-0-0": "0a\n", ".part-0-1.inprogress": "0b\n", ".part-0-2.inprogress": "0c\n",
		"part-1-0": "1a\n", ".part-1-1.inprogress": "1b\n", ".part-1-2.inprogress": "1c\n",
		"part-2-0": "2a\n", "part-2-1": "2b\n", ".part-2-2.inprogress": "2c\n",
		".part-7-0.inprogress": "7\n", "other": "o",
	}
	var items [][]byte
	for s := 0; s < 3; s++ {
		items = append(items, appendPendingItem(nil, pendingPart{checkpointID: 5, subtask: s, n: 1}))
	}
	// restored applies what the owner of old subtask s does.
	restored := func(listing map[string]string, s int) {
		hidden := func(n int) string { return fmt.Sprintf(".part-%d-%d.inprogress", s, n) }
		if c, ok := listing[hidden(1)]; ok {
			listing[fmt.Sprintf("part-%d-1", s)] = c
		}
		delete(listing, hidden(0)) // only subtask 7 has one: stale
		delete(listing, hidden(1))
		delete(listing, hidden(2))
	}
	tests := []struct {
		par    int
		owners [][]int // old subtask numbers owned by each new subtask: s mod par
	}{
		{1, [][]int{{0, 1, 2, 7}}},
		{2, [][]int{{0, 2}, {1, 7}}},
		{3, [][]int{{0}, {1, 7}, {2}}},
		{4, [][]int{{0}, {1}, {2}, {7}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("p=%d", tt.par), func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, leftovers)
			want := maps.Clone(leftovers)
			sinks := make([]*fileSink, tt.par)
			for sub := range sinks {
				sinks[sub] = openTwoPhaseSink(t, dir, sub, tt.par)
				if err := sinks[sub].RestoreState(&operator.RestoredState{CheckpointID: 5, Items: items}); err != nil {
					t.Fatal(err)
				}
				for _, s := range tt.owners[sub] {
					restored(want, s)
				}
				if got := dirListing(t, dir); !equalListing(got, want) {
					t.Fatalf("after restoring subtask %d:\n%s\nwant\n%s", sub, sortedListing(got), sortedListing(want))
				}
				// Restoring twice is harmless.
				if err := sinks[sub].RestoreState(&operator.RestoredState{CheckpointID: 5, Items: items}); err != nil {
					t.Fatal(err)
				}
			}
			final := map[string]string{
				"part-0-0": "0a\n", "part-0-1": "0b\n", "part-1-0": "1a\n", "part-1-1": "1b\n",
				"part-2-0": "2a\n", "part-2-1": "2b\n", "other": "o",
			}
			if got := dirListing(t, dir); !equalListing(got, final) {
				t.Fatalf("after the restore:\n%s\nwant\n%s", sortedListing(got), sortedListing(final))
			}
			// New parts never reuse a number: subtask 0 had .part-0-2
			// at Open, so its next part is 3; subtask 1 likewise.
			writeLines(t, sinks[0], "new")
			if _, err := os.Stat(filepath.Join(dir, ".part-0-3.inprogress")); err != nil {
				t.Fatalf("first new part of subtask 0: %v", err)
			}
			// Nothing restored is pending in the new attempt.
			if got := pendingItems(t, snapshotItems(t, sinks[0], 6)); !slices.Equal(got, []string{"6:part-0-3"}) {
				t.Fatalf("snapshot after restore: %q", got)
			}
		})
	}
}

// TestFileSinkRestoreNumbering: a pending part named in the checkpoint but
// already gone from the directory still reserves its number.
func TestFileSinkRestoreNumbering(t *testing.T) {
	dir := t.TempDir()
	sink := openTwoPhaseSink(t, dir, 0, 1)
	items := [][]byte{appendPendingItem(nil, pendingPart{checkpointID: 2, subtask: 0, n: 9})}
	if err := sink.RestoreState(&operator.RestoredState{CheckpointID: 2, Items: items}); err != nil {
		t.Fatal(err)
	}
	writeLines(t, sink, "x")
	if _, err := os.Stat(filepath.Join(dir, ".part-0-10.inprogress")); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkRestoreErrors(t *testing.T) {
	tests := []struct {
		item string
		want string
	}{
		{"\x02", `file-sink "sink": restore checkpoint 3: item 0: not a file-sink item of version 1: "\x02"`},
		{"\x01", `file-sink "sink": restore checkpoint 3: item 0: bad checkpoint id in file-sink item "\x01"`},
		{"\x01\x06\x09part-0-1", `file-sink "sink": restore checkpoint 3: item 0: bad name in file-sink item "\x01\x06\tpart-0-1"`},
		{"\x01\x06\x06part-0", `file-sink "sink": restore checkpoint 3: item 0: bad part name in file-sink item "\x01\x06\x06part-0"`},
		{"\x01\x06\x14.part-0-1.inprogress", `file-sink "sink": restore checkpoint 3: item 0: bad part name in file-sink item "\x01\x06\x14.part-0-1.inprogress"`},
	}
	for _, tt := range tests {
		sink := openTwoPhaseSink(t, t.TempDir(), 0, 1)
		err := sink.RestoreState(&operator.RestoredState{CheckpointID: 3, Items: [][]byte{[]byte(tt.item)}})
		if errString(err) != tt.want {
			t.Errorf("item %q: err %q\nwant %q", tt.item, errString(err), tt.want)
		}
	}
}

func sortedListing(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("  %s: %q", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestSequenceToFileSinkExactlyOnce: a sequence source and a two-phase
// file-sink checkpointed together, failing after an uncompleted checkpoint
// and restored from the last completed one, commit every record exactly
// once.
func TestSequenceToFileSinkExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	props := operator.Properties{"keys": 3, "count": 400}
	sinkProps := operator.Properties{"path": dir}
	run := func(items, sinkItems [][]byte) (operator.Source, *fileSink) {
		src := newSource(t, "sequence", props)
		if err := src.Open(testCtx("seq", 0, 1)); err != nil {
			t.Fatal(err)
		}
		sink := newOperator(t, "file-sink", sinkProps).(*fileSink)
		ctx := testCtx("sink", 0, 1)
		ctx.Checkpointing = true
		if err := sink.Open(ctx); err != nil {
			t.Fatal(err)
		}
		if items != nil {
			if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 1, Items: items}); err != nil {
				t.Fatal(err)
			}
			if err := sink.RestoreState(&operator.RestoredState{CheckpointID: 1, Items: sinkItems}); err != nil {
				t.Fatal(err)
			}
		}
		return src, sink
	}
	toSink := func(sink *fileSink) operator.Collector {
		return collectFunc(func(r *record.Record) error { return sink.ProcessRecord(r, nil) })
	}
	src, sink := run(nil, nil)
	poll := func() {
		if _, _, err := src.PollNext(toSink(sink)); err != nil {
			t.Fatal(err)
		}
	}
	poll()
	// Checkpoint 1: the barrier passes the source, then the sink.
	srcItems, sinkItems := snapshotItems(t, src, 1), snapshotItems(t, sink, 1)
	if err := sink.NotifyCheckpointComplete(1); err != nil {
		t.Fatal(err)
	}
	poll()
	snapshotItems(t, src, 2)
	snapshotItems(t, sink, 2) // checkpoint 2 never completes
	poll()
	src.Close()
	sink.Close() // the attempt fails

	src, sink = run(srcItems, sinkItems)
	for {
		st, _, err := src.PollNext(toSink(sink))
		if err != nil {
			t.Fatal(err)
		}
		if st == operator.EndOfInput {
			break
		}
	}
	if err := sink.EndInput(nil); err != nil || !sink.NeedsFinalCheckpoint() {
		t.Fatalf("EndInput: %v, final checkpoint %v", err, sink.NeedsFinalCheckpoint())
	}
	snapshotItems(t, sink, 3)
	if err := sink.NotifyCheckpointComplete(3); err != nil {
		t.Fatal(err)
	}
	sink.Close()

	// Committed output, part by part, in order.
	var got []string
	listing := dirListing(t, dir)
	for n := 0; n < 10; n++ {
		if c, ok := listing[fmt.Sprintf("part-0-%d", n)]; ok {
			got = append(got, lines(c)...)
			delete(listing, fmt.Sprintf("part-0-%d", n))
		}
	}
	if len(listing) != 0 {
		t.Fatalf("files left besides committed parts: %q", listing)
	}
	var want []string
	for seq := 0; seq < 400; seq++ {
		for key := 0; key < 3; key++ {
			want = append(want, fmt.Sprintf(`{"key":%d,"seq":%d}`, key, seq))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("committed %d records, want the %d of the sequence exactly once, in order", len(got), len(want))
	}
}
