package builtin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
)

const testMaxParallelism = 128

// testCtx is the context of subtask of par, for operator id.
func testCtx(id string, subtask, par int) *operator.Context {
	return &operator.Context{
		JobID:          "job",
		JobName:        "test",
		OperatorID:     id,
		Subtask:        subtask,
		Parallelism:    par,
		MaxParallelism: testMaxParallelism,
		KeyGroups:      state.KeyGroupRangeForSubtask(testMaxParallelism, par, subtask),
		Logger:         zap.NewNop(),
	}
}

// collector keeps every collected record as JSON.
type collector struct {
	out  []string
	fail error // returned by Collect when set
}

func (c *collector) Collect(r *record.Record) error {
	if c.fail != nil {
		return c.fail
	}
	c.out = append(c.out, r.String())
	return nil
}

// discard counts records without keeping them (benchmarks).
type discard struct{ n int }

func (d *discard) Collect(*record.Record) error { d.n++; return nil }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// newSource builds a registered source type from props.
func newSource(t testing.TB, typ string, props operator.Properties) operator.Source {
	t.Helper()
	ty, ok := operator.Lookup(typ)
	if !ok {
		t.Fatalf("type %q not registered", typ)
	}
	if err := ty.Validate(props); err != nil {
		t.Fatalf("validate %s %v: %v", typ, props, err)
	}
	s, err := ty.NewSource(props)
	if err != nil {
		t.Fatalf("new %s: %v", typ, err)
	}
	return s
}

// newOperator builds a registered transform or sink type from props.
func newOperator(t testing.TB, typ string, props operator.Properties) operator.Operator {
	t.Helper()
	ty, ok := operator.Lookup(typ)
	if !ok {
		t.Fatalf("type %q not registered", typ)
	}
	if err := ty.Validate(props); err != nil {
		t.Fatalf("validate %s %v: %v", typ, props, err)
	}
	op, err := ty.NewOperator(props)
	if err != nil {
		t.Fatalf("new %s: %v", typ, err)
	}
	return op
}

// drain polls src until EndOfInput, failing after maxPolls polls or on a
// NothingAvailable (a bounded source without rate never waits).
func drain(t testing.TB, src operator.Source, out operator.Collector, maxPolls int) {
	t.Helper()
	for i := 0; i < maxPolls; i++ {
		st, _, err := src.PollNext(out)
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		switch st {
		case operator.EndOfInput:
			return
		case operator.NothingAvailable:
			t.Fatalf("poll %d: NothingAvailable from a bounded source", i)
		}
	}
	t.Fatalf("no EndOfInput after %d polls", maxPolls)
}

// fakeClock is a monotonic clock that tests move by hand.
type fakeClock struct{ t time.Duration }

func (c *fakeClock) now() time.Duration { return c.t }

// records parses JSON lines into the form collector keeps (for expected
// outputs written as one string).
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

var errDownstream = errors.New("downstream failed")
