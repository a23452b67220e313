package builtin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

// chainCollector passes each record through the next operators of a
// linear job, counting the records each stage receives.
type chainCollector struct {
	ops  []operator.Operator
	next *chainCollector
	n    int
}

func (c *chainCollector) Collect(r *record.Record) error {
	c.n++
	if len(c.ops) == 0 {
		return nil
	}
	return c.ops[0].ProcessRecord(r, c.next)
}

// TestNexmarkExamples parses every examples/nexmark job as `weir run`
// does (types and properties validated), then runs its first 5000 events
// through its operators, so that an expression that fails at run time
// (a type error CEL finds only on a record) fails here.
func TestNexmarkExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/nexmark/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			g, err := jobgraph.Parse(data, path)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Operators) < 2 || g.Operators[0].Type != "nexmark" {
				t.Fatalf("want a nexmark source first, got %+v", g.Operators[0])
			}
			props := operator.Properties{}
			for k, v := range g.Operators[0].Properties {
				props[k] = v
			}
			props["events"] = 5000
			src := newSource(t, "nexmark", props)
			if err := src.Open(testCtx("src", 0, 1)); err != nil {
				t.Fatal(err)
			}
			var ops []operator.Operator
			for i, o := range g.Operators[1:] {
				if len(o.Inputs) != 1 || o.Inputs[0].From != g.Operators[i].ID {
					t.Fatalf("operator %q: not a linear job", o.ID)
				}
				op := newOperator(t, o.Type, o.Properties)
				if err := op.Open(testCtx(o.ID, 0, 1)); err != nil {
					t.Fatalf("open %s: %v", o.ID, err)
				}
				defer op.Close()
				ops = append(ops, op)
			}
			chain := make([]*chainCollector, len(ops)+1)
			for i := len(ops); i >= 0; i-- {
				chain[i] = &chainCollector{ops: ops[i:]}
				if i < len(ops) {
					chain[i].next = chain[i+1]
				}
			}
			drain(t, src, chain[0], 100)
			if chain[len(ops)-1].n == 0 {
				t.Fatalf("no record reached the sink")
			}
		})
	}
}
