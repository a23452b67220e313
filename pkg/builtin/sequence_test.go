package builtin

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func TestSequenceDistribution(t *testing.T) {
	tests := []struct {
		name  string
		props operator.Properties
		par   int
		want  [][]string // per subtask
	}{
		{"one subtask", operator.Properties{"keys": 2, "count": 3}, 1, [][]string{{
			`{"key":0,"seq":0}`, `{"key":1,"seq":0}`,
			`{"key":0,"seq":1}`, `{"key":1,"seq":1}`,
			`{"key":0,"seq":2}`, `{"key":1,"seq":2}`,
		}}},
		{"keys mod parallelism", operator.Properties{"keys": 5, "count": 2}, 2, [][]string{
			{
				`{"key":0,"seq":0}`, `{"key":2,"seq":0}`, `{"key":4,"seq":0}`,
				`{"key":0,"seq":1}`, `{"key":2,"seq":1}`, `{"key":4,"seq":1}`,
			},
			{
				`{"key":1,"seq":0}`, `{"key":3,"seq":0}`,
				`{"key":1,"seq":1}`, `{"key":3,"seq":1}`,
			},
		}},
		{"more subtasks than keys", operator.Properties{"keys": 1, "count": 2}, 3, [][]string{
			{`{"key":0,"seq":0}`, `{"key":0,"seq":1}`}, nil, nil,
		}},
		{"count from a JSON float", operator.Properties{"keys": 3.0, "count": 1.0}, 2, [][]string{
			{`{"key":0,"seq":0}`, `{"key":2,"seq":0}`}, {`{"key":1,"seq":0}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for sub := 0; sub < tt.par; sub++ {
				src := newSource(t, "sequence", tt.props)
				if err := src.Open(testCtx("seq", sub, tt.par)); err != nil {
					t.Fatal(err)
				}
				var c collector
				drain(t, src, &c, 10)
				if !slices.Equal(c.out, tt.want[sub]) {
					t.Errorf("subtask %d:\n got %q\nwant %q", sub, c.out, tt.want[sub])
				}
				if err := src.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestSequenceBatches checks the bounded batch per PollNext and that the
// last batch reports EndOfInput with its records.
func TestSequenceBatches(t *testing.T) {
	src := newSource(t, "sequence", operator.Properties{"keys": 1, "count": 1000})
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var d discard
	type poll struct {
		st operator.SourceStatus
		n  int
	}
	var got []poll
	for i := 0; i < 3; i++ {
		before := d.n
		st, _, err := src.PollNext(&d)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, poll{st, d.n - before})
		if st == operator.EndOfInput {
			break
		}
	}
	want := []poll{{operator.MoreAvailable, 512}, {operator.EndOfInput, 488}}
	if !slices.Equal(got, want) {
		t.Fatalf("polls = %v, want %v", got, want)
	}
}

// TestSequenceUnboundedIdle: an unbounded subtask without keys waits
// instead of ending.
func TestSequenceUnboundedIdle(t *testing.T) {
	src := newSource(t, "sequence", operator.Properties{"keys": 1})
	if err := src.Open(testCtx("seq", 1, 2)); err != nil {
		t.Fatal(err)
	}
	var c collector
	st, retry, err := src.PollNext(&c)
	if st != operator.NothingAvailable || retry != idleRetry || err != nil || len(c.out) != 0 {
		t.Fatalf("PollNext = %v, %v, %v, %q; want NothingAvailable, %v", st, retry, err, c.out, idleRetry)
	}
}

// TestSequenceReplay: a source restored at the position of another emits
// exactly the rest of the other's output.
func TestSequenceReplay(t *testing.T) {
	props := operator.Properties{"keys": 7, "count": 100}
	var all collector
	full := newSource(t, "sequence", props)
	if err := full.Open(testCtx("seq", 0, 1)); err != nil {
		t.Fatal(err)
	}
	drain(t, full, &all, 10)
	if len(all.out) != 700 {
		t.Fatalf("got %d records, want 700", len(all.out))
	}

	for _, polls := range []int{1, 0} {
		t.Run(fmt.Sprintf("after %d polls", polls), func(t *testing.T) {
			first := newSource(t, "sequence", props).(*sequenceSource)
			if err := first.Open(testCtx("seq", 0, 1)); err != nil {
				t.Fatal(err)
			}
			var head collector
			for i := 0; i < polls; i++ {
				if _, _, err := first.PollNext(&head); err != nil {
					t.Fatal(err)
				}
			}
			pos := first.position()
			if want := (seqPosition{Seq: int64(len(head.out) / 7), KeyIndex: int64(len(head.out) % 7)}); pos != want {
				t.Fatalf("position after %d records = %+v, want %+v", len(head.out), pos, want)
			}
			second := newSource(t, "sequence", props).(*sequenceSource)
			if err := second.Open(testCtx("seq", 0, 1)); err != nil {
				t.Fatal(err)
			}
			if err := second.seek(pos); err != nil {
				t.Fatal(err)
			}
			var tail collector
			drain(t, second, &tail, 10)
			if got := append(head.out, tail.out...); !slices.Equal(got, all.out) {
				t.Fatalf("head+replayed tail differs from a full run")
			}
		})
	}
}

func TestSequenceSeekOutOfRange(t *testing.T) {
	src := newSource(t, "sequence", operator.Properties{"keys": 3}).(*sequenceSource)
	if err := src.Open(testCtx("seq", 0, 2)); err != nil { // keys 0 and 2
		t.Fatal(err)
	}
	err := src.seek(seqPosition{Seq: 4, KeyIndex: 2})
	if want := "sequence: position {Seq:4 KeyIndex:2} out of range for 2 keys"; errString(err) != want {
		t.Fatalf("seek error = %q, want %q", errString(err), want)
	}
}

// TestSequenceRate drives the rate limit with an injected clock.
func TestSequenceRate(t *testing.T) {
	src := newSource(t, "sequence", operator.Properties{"keys": 2, "count": 3, "rate": 10}).(*sequenceSource)
	clock := &fakeClock{}
	src.now = clock.now
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	type poll struct {
		at    time.Duration
		st    operator.SourceStatus
		retry time.Duration
		out   []string
	}
	polls := []poll{
		{0, operator.MoreAvailable, 0, []string{`{"key":0,"seq":0}`}},
		{0, operator.NothingAvailable, 100 * ms, nil},
		{250 * ms, operator.MoreAvailable, 0, []string{`{"key":1,"seq":0}`, `{"key":0,"seq":1}`}},
		{290 * ms, operator.NothingAvailable, 10 * ms, nil},
		{10 * time.Second, operator.EndOfInput, 0, []string{`{"key":1,"seq":1}`, `{"key":0,"seq":2}`, `{"key":1,"seq":2}`}},
	}
	for i, p := range polls {
		clock.t = p.at
		var c collector
		st, retry, err := src.PollNext(&c)
		if err != nil || st != p.st || retry != p.retry || !slices.Equal(c.out, p.out) {
			t.Fatalf("poll %d at %v = %v, %v, %v, %q; want %v, %v, %q", i, p.at, st, retry, err, c.out, p.st, p.retry, p.out)
		}
	}
}

// TestSequenceCollectError: a downstream error is returned unchanged and
// the failed record is not counted as emitted.
func TestSequenceCollectError(t *testing.T) {
	src := newSource(t, "sequence", operator.Properties{"keys": 1, "count": 5}).(*sequenceSource)
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		t.Fatal(err)
	}
	_, _, err := src.PollNext(&collector{fail: errDownstream})
	if err != errDownstream {
		t.Fatalf("err = %v, want %v", err, errDownstream)
	}
	if pos := src.position(); pos != (seqPosition{}) {
		t.Fatalf("position = %+v after a failed first record", pos)
	}
}

// stopAfter collects n records, then fails: it stops a source at an exact
// record (the failed record is not emitted, so the source's state is the
// state after n records).
type stopAfter struct {
	n   int
	out []string
}

var errStop = errors.New("stop")

func (c *stopAfter) Collect(r *record.Record) error {
	if len(c.out) == c.n {
		return errStop
	}
	c.out = append(c.out, r.String())
	return nil
}

// snapshotItems takes a snapshot of a Snapshotter and returns its items.
func snapshotItems(t testing.TB, s any, id int64) [][]byte {
	t.Helper()
	snap, err := s.(operator.Snapshotter).SnapshotState(id)
	if err != nil {
		t.Fatalf("snapshot %d: %v", id, err)
	}
	if snap.WriteKeyGroup != nil {
		t.Fatalf("snapshot %d: unexpected keyed state", id)
	}
	return snap.Items
}

// TestSequenceSnapshotRestore: subtasks stopped after given numbers of
// records are snapshotted; the union of their items is restored at the same
// and at other parallelisms, and the new subtasks emit exactly the pairs
// that were not emitted, each key from its next seq, in (seq, key) order.
func TestSequenceSnapshotRestore(t *testing.T) {
	props := operator.Properties{"keys": 4, "count": 3}
	// Old parallelism 2: subtask 0 (keys 0, 2) emits (0,0) (2,0) (0,1);
	// subtask 1 (keys 1, 3) emits (1,0). Next seqs: 0:2 1:1 2:1 3:0.
	oldPar, stops := 2, []int{3, 1}
	var items [][]byte
	for sub := 0; sub < oldPar; sub++ {
		src := newSource(t, "sequence", props)
		if err := src.Open(testCtx("seq", sub, oldPar)); err != nil {
			t.Fatal(err)
		}
		c := &stopAfter{n: stops[sub]}
		if _, _, err := src.PollNext(c); err != errStop {
			t.Fatalf("subtask %d: poll err %v, want %v", sub, err, errStop)
		}
		items = append(items, snapshotItems(t, src, 1)...)
	}
	// Item: version 2, parallelism, subtask, keys, seq, key index: one per
	// subtask, whatever the number of keys.
	wantItems := []string{"\x02\x02\x00\x04\x01\x01", "\x02\x02\x01\x04\x00\x01"}
	if got := fmt.Sprintf("%q", items); got != fmt.Sprintf("%q", wantItems) {
		t.Fatalf("items = %s, want %q", got, wantItems)
	}
	// The same state as sources before positions wrote it: one item per
	// key (version 1, key, next seq). It is still read.
	perKey := [][]byte{[]byte("\x01\x00\x02"), []byte("\x01\x02\x01"), []byte("\x01\x01\x01"), []byte("\x01\x03\x00")}

	r := func(key, seq int) string { return fmt.Sprintf(`{"key":%d,"seq":%d}`, key, seq) }
	tests := []struct {
		name string
		par  int
		want [][]string // per new subtask
	}{
		{"same parallelism continues the run", 2, [][]string{
			{r(2, 1), r(0, 2), r(2, 2)},
			{r(3, 0), r(1, 1), r(3, 1), r(1, 2), r(3, 2)},
		}},
		{"scale in to 1", 1, [][]string{
			{r(3, 0), r(1, 1), r(2, 1), r(3, 1), r(0, 2), r(1, 2), r(2, 2), r(3, 2)},
		}},
		{"scale out to 3", 3, [][]string{
			{r(3, 0), r(3, 1), r(0, 2), r(3, 2)}, // keys 0, 3
			{r(1, 1), r(1, 2)},
			{r(2, 1), r(2, 2)},
		}},
		{"scale out to 5: an idle subtask", 5, [][]string{
			{r(0, 2)}, {r(1, 1), r(1, 2)}, {r(2, 1), r(2, 2)}, {r(3, 0), r(3, 1), r(3, 2)}, nil,
		}},
	}
	for _, tt := range tests {
		for _, format := range []struct {
			name  string
			items [][]byte
		}{{"positions", items}, {"per key", perKey}} {
			t.Run(tt.name+" from "+format.name, func(t *testing.T) {
				for sub := 0; sub < tt.par; sub++ {
					src := newSource(t, "sequence", props)
					if err := src.Open(testCtx("seq", sub, tt.par)); err != nil {
						t.Fatal(err)
					}
					if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 1, Items: format.items}); err != nil {
						t.Fatal(err)
					}
					var c collector
					drain(t, src, &c, 10)
					if !slices.Equal(c.out, tt.want[sub]) {
						t.Errorf("subtask %d:\n got %q\nwant %q", sub, c.out, tt.want[sub])
					}
				}
			})
		}
	}
}

// TestSequenceRescaleExactlyOnce: for many stop points and parallelisms,
// what the old subtasks emitted before the snapshot plus what the restored
// ones emit is every (key, seq) pair exactly once, and a restore at the
// same parallelism emits exactly the rest of an uninterrupted run.
func TestSequenceRescaleExactlyOnce(t *testing.T) {
	const keys, count = 11, 200 // 2200 records: several batches of 512
	props := operator.Properties{"keys": keys, "count": count}
	full := func(sub, par int) []string {
		src := newSource(t, "sequence", props)
		if err := src.Open(testCtx("seq", sub, par)); err != nil {
			t.Fatal(err)
		}
		var c collector
		drain(t, src, &c, 20)
		return c.out
	}
	for _, oldPar := range []int{1, 2, 3} {
		for _, newPar := range []int{1, 2, 3, 4, 12} {
			emitted := map[string]int{}
			var items [][]byte
			for sub := 0; sub < oldPar; sub++ {
				src := newSource(t, "sequence", props)
				if err := src.Open(testCtx("seq", sub, oldPar)); err != nil {
					t.Fatal(err)
				}
				c := &stopAfter{n: 137*(sub+1) + 300*sub}
				for i := 0; i < 10; i++ {
					if st, _, err := src.PollNext(c); err != nil || st == operator.EndOfInput {
						break
					}
				}
				for _, s := range c.out {
					emitted[s]++
				}
				items = append(items, snapshotItems(t, src, 7)...)
				if oldPar == newPar {
					// Same parallelism: the restored subtask continues
					// this one exactly.
					defer func(sub int, head []string) {
						src := newSource(t, "sequence", props)
						if err := src.Open(testCtx("seq", sub, newPar)); err != nil {
							t.Fatal(err)
						}
						if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{Items: items}); err != nil {
							t.Fatal(err)
						}
						var tail collector
						drain(t, src, &tail, 20)
						if got := append(head, tail.out...); !slices.Equal(got, full(sub, oldPar)) {
							t.Errorf("p %d subtask %d: head + restored tail differs from an uninterrupted run", oldPar, sub)
						}
					}(sub, c.out)
				}
			}
			for sub := 0; sub < newPar; sub++ {
				src := newSource(t, "sequence", props)
				if err := src.Open(testCtx("seq", sub, newPar)); err != nil {
					t.Fatal(err)
				}
				if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{Items: items}); err != nil {
					t.Fatal(err)
				}
				var c collector
				drain(t, src, &c, 20)
				for _, s := range c.out {
					emitted[s]++
				}
			}
			if len(emitted) != keys*count {
				t.Errorf("p %d -> %d: %d distinct pairs, want %d", oldPar, newPar, len(emitted), keys*count)
			}
			for s, n := range emitted {
				if n != 1 {
					t.Errorf("p %d -> %d: %s emitted %d times", oldPar, newPar, s, n)
				}
			}
		}
	}
}

func TestSequenceRestoreErrors(t *testing.T) {
	tests := []struct {
		name  string
		items []string
		want  string
	}{
		{"other version", []string{"\x03\x00\x00"}, `sequence: restore checkpoint 3: item 0: not a sequence item of version 1 or 2: "\x03\x00\x00"`},
		{"empty", []string{""}, `sequence: restore checkpoint 3: item 0: not a sequence item of version 1 or 2: ""`},
		{"truncated", []string{"\x01\x00"}, `sequence: restore checkpoint 3: item 0: bad seq in item "\x01\x00"`},
		{"trailing bytes", []string{"\x01\x00\x00\x00"}, `sequence: restore checkpoint 3: item 0: bad seq in item "\x01\x00\x00\x00"`},
		{"duplicate key", []string{"\x01\x00\x05", "\x01\x00\x06"}, `sequence: restore checkpoint 3: key 0 appears twice`},
		{"keys of others and beyond keys are ignored", []string{"\x01\x01\x05", "\x01\x09\x05"}, ``},
		// Positions: version 2, parallelism, subtask, keys, seq, key index.
		{"position", []string{"\x02\x02\x00\x02\x05\x00", "\x02\x02\x01\x02\x05\x01"}, ``},
		{"parallelism 0", []string{"\x02\x00\x00\x02\x05\x00"}, `sequence: restore checkpoint 3: item 0: bad parallelism in sequence item "\x02\x00\x00\x02\x05\x00"`},
		{"parallelism beyond int32", []string{"\x02\x80\x80\x80\x80\x08\x00\x02\x05\x00"},
			`sequence: restore checkpoint 3: item 0: bad parallelism in sequence item "\x02\x80\x80\x80\x80\b\x00\x02\x05\x00"`},
		{"subtask beyond parallelism", []string{"\x02\x02\x02\x02\x05\x00"}, `sequence: restore checkpoint 3: item 0: bad subtask in sequence item "\x02\x02\x02\x02\x05\x00"`},
		{"keys 0", []string{"\x02\x02\x00\x00\x05\x00"}, `sequence: restore checkpoint 3: item 0: bad keys in sequence item "\x02\x02\x00\x00\x05\x00"`},
		{"seq at the int64 maximum", []string{"\x02\x01\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00"},
			`sequence: restore checkpoint 3: item 0: bad seq in sequence item "\x02\x01\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00"`},
		{"key index beyond the subtask's keys", []string{"\x02\x02\x00\x04\x05\x03"}, `sequence: restore checkpoint 3: item 0: bad key index in sequence item "\x02\x02\x00\x04\x05\x03"`},
		{"truncated position", []string{"\x02\x02\x00\x04\x05"}, `sequence: restore checkpoint 3: item 0: bad key index in sequence item "\x02\x02\x00\x04\x05"`},
		{"trailing bytes after a position", []string{"\x02\x02\x00\x04\x05\x01\x00"}, `sequence: restore checkpoint 3: item 0: bad key index in sequence item "\x02\x02\x00\x04\x05\x01\x00"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, "sequence", operator.Properties{"keys": 2})
			if err := src.Open(testCtx("seq", 0, 2)); err != nil {
				t.Fatal(err)
			}
			var items [][]byte
			for _, s := range tt.items {
				items = append(items, []byte(s))
			}
			err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 3, Items: items})
			if errString(err) != tt.want {
				t.Fatalf("err = %q, want %q", errString(err), tt.want)
			}
		})
	}
}

// seqModel is the sequence's specification, with state per key: the next
// seq of every key; a subtask emits the pending pairs of its keys in
// (seq, key) order.
type seqModel map[int64]int64

// emit returns the first n records subtask sub of par emits from the
// model's state, and takes the model past them.
func (m seqModel) emit(keys, count int64, par, sub, n int) []string {
	type pair struct{ seq, key int64 }
	var pending []pair
	for k := int64(sub); k < keys; k += int64(par) {
		for s := m[k]; s < count; s++ {
			pending = append(pending, pair{s, k})
		}
	}
	slices.SortFunc(pending, func(a, b pair) int {
		if a.seq != b.seq {
			return int(a.seq - b.seq)
		}
		return int(a.key - b.key)
	})
	var out []string
	for _, p := range pending[:min(n, len(pending))] {
		out = append(out, fmt.Sprintf(`{"key":%d,"seq":%d}`, p.key, p.seq))
		m[p.key] = p.seq + 1
	}
	return out
}

// TestSequenceMatchesModel runs chains of generations (a parallelism and a
// number of keys each, its subtasks stopped after random numbers of
// records, some after none, then snapshotted) each restored from the items
// of the one before, and checks every subtask's output against the model:
// the exact records, in order. It covers rescales before the keys caught
// up with the last one, keys raised and lowered (a key dropped starts
// again at 0 when it comes back), and a first generation restored from
// per-key (version 1) items.
func TestSequenceMatchesModel(t *testing.T) {
	const count = 12
	for seed := int64(1); seed <= 300; seed++ {
		rnd := rand.New(rand.NewPCG(uint64(seed), 0))
		model := seqModel{}
		var items [][]byte
		if seed%5 == 0 {
			// Start from per-key items, as an older version wrote them.
			keys := int64(3 + rnd.IntN(20))
			for k := int64(0); k < keys; k++ {
				model[k] = int64(rnd.IntN(count))
				items = append(items, appendSeqKey(nil, k, model[k]))
			}
		}
		gens := 2 + rnd.IntN(5)
		for g := 0; g < gens; g++ {
			par := 1 + rnd.IntN(6)
			keys := int64(3 + rnd.IntN(20))
			last := g == gens-1
			props := operator.Properties{"keys": keys, "count": count}
			// Keys dropped by this generation start at 0 if they come back.
			for k := range model {
				if k >= keys {
					delete(model, k)
				}
			}
			start := maps.Clone(model)
			var next [][]byte
			for sub := 0; sub < par; sub++ {
				n := rnd.IntN(int(keys) * 3)
				if rnd.IntN(4) == 0 {
					n = 0
				}
				if last {
					n = math.MaxInt
				}
				src := newSource(t, "sequence", props)
				if err := src.Open(testCtx("seq", sub, par)); err != nil {
					t.Fatal(err)
				}
				if items != nil {
					if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{Items: items}); err != nil {
						t.Fatalf("seed %d generation %d subtask %d: %v", seed, g, sub, err)
					}
				}
				c := &stopAfter{n: n}
				for i := 0; i < 1000; i++ {
					st, _, err := src.PollNext(c)
					if err == errStop || st == operator.EndOfInput {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				// Every subtask starts from the state at the start of
				// the generation: their keys are disjoint.
				want := seqModel(maps.Clone(start)).emit(keys, count, par, sub, n)
				if !slices.Equal(c.out, want) {
					t.Fatalf("seed %d generation %d (p=%d, keys %d) subtask %d:\n got %q\nwant %q", seed, g, par, keys, sub, c.out, want)
				}
				model.emit(keys, count, par, sub, n)
				next = append(next, snapshotItems(t, src, int64(g))...)
			}
			items = next
		}
		for k, s := range model {
			if s != count {
				t.Fatalf("seed %d: key %d ends at %d", seed, k, s)
			}
		}
	}
}

// runSequence opens subtask sub of par, restores items into it (if any),
// emits n records and returns them with the snapshot items.
func runSequence(t *testing.T, props operator.Properties, sub, par, n int, items [][]byte) ([]string, [][]byte) {
	t.Helper()
	src := newSource(t, "sequence", props)
	if err := src.Open(testCtx("seq", sub, par)); err != nil {
		t.Fatal(err)
	}
	if items != nil {
		if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{Items: items}); err != nil {
			t.Fatal(err)
		}
	}
	c := &stopAfter{n: n}
	for i := 0; i < 100_000 && len(c.out) < n; i++ {
		if st, _, err := src.PollNext(c); err == errStop || st == operator.EndOfInput {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return c.out, snapshotItems(t, src, 1)
}

// runGeneration runs every subtask of par for n[sub] records and returns
// the items of all of them.
func runGeneration(t *testing.T, props operator.Properties, par int, n []int, items [][]byte) [][]byte {
	t.Helper()
	var next [][]byte
	for sub := 0; sub < par; sub++ {
		_, it := runSequence(t, props, sub, par, n[sub], items)
		next = append(next, it...)
	}
	return next
}

// TestSequenceStateStaysSmall: the state is one item per subtask; after a
// rescale subtask 0 also carries the old positions, until a restore finds
// that the keys have caught up with them.
func TestSequenceStateStaysSmall(t *testing.T) {
	props := operator.Properties{"keys": 10}
	items := runGeneration(t, props, 3, []int{5, 1, 0}, nil)
	if len(items) != 3 {
		t.Fatalf("%d items, want 3", len(items))
	}
	// Restored at the same parallelism, each subtask takes its own
	// position back: nothing else is carried.
	items = runGeneration(t, props, 3, []int{1, 0, 7}, items)
	if len(items) != 3 {
		t.Fatalf("after a restore at the same parallelism: %d items, want 3", len(items))
	}
	// Rescaled before the keys are at the same seq: subtask 0 carries the
	// three old positions.
	items = runGeneration(t, props, 2, []int{1, 0}, items)
	if len(items) != 2+3 {
		t.Fatalf("after a rescale: %d items, want 5", len(items))
	}
	// Rescaled again before catching up: both runs are carried, as each
	// holds some key back that the other does not.
	items = runGeneration(t, props, 4, []int{1, 0, 0, 0}, items)
	if len(items) != 4+2+3 {
		t.Fatalf("after a second rescale: %d items, want 9", len(items))
	}
	// Once every key is past the old positions (two rounds of every
	// subtask's keys), a restore drops them.
	items = runGeneration(t, props, 4, []int{10, 10, 10, 10}, items)
	items = runGeneration(t, props, 4, []int{0, 0, 0, 0}, items)
	if len(items) != 4 {
		t.Fatalf("after catching up: %d items, want 4", len(items))
	}
}

// TestSequenceIncompleteLayer: positions of a run that lack a subtask say
// nothing about that subtask's keys, so they do not make older positions
// of those keys redundant.
func TestSequenceIncompleteLayer(t *testing.T) {
	items := [][]byte{
		appendSeqPosition(nil, 1, 0, 4, seqPosition{Seq: 5}),
		appendSeqPosition(nil, 2, 0, 4, seqPosition{Seq: 9}), // keys 0 and 2; subtask 1 missing
	}
	out, _ := runSequence(t, operator.Properties{"keys": 4, "count": 7}, 0, 1, 100, items)
	want := []string{`{"key":1,"seq":5}`, `{"key":3,"seq":5}`, `{"key":1,"seq":6}`, `{"key":3,"seq":6}`}
	if !slices.Equal(out, want) {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// TestSequenceHugeKeys: a sequence of 10^15 keys costs no memory per key,
// runs, snapshots and rescales.
func TestSequenceHugeKeys(t *testing.T) {
	props := operator.Properties{"keys": int64(1e15)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, items := runSequence(t, props, 1, 3, 4, nil)
	if want := []string{`{"key":1,"seq":0}`, `{"key":4,"seq":0}`, `{"key":7,"seq":0}`, `{"key":10,"seq":0}`}; !slices.Equal(out, want) {
		t.Fatalf("got %q, want %q", out, want)
	}
	if want := fmt.Sprintf("%q", appendSeqPosition(nil, 3, 1, 1e15, seqPosition{Seq: 0, KeyIndex: 4})); fmt.Sprintf("%q", items) != "["+want+"]" {
		t.Fatalf("items %q, want [%s]", items, want)
	}
	// Rescale from 3 to 2: new subtask 1 has keys 1, 3, 5, ...; of those,
	// 1, 7 (and 4, 10, which it does not own) were emitted by old subtask 1.
	// Old subtask 0 emitted keys 0, 3, 6; 2 had nothing to restore.
	_, items0 := runSequence(t, props, 0, 3, 3, nil)
	_, items2 := runSequence(t, props, 2, 3, 0, nil)
	all := append(append(items0, items...), items2...)
	out, _ = runSequence(t, props, 1, 2, 4, all)
	if want := []string{`{"key":5,"seq":0}`, `{"key":9,"seq":0}`, `{"key":11,"seq":0}`, `{"key":13,"seq":0}`}; !slices.Equal(out, want) {
		t.Fatalf("after rescale: got %q, want %q", out, want)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("%d bytes allocated for a sequence of 10^15 keys", grew)
	}
}

// TestSequenceCatchUpPollIsBounded: a subtask whose keys are ahead of the
// round looks at no more than maxScan of them per PollNext, so that the
// task gets its mailbox back even when a round has nothing to emit for a
// long while.
func TestSequenceCatchUpPollIsBounded(t *testing.T) {
	const keys = 10 * maxScan
	props := operator.Properties{"keys": keys}
	// At parallelism 1 every key but the last went through round 0.
	// Restored at parallelism 2, subtask 1 (odd keys, 5*maxScan of them)
	// has one key to emit in round 0, the last.
	_, items := runSequence(t, props, 0, 1, keys-1, nil)
	src := newSource(t, "sequence", props)
	if err := src.Open(testCtx("seq", 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{Items: items}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		var c collector
		if st, _, err := src.PollNext(&c); st != operator.MoreAvailable || err != nil || len(c.out) != 0 {
			t.Fatalf("poll %d: %v, %v, %d records; want a poll that returns empty-handed after %d keys", i, st, err, len(c.out), maxScan)
		}
	}
	var c collector
	if _, _, err := src.PollNext(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.out) != maxBatch || c.out[0] != fmt.Sprintf(`{"key":%d,"seq":0}`, keys-1) || c.out[1] != `{"key":1,"seq":1}` {
		t.Fatalf("poll 4: %d records: %.3q", len(c.out), c.out)
	}
}

// TestSequenceTooManyRuns: items of more runs than a real job has are
// refused, rather than kept and looked at for every key.
func TestSequenceTooManyRuns(t *testing.T) {
	var items [][]byte
	for p := int64(1); p <= maxSeqLayers+1; p++ {
		items = append(items, appendSeqPosition(nil, p, 0, 2, seqPosition{Seq: 1}))
	}
	src := newSource(t, "sequence", operator.Properties{"keys": 2})
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		t.Fatal(err)
	}
	err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 9, Items: items})
	if want := "sequence: restore checkpoint 9: positions of more than 1024 runs (parallelism and keys)"; errString(err) != want {
		t.Fatalf("err = %q, want %q", errString(err), want)
	}
}
