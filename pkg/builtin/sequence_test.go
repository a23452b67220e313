package builtin

import (
	"errors"
	"fmt"
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
	// Item: version 1, key, next seq.
	wantItems := []string{"\x01\x00\x02", "\x01\x02\x01", "\x01\x01\x01", "\x01\x03\x00"}
	if got := fmt.Sprintf("%q", items); got != fmt.Sprintf("%q", wantItems) {
		t.Fatalf("items = %s, want %q", got, wantItems)
	}

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
		t.Run(tt.name, func(t *testing.T) {
			for sub := 0; sub < tt.par; sub++ {
				src := newSource(t, "sequence", props)
				if err := src.Open(testCtx("seq", sub, tt.par)); err != nil {
					t.Fatal(err)
				}
				if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 1, Items: items}); err != nil {
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
		{"other version", []string{"\x02\x00\x00"}, `sequence: restore checkpoint 3: item 0: not a sequence item of version 1: "\x02\x00\x00"`},
		{"empty", []string{""}, `sequence: restore checkpoint 3: item 0: not a sequence item of version 1: ""`},
		{"truncated", []string{"\x01\x00"}, `sequence: restore checkpoint 3: item 0: bad seq in item "\x01\x00"`},
		{"trailing bytes", []string{"\x01\x00\x00\x00"}, `sequence: restore checkpoint 3: item 0: bad seq in item "\x01\x00\x00\x00"`},
		{"duplicate key", []string{"\x01\x00\x05", "\x01\x00\x06"}, `sequence: restore checkpoint 3: key 0 appears twice`},
		{"keys of others and beyond keys are ignored", []string{"\x01\x01\x05", "\x01\x09\x05"}, ``},
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
