package expr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/record"
)

// compileFast compiles src with its literal plan even when its static
// cost keeps Compile from planning one (a sum of two fields could be one
// of two long strings): the plan must be exact whatever decides its use.
func compileFast(t testing.TB, src string, want ResultType) *Program {
	t.Helper()
	p := mustCompile(t, src, want)
	if p.lit != nil || p.maxCost <= maxUntracked {
		return p
	}
	e, err := env()
	if err != nil {
		t.Fatal(err)
	}
	p.maxCost = 0
	p.planFast(e)
	if err := p.SetLimits(Limits{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// slowPath returns a clone of p without its literal fast path: CEL builds
// the whole result and mapInto converts it, as for any other expression.
func slowPath(t testing.TB, p *Program) *Program {
	c := mustClone(t, p)
	c.lit, c.direct, c.vals, c.fastBool = nil, nil, nil, nil
	return c
}

// literalRecords are inputs for the fast/slow comparisons: well typed,
// badly typed, empty, and at the edge of int overflow.
var literalRecords = []string{
	`{"key":7,"seq":1234,"line":"the quick brown fox","v":5,"n":{"m":"deep","k":[1,2.5]},"l":[1,{"x":2.0}],"nul":null}`,
	`{"key":"str","seq":2.5,"line":"","v":-1,"n":null,"l":[],"nul":1}`,
	`{"n":{"k":null},"l":{"x":[]}}`,
	`{}`,
	`{"seq":9223372036854775807,"key":null,"line":"a b"}`,
	`{"seq":-9223372036854775808,"key":-1,"v":0,"x":2.5,"y":0.0,"line":"s","n":{"m":3}}`,
	`{"seq":3,"key":-7,"v":2,"x":-0.0,"y":1e308,"line":"t","n":{"m":4.5}}`,
}

// evalMapResult runs EvalMap and returns the output (which must be empty
// after an error) and the error as strings.
func evalMapResult(t *testing.T, p *Program, in *record.Record) string {
	t.Helper()
	out := &record.Record{}
	out.Set("stale", record.Int(1))
	err := p.EvalMap(in, out)
	if err != nil {
		if out.Len() != 0 {
			t.Errorf("%s: output %s left after error", p.Source(), out)
		}
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Source != p.Source() {
			t.Errorf("%s: error %v is not an *EvalError with the source", p.Source(), err)
		}
		return "error: " + err.Error()
	}
	return out.String()
}

func evalListResult(t *testing.T, p *Program, in *record.Record) string {
	t.Helper()
	var got []string
	err := p.EvalList(in, func(r *record.Record) error { got = append(got, r.String()); return nil })
	s := strings.Join(got, " ")
	if err != nil {
		s += " error: " + err.Error()
	}
	return s
}

// checkScratchClear checks that evaluation left no reference to the input
// behind.
func checkScratchClear(t *testing.T, p *Program) {
	t.Helper()
	if p.act.in != nil {
		t.Errorf("%s: activation still holds the input", p.Source())
	}
	for i := range p.vals {
		if p.vals[i] != nil || !record.Equal(p.direct[i], record.Value{}) {
			t.Errorf("%s: scratch entry %d not cleared", p.Source(), i)
		}
	}
}

func TestLiteralPlanMatchesCEL(t *testing.T) {
	cases := []struct {
		src  string
		fast bool // whether the fast path applies
	}{
		{`{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`, true},
		{`{"word": record.line, "n": 1}`, true},
		{`{"a": record["key"], "b": record.n.m, "c": record["n"]["m"], "d": record.n["k"]}`, true},
		{`{"z": 1, "a": 2.5, "s": "x", "b": true, "nul": null, "u": 7u, "neg": -3}`, true},
		{`{"l": [1, "a", [null]], "m": {"q": 1, "p": {"y": 2, "x": 3}}, "e": {}}`, true},
		{`{"y": {"b": 1, "a": 2}, "x": {"a": 3, "b": 4}}`, true},
		{`{"o": record.key == 7 ? {"y": 1, "x": 2} : {"x": 3, "y": 4}, "p": {"y": 0, "x": 0}}`, true},
		{`{"all": record, "half": double(record.v) / 2.0, "i": record.v / 2}`, true},
		{`{"copy": record, "seq": record.seq, "n": record.n}`, true},
		{`{"nested": record.n, "list": record.l, "nul": record.nul}`, true},
		{`{"out": {"q": record.v, "p": [record.v, "s", null, true]}}`, true},
		{`{"t": timestamp("2024-01-02T03:04:05Z"), "d": duration("1.5s")}`, true},
		{`{"w": record.line.split(" "), "n": size(record.line), "up": record.line.upperAscii()}`, true},
		{`{"f": has(record.key), "in": "seq" in record}`, true},
		{`{"x": [1, 2].map(record, record + 1)}`, true},
		{`{}`, true},
		// Errors: missing keys, steps through non-maps, type errors, and
		// which of several failures wins.
		{`{"a": record.missing}`, true},
		{`{"a": 1, "b": record.missing, "c": 1 / 0}`, true},
		{`{"c": 1 / 0, "b": record.missing}`, true},
		{`{"a": b"xy", "b": record.missing}`, true},
		{`{"a": b"xy", "b": 2}`, true},
		{`{"a": 2, "b": b"xy", "c": dyn({1: 2})}`, true},
		{`{"a": 18446744073709551615u}`, true},
		{`{"a": record.l.x, "b": record.nul.x, "c": record.n.missing}`, true},
		{`{"a": record.n.k.x}`, true},
		{`{"a": record.l["x"]}`, true},
		{`{"a": record.seq + 1, "b": record.key}`, true},
		{`{"a": record, "b": record.n}`, true},
		// Arithmetic: computed in Go when CEL cannot fail, else by CEL.
		{`{"m": record.seq * 2, "p": record.seq + 1, "s": record.seq - 1, "d": record.seq / 2, "r": record.seq % 3}`, true},
		{`{"m": record.seq * record.key, "p": record.seq + record.key, "s": record.seq - record.key}`, true},
		{`{"d": record.seq / record.key, "r": record.seq % record.key, "z": record.seq / record.v, "zr": record.key % record.v}`, true},
		{`{"m": 2 * record.key, "s": 1 - record.key, "d": 100 / record.key, "r": 100 % record.key}`, true},
		{`{"x": record.x * 2.0, "y": record.x + record.y, "z": record.x / record.y, "w": 1.5 - record.x}`, true},
		{`{"y": record.y * record.y, "n": record.n.m * 2, "q": record["n"]["m"] + 0.5}`, true},
		{`{"mixed": record.x * 2, "str": record.line + record.line, "list": record.l + record.l}`, true},
		{`{"fm": record.x % record.y}`, true},
		{`{"u": record.seq * 2u}`, true},
		// Not literal roots with distinct constant keys: CEL's own path.
		{`{"a": 1, "a": 2}`, false},
		{`{"a": 1, "a": 2, "b": record.key}`, false},
		{`{record.line: 1}`, false},
		{`record.key == 7 ? {"a": 1} : {"b": 2}`, false},
		{`record`, false},
	}
	for _, c := range cases {
		fast := compileFast(t, c.src, ResultMap)
		if got := fast.lit != nil; got != c.fast {
			t.Errorf("%s: fast path %v, want %v", c.src, got, c.fast)
		}
		slow := slowPath(t, fast)
		for _, js := range literalRecords {
			in := mustJSON(t, js)
			want := evalMapResult(t, slow, in)
			got := evalMapResult(t, fast, in)
			if got != want {
				t.Errorf("%s on %s:\n fast %s\n slow %s", c.src, js, got, want)
			}
			if in.String() != mustJSON(t, js).String() {
				t.Errorf("%s modified its input: %s", c.src, in)
			}
			checkScratchClear(t, fast)
		}
	}
}

func TestLiteralPlanListMatchesCEL(t *testing.T) {
	cases := []struct {
		src  string
		fast bool
	}{
		{`[{"word": record.line, "n": 1}, {"word": record.key, "n": 2}]`, true},
		// Each element gets the order of the first literal with its keys.
		{`[{"a": 1, "b": 2}, {"b": record.seq, "a": record.key}]`, true},
		{`[{"a": {"x": 1, "y": 2}}, {"y": record.key, "x": record.seq}]`, true},
		{`[{"a": record.key}, {"b": record.missing}]`, true},
		{`[{"a": 1}, {"b": b"x"}]`, true},
		{`[{"a": 1}, {}]`, true},
		{`[]`, true},
		{`[{"a": 1}, record.n]`, false},
		{`record.line.split(" ").map(w, {"word": w})`, false},
	}
	for _, c := range cases {
		fast := compileFast(t, c.src, ResultListOfMaps)
		if got := fast.lit != nil; got != c.fast {
			t.Errorf("%s: fast path %v, want %v", c.src, got, c.fast)
		}
		slow := slowPath(t, fast)
		for _, js := range literalRecords {
			in := mustJSON(t, js)
			want := evalListResult(t, slow, in)
			got := evalListResult(t, fast, in)
			if got != want {
				t.Errorf("%s on %s:\n fast %s\n slow %s", c.src, js, got, want)
			}
			checkScratchClear(t, fast)
		}
	}
}

// TestLiteralPlanExact pins a few fast-path outputs, so that the fast and
// slow paths cannot agree on something wrong.
func TestLiteralPlanExact(t *testing.T) {
	in := mustJSON(t, literalRecords[0])
	cases := []struct{ src, want string }{
		{`{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`, `{"key":7,"seq":1234,"twice":2468}`},
		{`{"z": 1, "a": 2.0, "s": "x", "b": true, "nul": null, "u": 7u, "neg": -3}`, `{"z":1,"a":2.0,"s":"x","b":true,"nul":null,"u":7,"neg":-3}`},
		{`{"b": record.n.m, "c": record["n"]["k"], "l": record.l}`, `{"b":"deep","c":[1,2.5],"l":[1,{"x":2.0}]}`},
		{`{"o": record.key == 7 ? {"y": 1, "x": 2} : {"x": 3, "y": 4}}`, `{"o":{"y":1,"x":2}}`},
		{`{"a": record.missing}`, `error: expression "{\"a\": record.missing}" failed on record ` + literalRecords[0] + `: no such key: missing`},
		{`{"c": 1 / 0, "b": record.missing}`, `error: expression "{\"c\": 1 / 0, \"b\": record.missing}" failed on record ` + literalRecords[0] + `: division by zero`},
		{`{"a": b"xy", "b": record.l.x}`, `error: expression "{\"a\": b\"xy\", \"b\": record.l.x}" failed on record ` + literalRecords[0] + `: unsupported index type 'string' in list`},
		{`{"f": record.n.k[1] * 2.0, "m": record.key * 2.0}`, `error: expression "{\"f\": record.n.k[1] * 2.0, \"m\": record.key * 2.0}" failed on record ` + literalRecords[0] + `: no such overload`},
		{`{"m": record.seq * 2, "d": record.seq / 3, "f": record.key % 4}`, `{"m":2468,"d":411,"f":3}`},
		{`{"a": 2, "b": b"xy"}`, `error: expression "{\"a\": 2, \"b\": b\"xy\"}" failed on record ` + literalRecords[0] + `: field "b": a value of type bytes cannot be stored in a record`},
	}
	for _, c := range cases {
		p := mustCompile(t, c.src, ResultMap)
		if p.lit == nil {
			t.Errorf("%s: no fast path", c.src)
		}
		if got := evalMapResult(t, p, in); got != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.src, got, c.want)
		}
	}
	// Entry kinds: the shapes that need no CEL evaluation.
	p := mustCompile(t, `{"a": record.key, "b": record["n"].m, "c": 1, "d": [1, {"y": 1, "x": 2}], "e": record.seq * 2, "f": 1 / 0}`, ResultMap)
	var kinds []string
	for _, en := range p.lit.maps[0].entries {
		kinds = append(kinds, fmt.Sprintf("%s:%d", en.name, en.kind))
	}
	if got, want := strings.Join(kinds, " "), "a:1 b:1 c:0 d:0 e:1 f:2"; got != want {
		t.Errorf("entry kinds %s, want %s", got, want)
	}
}

// TestLiteralPlanOutputIsIndependent checks that the fast path's outputs
// survive the caller reusing the input and the Program.
func TestLiteralPlanOutputIsIndependent(t *testing.T) {
	p := mustCompile(t, `{"copy": record, "seq": record.seq, "n": record.n}`, ResultMap)
	in := mustJSON(t, `{"seq":1,"n":{"a":1}}`)
	var out record.Record
	if err := p.EvalMap(in, &out); err != nil {
		t.Fatal(err)
	}
	in.Set("seq", record.Int(99))
	in.Set("n", record.Int(2))
	if err := p.EvalMap(mustJSON(t, `{"seq":3,"n":4}`), &record.Record{}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != `{"copy":{"seq":1,"n":{"a":1}},"seq":1,"n":{"a":1}}` {
		t.Fatalf("output changed with the input: %s", got)
	}
}

func TestLiteralPlanEmitError(t *testing.T) {
	p := mustCompile(t, `[{"a": record.x}, {"b": 2}, {"c": 3}]`, ResultListOfMaps)
	stop := errors.New("stop")
	n := 0
	err := p.EvalList(mustJSON(t, `{"x":1}`), func(r *record.Record) error {
		n++
		if r.String() != `{"a":1}` {
			t.Errorf("emitted %s", r)
		}
		return stop
	})
	if err != stop || n != 1 {
		t.Fatalf("err %v after %d emits", err, n)
	}
	checkScratchClear(t, p)
	if p.scratch.Len() != 0 {
		t.Fatal("scratch record not reset")
	}
}

func TestLiteralPlanAllocs(t *testing.T) {
	in := mustJSON(t, `{"seq":4,"line":"the quick brown fox","key":7,"n":{"m":[1]}}`)
	for _, src := range []string{
		`{"word": record.line, "n": 1}`,
		`{"key": record.key, "seq": record["seq"], "m": record.n.m, "c": {"x": [1, 2.5]}}`,
		`{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`,
	} {
		p := mustCompile(t, src, ResultMap)
		var out record.Record
		if n := testing.AllocsPerRun(200, func() { _ = p.EvalMap(in, &out) }); n != 0 {
			t.Errorf("EvalMap(%s) allocates %v times, want 0", src, n)
		}
	}
	p := mustCompile(t, `[{"word": record.line}, {"n": 1}]`, ResultListOfMaps)
	emit := func(*record.Record) error { return nil }
	if n := testing.AllocsPerRun(200, func() { _ = p.EvalList(in, emit) }); n != 0 {
		t.Errorf("EvalList allocates %v times, want 0", n)
	}
}
