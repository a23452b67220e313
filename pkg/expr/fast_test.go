package expr

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/record"
)

// forceFast returns p planned with its fast paths used whatever its static
// cost (as compileFast does for literals): the fast path must be exact
// whatever decides its use.
func forceFast(t testing.TB, p *Program) *Program {
	t.Helper()
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

// fastRecords are the inputs of the differential tests: well typed, every
// field of another type, empty, at the edges of int and double, NaN and
// infinities, and non-ASCII strings.
func fastRecords(t testing.TB) []*record.Record {
	rs := []*record.Record{
		mustJSON(t, `{"i":7,"j":3,"f":2.5,"g":-0.5,"s":"hello","t":"he","b":true,"n":null,"m":{"x":4,"y":"z"},"l":[1,2]}`),
		mustJSON(t, `{"i":-7,"j":0,"f":0.0,"g":0.0,"s":"","t":"","b":false,"n":null,"m":{},"l":[]}`),
		mustJSON(t, `{"i":9223372036854775807,"j":-1,"f":1e308,"g":1e308,"s":"b","t":"a","b":true,"m":{"x":9223372036854775807}}`),
		mustJSON(t, `{"i":-9223372036854775808,"j":-1,"f":-1e308,"g":5e-324,"s":"a","t":"b","b":false,"m":{"x":-1,"y":2}}`),
		mustJSON(t, `{"i":"7","j":2.0,"f":1,"g":true,"s":5,"t":null,"b":"true","n":0,"m":[1],"l":{"a":1}}`),
		mustJSON(t, `{}`),
		mustJSON(t, `{"s":"héllo wörld","t":"é","i":9007199254740993,"j":2,"f":9007199254740992.0,"g":-0.0,"b":true,"m":{"x":1.5}}`),
	}
	nan := &record.Record{}
	nan.Set("i", record.Int(1))
	nan.Set("j", record.Int(-3))
	nan.Set("f", record.Float(math.NaN()))
	nan.Set("g", record.Float(math.Inf(1)))
	nan.Set("b", record.Bool(false))
	nan.Set("s", record.String("x"))
	nan.Set("t", record.String("x"))
	nan.Set("m", record.Map(nan.Clone()))
	// Fields in another order than the others, for the position hints.
	rev := &record.Record{}
	first := rs[0]
	for k := len(first.Fields) - 1; k >= 0; k-- {
		rev.Set(first.Fields[k].Name, first.Fields[k].Value)
	}
	return append(rs, nan, rev)
}

// fastBoolCases are filters: hit says whether the fast path must evaluate
// it on fastRecords[0] without handing it to CEL (false: outside the
// subset, or CEL's answer on that record is an error).
var fastBoolCases = []struct {
	src string
	hit bool
}{
	// Int arithmetic, with overflow and division by zero.
	{`record.i % 2 == 0`, true},
	{`record.i % record.j == 1`, true},
	{`record.i / record.j > 2`, true},
	{`record.i + 1 > record.i`, true},
	{`record.i * record.j < 0`, true},
	{`record.i - record.j >= -10`, true},
	{`-record.i < 0`, true},
	{`record.i / 0 == 1`, false},
	{`record.i % 0 == 1`, false},
	{`9223372036854775807 + record.j > 0`, false},
	{`-9223372036854775808 - record.j < 0`, false},
	{`-9223372036854775808 + record.j < 0`, true},
	{`record.i * 9223372036854775807 != 0`, false},
	{`record.i + record.j > 0`, true},
	// Double arithmetic and mixed comparisons.
	{`record.f > 0.1`, true},
	{`record.f + record.g == 2.0`, true},
	{`record.f / record.g < 0.0`, true},
	{`record.f * 2.0 >= record.g`, true},
	{`-record.f < 0.0`, true},
	{`record.f / 0.0 > 1e308`, true},
	{`record.f != record.f`, true},
	{`record.f < record.g`, true},
	{`record.f + record.g > 0.0`, true},
	{`record.i == 7.0`, true},
	{`record.i < record.f`, true},
	{`record.f <= record.i`, true},
	{`record.i == record.f`, true},
	{`record.i == 9007199254740992.0`, true},
	{`record.f % record.g == 0.0`, false},
	// Uints.
	{`record.i == 7u`, true},
	{`record.i < 10u`, true},
	{`record.f > 1u`, true},
	{`1u + 2u == 3u`, true},
	{`18446744073709551615u + 1u > 0u`, false},
	{`record.i + 1u > 0u`, false},
	// Logic, with CEL's commutative errors.
	{`record.i > 0 && record.f > 0.0`, true},
	{`record.i > 0 || record.f > 0.0`, true},
	{`!record.b`, true},
	{`!record.b || record.i == 1`, true},
	{`record.b && record.missing > 1`, false},
	{`record.missing > 1 && record.b`, false},
	{`record.missing > 1 || true`, false},
	{`record.missing > 1 || record.b`, false},
	{`!record.b && record.missing > 1`, true},
	{`record.b || 1 / 0 == 1`, true},
	{`record.b`, true},
	{`record.i`, false},
	{`record.n`, false},
	// Conditionals.
	{`record.b ? record.i > 0 : record.f > 0.0`, true},
	{`(record.b ? record.i : record.j) > 2`, true},
	{`(record.b ? record.i : 1.5) == 7`, true},
	{`(record.i > 100 ? 1u : 2u) == 2u`, true},
	{`(record.b ? "a" : "b") < record.s`, true},
	{`(record.i ? 1 : 2) == 1`, false},
	// Strings.
	{`record.s == "hello"`, true},
	{`record.s != record.t`, true},
	{`record.s < record.t`, true},
	{`record.s >= "a"`, true},
	{`record.s.startsWith(record.t)`, true},
	{`record.s.endsWith("lo")`, true},
	{`record.s.contains("ll")`, true},
	{`record.s + record.t == "hellohe"`, true},
	{`record.s + "!" == "hello!"`, true},
	{`size(record.s) == 5`, true},
	{`size(record.l) > 1`, true},
	{`size(record.m) == 2`, true},
	{`size("héllo") == 5`, true},
	// Null, bools, heterogeneous equality.
	{`record.n == null`, true},
	{`record.i != null`, true},
	{`record.b == true`, true},
	{`record.b < true`, true},
	{`record.s == 1`, true},
	{`record.i == "7"`, true},
	{`record.b != 0`, true},
	{`record.m == record.m`, false},
	{`record.l == [1, 2]`, false},
	{`record.n < 1`, false},
	{`record.s < 1`, false},
	// Field paths and presence.
	{`record.m.x == 4`, true},
	{`record.m.y == "z"`, true},
	{`record["i"] > 3`, true},
	{`record.m["x"] > 3`, true},
	{`record["m"].x > 3`, true},
	{`has(record.m.x)`, true},
	{`has(record.i)`, true},
	{`has(record.zz)`, true},
	{`has(record.m.zz)`, true},
	{`has(record.zz.x)`, false},
	{`has(record.i.x)`, false},
	{`record.zz == 1`, false},
	{`record.m.zz == 1`, false},
	{`record.i.x == 1`, false},
	// Conversions.
	{`int(record.f) == 2`, true},
	{`int(record.i) == record.i`, true},
	{`int(record.f * 1e300) == 1`, false},
	{`double(record.i) > 6.5`, true},
	{`double(record.f) == record.f`, true},
	{`double(3u) == 3.0`, true},
	{`double(record.s) > 1.0`, false},
	{`int(record.s) > 1`, false},
	// Outside the subset: CEL's own path.
	{`record.i in [1, 7]`, false},
	{`record.l[0] == 1`, false},
	{`record.l.exists(x, x == 1)`, false},
	{`string(record.i) == "7"`, false},
	{`record.s.matches("h.*")`, false},
	// The examples' filters.
	{`record.seq % 2 == 0`, false},
	{`record.auction % 123 == 0`, false},
}

// fastMapCases are map operators' expressions; hit as in fastBoolCases, for
// every value of the literal.
var fastMapCases = []struct {
	src string
	hit bool
}{
	{`{"key": record.i, "seq": record.j, "twice": record.i * 2}`, true},
	{`{"sum": record.i + record.j, "q": record.i / record.j, "r": record.i % record.j}`, true},
	{`{"d": record.f * 2.0, "e": 0.908 * double(record.i)}`, true},
	{`{"x": record.b ? record.i : record.j}`, true},
	{`{"x": record.b ? record.i : "no", "y": record.b ? 1.5 : record.s}`, true},
	{`{"x": record.b ? 1u : 2u}`, true},
	{`{"x": record.b ? 1u : record.i}`, false},
	{`{"c": record.s + "!", "n": size(record.s)}`, true},
	{`{"u": 7u, "v": 18446744073709551615u}`, false},
	{`{"u": 1u + 2u, "w": record.i > 0 ? 18446744073709551615u : 1u}`, false},
	{`{"neg": -record.i, "nf": -record.f, "nd": -(record.b ? record.i : record.j)}`, true},
	{`{"m": record.m.x + 1, "has": has(record.m.y)}`, true},
	{`{"cmp": record.i < record.f, "eq": record.s == record.t, "and": record.b && record.i > 1}`, true},
	{`{"all": record.i, "n": record.n, "l": record.l, "m": record.m}`, true},
	{`{"dyn": record.i + record.j, "dynf": record.f + record.g, "dyns": record.s + record.t}`, true},
	{`{"a": record.i, "b": record.missing, "c": 1 / 0}`, false},
	{`{"a": record, "b": record.i + 1}`, false},
	{`{"a": record.i + 1, "b": record.l.map(x, x * 2)}`, false},
	{`{"auction": record.i, "bidder": record.j, "price": 0.908 * double(record.i), "dateTime": record.f, "extra": record.s}`, true},
	{`{"auction": record.auction, "price": record.price}`, false},
}

func evalBoolResult(p *Program, in *record.Record) string {
	b, err := p.EvalBool(in)
	if err != nil {
		return "error: " + err.Error()
	}
	return strconv.FormatBool(b)
}

// TestFastPathMatchesCEL evaluates every case on every record with the
// fast path and with CEL alone: results, and errors, must be the same.
func TestFastPathMatchesCEL(t *testing.T) {
	recs := fastRecords(t)
	for _, c := range fastBoolCases {
		fast := forceFast(t, mustCompile(t, c.src, ResultBool))
		slow := slowPath(t, fast)
		for k, in := range recs {
			fast.fastMisses = 0
			want, got := evalBoolResult(slow, in), evalBoolResult(fast, in)
			if got != want {
				t.Errorf("%s on record %d %s:\n fast %s\n CEL  %s", c.src, k, in, got, want)
			}
			if hit := fast.fastBool != nil && fast.fastMisses == 0; k == 0 && hit != c.hit {
				t.Errorf("%s on %s: fast path hit %v, want %v (result %s)", c.src, in, hit, c.hit, got)
			}
			checkFastClear(t, fast)
		}
	}
	for _, c := range fastMapCases {
		fast := forceFast(t, mustCompile(t, c.src, ResultMap))
		slow := slowPath(t, fast)
		for k, in := range recs {
			fast.fastMisses = 0
			want, got := evalMapResult(t, slow, in), evalMapResult(t, fast, in)
			if got != want {
				t.Errorf("%s on record %d %s:\n fast %s\n CEL  %s", c.src, k, in, got, want)
			}
			if k == 0 {
				if hit := fast.fastMisses == 0 && fast.lit != nil && fast.lit.maps[0].direct; hit != c.hit {
					t.Errorf("%s on %s: fast path hit %v, want %v (result %s)", c.src, in, hit, c.hit, got)
				}
			}
			checkFastClear(t, fast)
		}
	}
}

// checkFastClear checks that the fast path kept no reference to the input.
func checkFastClear(t *testing.T, p *Program) {
	t.Helper()
	if p.fast.in != nil {
		t.Errorf("%s: fast context still holds the input", p.Source())
	}
	for i := range p.fast.vals {
		if !record.Equal(p.fast.vals[i], record.Value{}) {
			t.Errorf("%s: fast value slot %d not cleared", p.Source(), i)
		}
	}
	checkScratchClear(t, p)
}

// TestFastPathExact pins results, so that the fast path and CEL cannot
// agree on something wrong, and checks that they came from the fast path.
func TestFastPathExact(t *testing.T) {
	in := fastRecords(t)[0]
	for _, c := range []struct{ src, want string }{
		{`record.i % 2 == 1`, `true`},
		{`record.i / record.j == 2 && record.i % record.j == 1`, `true`},
		{`record.f * 2.0 == 5.0`, `true`},
		{`record.i > record.f && record.f > record.g`, `true`},
		{`(record.b ? record.i : record.j) == 7`, `true`},
		{`record.s.startsWith("he") && !record.s.endsWith("he")`, `true`},
		{`size("héllo") == 5 && record.m.y == "z"`, `true`},
		{`record.n == null && record.i != null && record.s != 1`, `true`},
	} {
		p := mustCompile(t, c.src, ResultBool)
		if got := evalBoolResult(p, in); got != c.want || p.fastMisses != 0 || p.fastBool == nil {
			t.Errorf("%s: %s (fast path: %v, misses %d), want %s", c.src, got, p.fastBool != nil, p.fastMisses, c.want)
		}
	}
	for _, c := range []struct{ src, want string }{
		{`{"key": record.i, "twice": record.i * 2, "neg": -record.i, "q": record.i / record.j}`, `{"key":7,"twice":14,"neg":-7,"q":2}`},
		{`{"p": 0.908 * double(record.i), "h": record.f / 2.0, "i": int(record.f)}`, `{"p":6.356,"h":1.25,"i":2}`},
		{`{"s": record.b ? record.s : record.i, "u": 3u, "c": record.i < 10}`, `{"s":"hello","u":3,"c":true}`},
		{`{"dyn": record.i - record.j, "m": record.m, "l": record.l}`, `{"dyn":4,"m":{"x":4,"y":"z"},"l":[1,2]}`},
	} {
		p := mustCompile(t, c.src, ResultMap)
		if p.lit == nil {
			t.Errorf("%s: no literal plan (cost %d)", c.src, p.maxCost)
			continue
		}
		if got := evalMapResult(t, p, in); got != c.want || p.fastMisses != 0 || !p.lit.maps[0].direct {
			t.Errorf("%s: %s (misses %d), want %s", c.src, got, p.fastMisses, c.want)
		}
	}
}

// TestFastPathErrors checks the errors a job sees when the fast path hands
// a record to CEL: CEL's own, naming the expression and the record.
func TestFastPathErrors(t *testing.T) {
	for _, c := range []struct{ src, in, want string }{
		{`record.seq % 2 == 0`, `{"seq":"x"}`, `expression "record.seq % 2 == 0" failed on record {"seq":"x"}: no such overload`},
		{`record.seq % 2 == 0`, `{}`, `expression "record.seq % 2 == 0" failed on record {}: no such key: seq`},
		{`record.a / record.b > 0`, `{"a":1,"b":0}`, `expression "record.a / record.b > 0" failed on record {"a":1,"b":0}: division by zero`},
		{`record.a + 1 > 0`, `{"a":9223372036854775807}`, `expression "record.a + 1 > 0" failed on record {"a":9223372036854775807}: integer overflow`},
		{`record.a`, `{"a":1}`, `expression "record.a" failed on record {"a":1}: result is int, want bool`},
	} {
		p := mustCompile(t, c.src, ResultBool)
		if _, err := p.EvalBool(mustJSON(t, c.in)); err == nil || err.Error() != c.want {
			t.Errorf("%s on %s: error %v, want %s", c.src, c.in, err, c.want)
		}
		if p.fastBool == nil || p.fastMisses != 1 {
			t.Errorf("%s: fast path %v, misses %d, want 1", c.src, p.fastBool != nil, p.fastMisses)
		}
	}
	p := mustCompile(t, `{"a": record.a * 2, "u": record.a > 0 ? 18446744073709551615u : 1u}`, ResultMap)
	in := mustJSON(t, `{"a":1}`)
	if got, want := evalMapResult(t, p, in), `error: expression "{\"a\": record.a * 2, \"u\": record.a > 0 ? 18446744073709551615u : 1u}" failed on record {"a":1}: field "u": uint 18446744073709551615 does not fit in an int`; got != want {
		t.Errorf("uint out of range: %s, want %s", got, want)
	}
}

// TestFastPathAllocs: the common shapes allocate nothing, whatever the
// ints' size (CEL boxes those above 255).
func TestFastPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what allocates")
	}
	in := mustJSON(t, `{"seq":123456789,"auction":1000123,"bidder":1001,"price":9876543,"dateTime":1704067200000,"extra":"xyz","line":"the quick brown fox","key":7,"score":0.5,"n":{"m":4}}`)
	for _, src := range []string{
		`record.seq % 2 == 0`,
		`record.auction % 123 == 0`,
		`record.line.startsWith("the") && record.score > 0.1`,
		`(record.key > 3 ? record.seq : record.key) > 100 || record.n.m == 4`,
		`-record.seq < 0 && double(record.price) * 0.908 > 1.0`,
	} {
		p := mustCompile(t, src, ResultBool)
		if n := testing.AllocsPerRun(200, func() { _, _ = p.EvalBool(in) }); n != 0 || p.fastMisses != 0 {
			t.Errorf("EvalBool(%s) allocates %v times, %d misses, want 0", src, n, p.fastMisses)
		}
	}
	for _, src := range []string{
		`{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`,
		`{"auction": record.auction, "price": 0.908 * double(record.price), "big": record.price > 1000, "k": record.key - record.seq}`,
		`{"x": record.key > 3 ? record.seq : record.line, "m": record.n.m}`,
		// examples/nexmark q1 and q2.
		`{"auction": record.auction, "bidder": record.bidder, "price": 0.908 * double(record.price), "dateTime": record.dateTime, "extra": record.extra}`,
		`{"auction": record.auction, "price": record.price}`,
	} {
		p := mustCompile(t, src, ResultMap)
		var out record.Record
		if n := testing.AllocsPerRun(200, func() { _ = p.EvalMap(in, &out) }); n != 0 || p.fastMisses != 0 {
			t.Errorf("EvalMap(%s) allocates %v times, %d misses, want 0", src, n, p.fastMisses)
		}
	}
}

// TestFastPathHints: records whose fields come in another order, or
// without the field, between hits.
func TestFastPathHints(t *testing.T) {
	p := mustCompile(t, `record.a.x - record.b == 1`, ResultBool)
	for _, c := range []struct{ in, want string }{
		{`{"a":{"x":3},"b":2}`, `true`},
		{`{"b":2,"a":{"y":0,"x":3}}`, `true`},
		{`{"b":2,"c":1,"a":{"x":4}}`, `false`},
		{`{"b":2}`, `error: expression "record.a.x - record.b == 1" failed on record {"b":2}: no such key: a`},
		{`{"a":{"x":3},"b":2}`, `true`},
	} {
		if got := evalBoolResult(p, mustJSON(t, c.in)); got != c.want {
			t.Errorf("on %s: %s, want %s", c.in, got, c.want)
		}
	}
}

// TestFastPathClonesConcurrent: clones share the compiled closures but not
// the hints or value slots; -race checks it.
func TestFastPathClonesConcurrent(t *testing.T) {
	p := mustCompile(t, `(record.b ? record.i : record.s) == record.i && record.i + record.j > 0`, ResultBool)
	errs := make(chan error, 2)
	for g := range 2 {
		c := mustClone(t, p)
		in := mustJSON(t, fmt.Sprintf(`{"b":true,"i":%d,"j":1,"s":"x"}`, g))
		rev := mustJSON(t, fmt.Sprintf(`{"s":"x","j":1,"i":%d,"b":true}`, g))
		go func() {
			for i := 0; i < 500; i++ {
				r := in
				if i%2 == 1 {
					r = rev
				}
				if ok, err := c.EvalBool(r); err != nil || !ok {
					errs <- fmt.Errorf("clone %d: %v, %v", g, ok, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzFastPathMatchesCEL generates an expression from the bytes (a small
// grammar over the record's fields, literals at the edges, the subset's
// operators and a few outside it) and a record from the other arguments,
// and checks that the fast path and CEL agree, errors included.
func FuzzFastPathMatchesCEL(f *testing.F) {
	f.Add([]byte{6, 10, 0, 0, 1, 2}, int64(7), int64(3), 2.5, "hello", true, uint8(0))
	f.Add([]byte{6, 0, 0, 0, 6, 3, 1, 5}, int64(math.MaxInt64), int64(-1), math.NaN(), "", false, uint8(1))
	f.Add([]byte{8, 0, 6, 12, 0, 0, 0, 2, 9, 1, 2, 2}, int64(math.MinInt64), int64(0), math.Inf(-1), "héllo", true, uint8(2))
	f.Add([]byte{9, 3, 0, 4, 6, 7, 0, 2, 3, 1}, int64(-5), int64(2), -0.0, "ab", false, uint8(3))
	f.Add([]byte{7, 1, 0, 0, 6, 13, 0, 5, 0, 8}, int64(1<<53+1), int64(1<<53), float64(1<<53), "a", true, uint8(4))
	f.Fuzz(func(t *testing.T, prog []byte, i, j int64, fl float64, s string, b bool, shape uint8) {
		g := &exprGen{src: prog}
		src := g.expr(0)
		in := fuzzRecord(i, j, fl, s, b, shape)
		for _, want := range []ResultType{ResultBool, ResultMap} {
			text := src
			if want == ResultMap {
				text = `{"v": ` + src + `, "k": record.i}`
			}
			p, err := Compile(text, want)
			if err != nil {
				continue // not well typed: the checker's business
			}
			fast := forceFast(t, p)
			slow := slowPath(t, fast)
			var got, exp string
			if want == ResultBool {
				got, exp = evalBoolResult(fast, in), evalBoolResult(slow, in)
			} else {
				got, exp = evalMapResult(t, fast, in), evalMapResult(t, slow, in)
			}
			if got != exp {
				t.Fatalf("%s on %s:\n fast %s\n CEL  %s", text, in, got, exp)
			}
			checkFastClear(t, fast)
		}
	})
}

// fuzzRecord builds the record a fuzzed expression reads; shape swaps some
// fields for values of other types.
func fuzzRecord(i, j int64, fl float64, s string, b bool, shape uint8) *record.Record {
	r := &record.Record{}
	r.Set("i", record.Int(i))
	r.Set("j", record.Int(j))
	r.Set("f", record.Float(fl))
	r.Set("g", record.Float(float64(j)/3))
	r.Set("s", record.String(s))
	r.Set("t", record.String(s[:len(s)/2]))
	r.Set("b", record.Bool(b))
	r.Set("n", record.Null())
	m := &record.Record{}
	m.Set("x", record.Int(j))
	m.Set("y", record.String(s))
	r.Set("m", record.Map(m))
	r.Set("l", record.List([]record.Value{record.Int(i), record.String(s)}))
	switch shape % 6 {
	case 1:
		r.Set("i", record.Float(fl))
		r.Set("f", record.Int(i))
	case 2:
		r.Set("s", record.Int(i))
		r.Set("b", record.Null())
	case 3:
		r.Set("j", record.String(s))
		r.Set("m", record.Int(j))
	case 4:
		// Reversed field order.
		rev := &record.Record{}
		for k := len(r.Fields) - 1; k >= 0; k-- {
			rev.Set(r.Fields[k].Name, r.Fields[k].Value)
		}
		r = rev
	case 5:
		r.Reset()
	}
	return r
}

// exprGen turns bytes into a CEL expression; past the bytes it reads zeros.
type exprGen struct {
	src []byte
	pos int
}

func (g *exprGen) next(n int) int {
	if g.pos >= len(g.src) {
		return 0
	}
	g.pos++
	return int(g.src[g.pos-1]) % n
}

var (
	genFields  = []string{"i", "j", "f", "g", "s", "t", "b", "n", "m.x", "m.y", "l", "m", "zz", "m.zz", `["i"]`}
	genLeaves  = []string{"0", "1", "-1", "2", "7", "9223372036854775807", "-9223372036854775808", "0.0", "1.5", "-2.5", "1e308", "0.908", "0u", "1u", "18446744073709551615u", `""`, `"he"`, `"hello"`, `"é"`, "true", "false", "null"}
	genBinary  = []string{"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||"}
	genUnary   = []string{"!", "-"}
	genCalls   = []string{"size(%s)", "int(%s)", "double(%s)", "uint(%s)", "string(%s)"}
	genMethods = []string{"startsWith", "endsWith", "contains"}
)

func (g *exprGen) field() string {
	f := genFields[g.next(len(genFields))]
	if strings.HasPrefix(f, "[") {
		return "record" + f
	}
	return "record." + f
}

func (g *exprGen) expr(depth int) string {
	choice := g.next(11)
	if depth >= 4 && choice >= 6 {
		choice %= 6
	}
	switch choice {
	case 0, 1, 2:
		return g.field()
	case 3, 4, 5:
		return genLeaves[g.next(len(genLeaves))]
	case 6:
		l := g.expr(depth + 1)
		op := genBinary[g.next(len(genBinary))]
		return "(" + l + " " + op + " " + g.expr(depth+1) + ")"
	case 7:
		return genUnary[g.next(len(genUnary))] + "(" + g.expr(depth+1) + ")"
	case 8:
		c := g.expr(depth + 1)
		a := g.expr(depth + 1)
		return "(" + c + " ? " + a + " : " + g.expr(depth+1) + ")"
	case 9:
		if g.next(2) == 0 {
			f := g.field()
			if strings.HasPrefix(f, "record[") {
				f = "record.i"
			}
			return "has(" + f + ")"
		}
		return fmt.Sprintf(genCalls[g.next(len(genCalls))], g.expr(depth+1))
	}
	t := g.expr(depth + 1)
	return "(" + t + ")." + genMethods[g.next(len(genMethods))] + "(" + g.expr(depth+1) + ")"
}
