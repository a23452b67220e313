package builtin

import (
	"fmt"
	"slices"
	"testing"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/pkg/state"
)

// runOperator feeds JSON records to op (opened with ctx) and returns what
// it emits, stopping at the first error.
func runOperator(t testing.TB, op operator.Operator, ctx *operator.Context, in []string) ([]string, error) {
	t.Helper()
	if err := op.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer op.Close()
	var c collector
	var dec record.Decoder
	var r record.Record
	for _, js := range in {
		if err := dec.DecodeJSON([]byte(js), &r); err != nil {
			t.Fatalf("bad test input %s: %v", js, err)
		}
		if err := op.ProcessRecord(&r, &c); err != nil {
			return c.out, err
		}
	}
	return c.out, op.EndInput(&c)
}

func keyedCtx(id, keyField string, subtask, par int) *operator.Context {
	ctx := testCtx(id, subtask, par)
	ctx.KeyField = keyField
	return ctx
}

func TestAggregateKinds(t *testing.T) {
	tests := []struct {
		name string
		aggs map[string]any
		in   []string
		want []string
	}{
		{
			name: "every kind, ints then a float, missing and null skipped",
			aggs: map[string]any{"n": "count", "s": "sum(v)", "lo": "min(v)", "hi": " max ( v ) ", "mean": "avg(v)"},
			in: []string{
				`{"k":"a","v":3}`,
				`{"k":"a","v":1.5}`,
				`{"k":"b","v":-2}`,
				`{"k":"a"}`,
				`{"k":"a","v":null}`,
				`{"k":"c"}`,
				`{"k":"b","v":10,"n":"replaced in place"}`,
			},
			want: []string{
				`{"k":"a","v":3,"hi":3,"lo":3,"mean":3.0,"n":1,"s":3}`,
				`{"k":"a","v":1.5,"hi":3,"lo":1.5,"mean":2.25,"n":2,"s":4.5}`,
				`{"k":"b","v":-2,"hi":-2,"lo":-2,"mean":-2.0,"n":1,"s":-2}`,
				`{"k":"a","hi":3,"lo":1.5,"mean":2.25,"n":3,"s":4.5}`,
				`{"k":"a","v":null,"hi":3,"lo":1.5,"mean":2.25,"n":4,"s":4.5}`,
				`{"k":"c","hi":null,"lo":null,"mean":null,"n":1,"s":null}`,
				`{"k":"b","v":10,"n":2,"hi":10,"lo":-2,"mean":4.0,"s":8}`,
			},
		},
		{
			name: "int sum overflowing becomes a float",
			aggs: map[string]any{"s": "sum(v)", "mean": "avg(v)"},
			in:   []string{`{"k":1,"v":9223372036854775807}`, `{"k":1,"v":1}`, `{"k":1,"v":1}`},
			want: []string{
				// Floats are written in their shortest form: 2^63 is
				// 9223372036854776000.0.
				`{"k":1,"v":9223372036854775807,"mean":9223372036854776000.0,"s":9223372036854775807}`,
				`{"k":1,"v":1,"mean":4611686018427388000.0,"s":9223372036854776000.0}`,
				`{"k":1,"v":1,"mean":3074457345618258400.0,"s":9223372036854776000.0}`,
			},
		},
		{
			name: "min and max compare ints with floats and keep the value",
			aggs: map[string]any{"lo": "min(v)", "hi": "max(v)"},
			in:   []string{`{"k":true,"v":2}`, `{"k":true,"v":2.5}`, `{"k":true,"v":1.0}`, `{"k":true,"v":1}`},
			want: []string{
				`{"k":true,"v":2,"hi":2,"lo":2}`,
				`{"k":true,"v":2.5,"hi":2.5,"lo":2}`,
				`{"k":true,"v":1.0,"hi":2.5,"lo":1.0}`,
				`{"k":true,"v":1,"hi":2.5,"lo":1.0}`,
			},
		},
		{
			name: "a key field whose value is null is the null key",
			aggs: map[string]any{"n": "count()"},
			in:   []string{`{"k":null}`, `{"k":null,"v":1}`, `{"k":0}`},
			want: []string{`{"k":null,"n":1}`, `{"k":null,"v":1,"n":2}`, `{"k":0,"n":1}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newOperator(t, "aggregate", operator.Properties{"aggregates": tt.aggs})
			got, err := runOperator(t, op, keyedCtx("agg", "k", 0, 1), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestAggregateCountOverSequence: aggregate subtasks fed by a sequence
// through hash partitioning by "key" count seq+1 for every record.
func TestAggregateCountOverSequence(t *testing.T) {
	const par = 2
	src := newSource(t, "sequence", operator.Properties{"keys": 10, "count": 60})
	if err := src.Open(testCtx("seq", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var aggs [par]operator.Operator
	outs := make([]collector, par)
	for i := range aggs {
		aggs[i] = newOperator(t, "aggregate", operator.Properties{"aggregates": map[string]any{"count": "count", "total": "sum(seq)"}})
		if err := aggs[i].Open(keyedCtx("agg", "key", i, par)); err != nil {
			t.Fatal(err)
		}
	}
	// The hash partitioner: key group of the key, subtask of the key group.
	route := collectFunc(func(r *record.Record) error {
		k, _ := r.Get("key")
		sub := state.SubtaskForKeyGroup(testMaxParallelism, par, state.KeyGroupFor(k, testMaxParallelism))
		return aggs[sub].ProcessRecord(r, &outs[sub])
	})
	drain(t, src, route, 10)
	n := 0
	var dec record.Decoder
	var r record.Record
	for sub := range outs {
		for _, js := range outs[sub].out {
			if err := dec.DecodeJSON([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			seq, _ := r.Get("seq")
			s, _ := seq.AsInt()
			want := fmt.Sprintf(`{"key":%s,"seq":%d,"count":%d,"total":%d}`, mustGet(&r, "key"), s, s+1, s*(s+1)/2)
			if js != want {
				t.Fatalf("subtask %d: got %s, want %s", sub, js, want)
			}
			n++
		}
	}
	if n != 600 {
		t.Fatalf("got %d records, want 600", n)
	}
}

func mustGet(r *record.Record, name string) string {
	v, _ := r.Get(name)
	return v.String()
}

type collectFunc func(*record.Record) error

func (f collectFunc) Collect(r *record.Record) error { return f(r) }

func TestAggregateErrors(t *testing.T) {
	props := operator.Properties{"aggregates": map[string]any{"n": "count", "s": "sum(v)"}}

	// A non-number fails, naming operator, field and record, and leaves the
	// key's state untouched.
	op := newOperator(t, "aggregate", props)
	got, err := runOperator(t, op, keyedCtx("agg", "k", 0, 1), []string{`{"k":1,"v":"x"}`})
	want := `aggregate "agg": field "v" of record {"k":1,"v":"x"} is a string, want a number (for "s": sum(v))`
	if errString(err) != want || got != nil {
		t.Errorf("non-number: %q, err %q\nwant err %q", got, errString(err), want)
	}
	if err := op.ProcessRecord(decodeJSON(t, `{"k":1,"v":2}`), &collector{}); err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := op.ProcessRecord(decodeJSON(t, `{"k":1,"v":2}`), &c); err != nil {
		t.Fatal(err)
	}
	if want := []string{`{"k":1,"v":2,"n":2,"s":4}`}; !slices.Equal(c.out, want) {
		t.Errorf("after a failed record: %q, want %q", c.out, want)
	}

	// A record without its key field fails, naming the operator, the key
	// field and the record; the state is untouched.
	op = newOperator(t, "aggregate", props)
	got, err = runOperator(t, op, keyedCtx("agg", "k", 0, 1), []string{`{"k":1,"v":1}`, `{"v":2}`})
	want = `aggregate "agg": record has no key field "k": {"v":2}`
	if errString(err) != want || !slices.Equal(got, []string{`{"k":1,"v":1,"n":1,"s":1}`}) {
		t.Errorf("missing key: %q, err %q\nwant err %q", got, errString(err), want)
	}

	// A key routed to the wrong subtask is an error, not a panic.
	ctx := keyedCtx("agg", "k", 0, 2)
	var wrong int64
	for state.KeyGroupFor(record.Int(wrong), testMaxParallelism) <= ctx.KeyGroups.End {
		wrong++
	}
	kg := state.KeyGroupFor(record.Int(wrong), testMaxParallelism)
	_, err = runOperator(t, newOperator(t, "aggregate", props), ctx, []string{fmt.Sprintf(`{"k":%d}`, wrong)})
	want = fmt.Sprintf(`aggregate "agg": record {"k":%d}: key %d is in key group %d, outside this subtask's range [0-63] (input not partitioned by "k"?)`, wrong, wrong, kg)
	if errString(err) != want {
		t.Errorf("wrong key group: err %q\nwant %q", errString(err), want)
	}

	err = newOperator(t, "aggregate", props).Open(testCtx("agg", 0, 1))
	if want := `aggregate "agg": the input is not hash-partitioned by a key field`; errString(err) != want {
		t.Errorf("unkeyed input: err %q, want %q", errString(err), want)
	}

	// A downstream error comes back unchanged.
	op = newOperator(t, "aggregate", props)
	if err := op.Open(keyedCtx("agg", "k", 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := op.ProcessRecord(decodeJSON(t, `{"k":1}`), &collector{fail: errDownstream}); err != errDownstream {
		t.Errorf("downstream failure: err %v", err)
	}
}

func decodeJSON(t testing.TB, js string) *record.Record {
	t.Helper()
	var r record.Record
	if err := (&record.Decoder{}).DecodeJSON([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// BenchmarkAggregate: per-record cost of count, sum, min, max and avg over
// int records of existing keys (must not allocate).
func BenchmarkAggregate(b *testing.B) {
	op := newOperator(b, "aggregate", operator.Properties{"aggregates": map[string]any{
		"n": "count", "s": "sum(seq)", "lo": "min(seq)", "hi": "max(seq)", "mean": "avg(seq)",
	}})
	if err := op.Open(keyedCtx("agg", "key", 0, 1)); err != nil {
		b.Fatal(err)
	}
	const keys = 1000
	recs := make([]record.Record, keys)
	for i := range recs {
		recs[i].Fields = []record.Field{{Name: "key", Value: record.Int(int64(i))}, {Name: "seq", Value: record.Int(int64(i * 7))}}
	}
	var d discard
	for i := range recs { // create the keys
		if err := op.ProcessRecord(&recs[i], &d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op.ProcessRecord(&recs[i%keys], &d); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAggregateNoAllocs(t *testing.T) {
	op := newOperator(t, "aggregate", operator.Properties{"aggregates": map[string]any{"n": "count", "s": "sum(seq)", "hi": "max(seq)"}})
	if err := op.Open(keyedCtx("agg", "key", 0, 1)); err != nil {
		t.Fatal(err)
	}
	r := decodeJSON(t, `{"key":"some string key","seq":5}`)
	var d discard
	if err := op.ProcessRecord(r, &d); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = op.ProcessRecord(r, &d) }); n != 0 {
		t.Fatalf("%v allocations per record of an existing key, want 0", n)
	}
}
