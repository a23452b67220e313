package builtin

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/operator"
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
