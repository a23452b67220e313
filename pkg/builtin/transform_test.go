package builtin

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/expr"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func TestTransforms(t *testing.T) {
	tests := []struct {
		typ, expr string
		in        []string
		want      []string
		err       string
	}{
		{
			typ: "map", expr: `{"k": record.key, "double": record.seq * 2}`,
			in:   []string{`{"key":0,"seq":0}`, `{"key":1,"seq":21}`},
			want: []string{`{"k":0,"double":0}`, `{"k":1,"double":42}`},
		},
		{
			typ: "map", expr: `{"x": 10 / record.seq}`,
			in:   []string{`{"seq":5}`, `{"seq":0}`},
			want: []string{`{"x":2}`},
			err:  `map "op": expression "{\"x\": 10 / record.seq}" failed on record {"seq":0}: division by zero`,
		},
		{
			typ: "filter", expr: `record.seq % 2 == 0`,
			in:   []string{`{"seq":0}`, `{"seq":1}`, `{"seq":2,"s":"kept as is"}`},
			want: []string{`{"seq":0}`, `{"seq":2,"s":"kept as is"}`},
		},
		{
			typ: "filter", expr: `record.missing > 1`,
			in:  []string{`{"seq":0}`},
			err: `filter "op": expression "record.missing > 1" failed on record {"seq":0}: no such key: missing`,
		},
		{
			typ: "flat-map", expr: `record.line.split(" ").map(w, {"word": w, "n": 1})`,
			in:   []string{`{"line":"to be or"}`, `{"line":""}`, `{"line":"not"}`},
			want: []string{`{"word":"to","n":1}`, `{"word":"be","n":1}`, `{"word":"or","n":1}`, `{"word":"","n":1}`, `{"word":"not","n":1}`},
		},
		{
			typ: "flat-map", expr: `record.items`,
			in:   []string{`{"items":[]}`, `{"items":[{"a":1},{"b":2}]}`, `{"items":[3]}`},
			want: []string{`{"a":1}`, `{"b":2}`},
			err:  `flat-map "op": expression "record.items" failed on record {"items":[3]}: list element 0 is int, want map`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.expr, func(t *testing.T) {
			op := newOperator(t, tt.typ, operator.Properties{"expr": tt.expr})
			got, err := runOperator(t, op, testCtx("op", 0, 1), tt.in)
			if errString(err) != tt.err {
				t.Errorf("err = %q\nwant %q", errString(err), tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestTransformsCollectError: a downstream error comes back unchanged.
func TestTransformsCollectError(t *testing.T) {
	for typ, expr := range map[string]string{
		"map": `{"a": 1}`, "filter": `true`, "flat-map": `[{"a": 1}]`,
	} {
		op := newOperator(t, typ, operator.Properties{"expr": expr})
		if err := op.Open(testCtx("op", 0, 1)); err != nil {
			t.Fatal(err)
		}
		if err := op.ProcessRecord(decodeJSON(t, `{"seq":1}`), &collector{fail: errDownstream}); err != errDownstream {
			t.Errorf("%s: err = %v, want %v", typ, err, errDownstream)
		}
	}
}

// BenchmarkMap: per-record cost of a map operator (the CEL evaluation
// dominates; see package expr for its allocations).
func BenchmarkMap(b *testing.B) {
	op := newOperator(b, "map", operator.Properties{"expr": `{"key": record.key, "double": record.seq * 2}`})
	if err := op.Open(testCtx("map", 0, 1)); err != nil {
		b.Fatal(err)
	}
	r := record.Record{Fields: []record.Field{{Name: "key", Value: record.Int(7)}, {Name: "seq", Value: record.Int(100)}}}
	var d discard
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op.ProcessRecord(&r, &d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilter: per-record cost of a filter operator.
func BenchmarkFilter(b *testing.B) {
	op := newOperator(b, "filter", operator.Properties{"expr": `record.seq % 2 == 0`})
	if err := op.Open(testCtx("filter", 0, 1)); err != nil {
		b.Fatal(err)
	}
	r := record.Record{Fields: []record.Field{{Name: "key", Value: record.Int(7)}, {Name: "seq", Value: record.Int(100)}}}
	var d discard
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op.ProcessRecord(&r, &d); err != nil {
			b.Fatal(err)
		}
	}
}

// A runaway expression fails with the operator, the expression and the
// job's limit; a canceled task interrupts one.
func TestTransformsCostLimit(t *testing.T) {
	nested := "true"
	for i := 0; i < 10; i++ {
		nested = `[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(x` + string(rune('a'+i)) + `, ` + nested + `)`
	}
	cfg, _, err := config.FromMap(map[string]string{"weir.expression.cost-limit": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	for typ, src := range map[string]string{
		"map":      `{"ok": ` + nested + `}`,
		"filter":   nested,
		"flat-map": `[{"ok": ` + nested + `}]`,
	} {
		op := newOperator(t, typ, operator.Properties{"expr": src})
		ctx := testCtx("enrich", 0, 1)
		ctx.Config = cfg
		_, err := runOperator(t, op, ctx, []string{`{"seq":1}`})
		want := typ + ` "enrich": expression ` + strconv.Quote(src) + ` exceeded the cost limit of 1000 (weir.expression.cost-limit)`
		if errString(err) != want {
			t.Errorf("err = %q\nwant %q", errString(err), want)
		}
	}

	// No limit to speak of: only the cancellation stops it.
	cfg, _, err = config.FromMap(map[string]string{"weir.expression.cost-limit": "9223372036854775807"})
	if err != nil {
		t.Fatal(err)
	}
	op := newOperator(t, "filter", operator.Properties{"expr": nested})
	ctx := testCtx("enrich", 0, 1)
	done := make(chan struct{})
	ctx.Config, ctx.Done = cfg, done
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() { result <- op.ProcessRecord(decodeJSON(t, `{"seq":1}`), &collector{}) }()
	close(done)
	select {
	case err := <-result:
		if !errors.Is(err, expr.ErrInterrupted) {
			t.Fatalf("err = %v, want expr.ErrInterrupted", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("filter not interrupted 30 s after its task was canceled")
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
}
