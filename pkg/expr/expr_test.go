package expr

import (
	"errors"
	"strings"
	"testing"

	"github.com/weirstream/weir/pkg/record"
)

func mustJSON(t testing.TB, js string) *record.Record {
	t.Helper()
	var d record.Decoder
	var r record.Record
	if err := d.DecodeJSON([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func mustCompile(t testing.TB, src string, want ResultType) *Program {
	t.Helper()
	p, err := Compile(src, want)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustClone(t testing.TB, p *Program) *Program {
	t.Helper()
	c, err := p.Clone()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		src  string
		want ResultType
		err  string // prefix of the error
	}{
		{"record.seq +", ResultBool, `expression "record.seq +" does not compile: ERROR: <input>:1:13: Syntax error`},
		{"1 + 2", ResultBool, `expression "1 + 2" returns int, want bool`},
		{`"a"`, ResultMap, `expression "\"a\"" returns string, want map(string, dyn)`},
		{`{1: 2}`, ResultMap, `expression "{1: 2}" returns map(int, int), want map(string, dyn)`},
		{`[1, 2]`, ResultListOfMaps, `expression "[1, 2]" returns list(int), want list(map(string, dyn))`},
		{`{"a": 1}`, ResultListOfMaps, `expression "{\"a\": 1}" returns map(string, int), want list(map(string, dyn))`},
		{`nosuch.x == 1`, ResultBool, `expression "nosuch.x == 1" does not compile: ERROR: <input>:1:1: undeclared reference to 'nosuch'`},
		{`record.x`, ResultType(7), `expression "record.x": unknown result type 7`},
	}
	for _, c := range cases {
		_, err := Compile(c.src, c.want)
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("Compile(%q, %v) error = %v\n want prefix %s", c.src, c.want, err, c.err)
		}
	}
	// Accepted: exact and dyn results.
	for _, c := range []struct {
		src  string
		want ResultType
	}{
		{"record.seq % 2 == 0", ResultBool},
		{"record.flag", ResultBool},
		{`{"word": record.line, "n": 1}`, ResultMap},
		{"record", ResultMap},
		{"record.nested", ResultMap},
		{"{}", ResultMap},
		{`record.line.split(" ").map(w, {"word": w})`, ResultListOfMaps},
		{"record.items", ResultListOfMaps},
		{"[]", ResultListOfMaps},
	} {
		if _, err := Compile(c.src, c.want); err != nil {
			t.Errorf("Compile(%q, %v): %v", c.src, c.want, err)
		}
	}
}

func TestEvalBool(t *testing.T) {
	cases := []struct {
		src, in string
		want    bool
	}{
		{"record.seq % 2 == 0", `{"seq":4}`, true},
		{"record.seq % 2 == 0", `{"seq":3}`, false},
		{"record.x > 1.5", `{"x":2.5}`, true},
		{`record.s.startsWith("ab") && size(record.s) == 3`, `{"s":"abc"}`, true},
		{`"seq" in record`, `{"seq":1}`, true},
		{`"zz" in record`, `{"seq":1}`, false},
		{`has(record.a) && !has(record.b)`, `{"a":null}`, true},
		{`record.n.m.k == "v"`, `{"n":{"m":{"k":"v"}}}`, true},
		{`record.l[1] == 2 && size(record.l) == 3 && 3 in record.l`, `{"l":[1,2,3]}`, true},
		{`record.l.exists(x, x.id == 7)`, `{"l":[{"id":1},{"id":7}]}`, true},
		{`record.v == null`, `{"v":null}`, true},
		{`record.flag`, `{"flag":true}`, true},
		{`record == {"a": 1, "b": "x"}`, `{"b":"x","a":1}`, true},
		{`record.n == {"k": [1, 2.5]}`, `{"n":{"k":[1,2.5]}}`, true},
		{`record.all(k, k.startsWith("a"))`, `{"a1":1,"a2":2}`, true},
		{`size(record) == 2`, `{"a1":1,"a2":2}`, true},
		{`record.big == 9007199254740993`, `{"big":9007199254740993}`, true},
	}
	for _, c := range cases {
		p := mustCompile(t, c.src, ResultBool)
		got, err := p.EvalBool(mustJSON(t, c.in))
		if err != nil || got != c.want {
			t.Errorf("%s on %s = %v, %v; want %v", c.src, c.in, got, err, c.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	cases := []struct {
		src  string
		want ResultType
		in   string
		err  string
	}{
		{"record.seq / record.zero == 1", ResultBool, `{"seq":1,"zero":0}`,
			`expression "record.seq / record.zero == 1" failed on record {"seq":1,"zero":0}: division by zero`},
		{"record.missing == 1", ResultBool, `{"seq":1}`,
			`expression "record.missing == 1" failed on record {"seq":1}: no such key: missing`},
		{"record.x", ResultBool, `{"x":3}`,
			`expression "record.x" failed on record {"x":3}: result is int, want bool`},
		{"record.x", ResultMap, `{"x":[1]}`,
			`expression "record.x" failed on record {"x":[1]}: result is list, want map`},
		{"record.x", ResultListOfMaps, `{"x":[1]}`,
			`expression "record.x" failed on record {"x":[1]}: list element 0 is int, want map`},
		{"record.x", ResultMap, `{"x":1}`,
			`expression "record.x" failed on record {"x":1}: result is int, want map`},
		{`{"a": b"xy"}`, ResultMap, `{}`,
			`expression "{\"a\": b\"xy\"}" failed on record {}: field "a": a value of type bytes cannot be stored in a record`},
		{`{"a": dyn({1: 2})}`, ResultMap, `{}`,
			`expression "{\"a\": dyn({1: 2})}" failed on record {}: field "a": map key 1 is int, want string`},
		{`dyn({1: 2})`, ResultMap, `{}`,
			`expression "dyn({1: 2})" failed on record {}: map key 1 is int, want string`},
		{`{"a": 18446744073709551615u}`, ResultMap, `{}`,
			`expression "{\"a\": 18446744073709551615u}" failed on record {}: field "a": uint 18446744073709551615 does not fit in an int`},
	}
	for _, c := range cases {
		p := mustCompile(t, c.src, c.want)
		in := mustJSON(t, c.in)
		var err error
		switch c.want {
		case ResultBool:
			_, err = p.EvalBool(in)
		case ResultMap:
			var out record.Record
			err = p.EvalMap(in, &out)
			if out.Len() != 0 {
				t.Errorf("%s: output %s left after error", c.src, &out)
			}
		case ResultListOfMaps:
			err = p.EvalList(in, func(*record.Record) error { return nil })
		}
		if err == nil || err.Error() != c.err {
			t.Errorf("%s on %s: error = %v\n want %s", c.src, c.in, err, c.err)
		}
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Source != c.src {
			t.Errorf("%s: error is not an *EvalError with the source", c.src)
		}
	}
}

func TestEvalErrorTruncatesRecord(t *testing.T) {
	p := mustCompile(t, "record.nope == 1", ResultBool)
	in := &record.Record{}
	in.Set("s", record.String(strings.Repeat("x", 2000)))
	_, err := p.EvalBool(in)
	var ee *EvalError
	if !errors.As(err, &ee) || len(ee.Record) != 515 || !strings.HasSuffix(ee.Record, "xxx...") {
		t.Fatalf("error = %v", err)
	}
}

func TestEvalMap(t *testing.T) {
	cases := []struct{ src, in, want string }{
		{`{"word": record.line, "n": 1}`, `{"line":"hi"}`, `{"word":"hi","n":1}`},
		{`{"z": 1, "a": 2, "m": 3}`, `{}`, `{"z":1,"a":2,"m":3}`},
		{`record`, `{"b":1,"a":[1,{"x":2.0}]}`, `{"b":1,"a":[1,{"x":2.0}]}`},
		{`record.nested`, `{"nested":{"y":1,"x":2}}`, `{"y":1,"x":2}`},
		{`{"all": record, "half": double(record.v) / 2.0, "i": record.v / 2}`, `{"v":5}`, `{"all":{"v":5},"half":2.5,"i":2}`},
		{`{"out": {"q": record.v, "p": [record.v, "s", null, true]}}`, `{"v":-1}`, `{"out":{"q":-1,"p":[-1,"s",null,true]}}`},
		// Dynamic keys: sorted.
		{`{record.k1: 1, record.k2: 2}`, `{"k1":"b","k2":"a"}`, `{"a":2,"b":1}`},
		// Same key set as a literal elsewhere: literal order.
		{`record.f ? {"y": 1, "x": 2} : {"x": 3, "y": 4}`, `{"f":false}`, `{"y":4,"x":3}`},
		// A repeated key: the last value wins, at the first key's place;
		// and a literal with a repeated key orders others by its keys once.
		{`{"a": 1, "b": 2, "a": 3}`, `{}`, `{"a":3,"b":2}`},
		{`record.f ? {"a": 1, "a": 2} : {"a": 3, "b": 4}`, `{"f":false}`, `{"a":3,"b":4}`},
		{`{"u": 7u, "d": duration("1.5s"), "t": timestamp("2024-01-02T03:04:05Z")}`, `{}`, `{"u":7,"d":"1.5s","t":"2024-01-02T03:04:05Z"}`},
		{`{"s": record.line.split(" ")}`, `{"line":"a b"}`, `{"s":["a","b"]}`},
		{`record.map(k, k).size() == 1 ? {"one": true} : {}`, `{"a":1}`, `{"one":true}`},
	}
	out := &record.Record{}
	out.Set("stale", record.Int(1))
	for _, c := range cases {
		p := mustCompile(t, c.src, ResultMap)
		in := mustJSON(t, c.in)
		if err := p.EvalMap(in, out); err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if got := out.String(); got != c.want {
			t.Errorf("%s on %s = %s, want %s", c.src, c.in, got, c.want)
		}
		if in.String() != mustJSON(t, c.in).String() {
			t.Errorf("%s modified its input: %s", c.src, in)
		}
	}
}

// TestEvalMapDoesNotAliasInput checks that outputs survive the caller
// reusing the input record, including when the result is nested input.
func TestEvalMapDoesNotAliasInput(t *testing.T) {
	p := mustCompile(t, `{"copy": record, "seq": record.seq}`, ResultMap)
	in := mustJSON(t, `{"seq":1}`)
	var out record.Record
	if err := p.EvalMap(in, &out); err != nil {
		t.Fatal(err)
	}
	in.Set("seq", record.Int(99))
	in.Set("more", record.Int(2))
	if got := out.String(); got != `{"copy":{"seq":1},"seq":1}` {
		t.Fatalf("output changed with the input: %s", got)
	}
	p2 := mustCompile(t, `record`, ResultMap)
	if err := p2.EvalMap(in, &out); err != nil {
		t.Fatal(err)
	}
	in.Reset()
	if got := out.String(); got != `{"seq":99,"more":2}` {
		t.Fatalf("output changed with the input: %s", got)
	}
	if err := p2.EvalMap(&out, &out); err == nil {
		t.Fatal("EvalMap(out, out) did not fail")
	}
}

func TestEvalList(t *testing.T) {
	p := mustCompile(t, `record.line.split(" ").map(w, {"word": w, "n": 1})`, ResultListOfMaps)
	var got []string
	emit := func(r *record.Record) error { got = append(got, r.String()); return nil }
	if err := p.EvalList(mustJSON(t, `{"line":"to be or"}`), emit); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != `{"word":"to","n":1} {"word":"be","n":1} {"word":"or","n":1}` {
		t.Fatalf("got %v", got)
	}
	// emit's error is returned as is and stops the evaluation.
	stop := errors.New("stop")
	n := 0
	err := p.EvalList(mustJSON(t, `{"line":"a b c"}`), func(*record.Record) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err %v after %d emits", err, n)
	}
	// A list field of the input.
	p = mustCompile(t, `record.items.filter(i, i.v > 1)`, ResultListOfMaps)
	got = nil
	if err := p.EvalList(mustJSON(t, `{"items":[{"v":1},{"v":2,"w":"x"},{"v":3}]}`), emit); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != `{"v":2,"w":"x"} {"v":3}` {
		t.Fatalf("got %v", got)
	}
	got = nil
	if err := mustCompile(t, `[]`, ResultListOfMaps).EvalList(mustJSON(t, `{}`), emit); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v %v", err, got)
	}
}

func TestClone(t *testing.T) {
	p := mustCompile(t, "record.a == 1", ResultBool)
	c := mustClone(t, p)
	if c.Source() != "record.a == 1" {
		t.Fatal(c.Source())
	}
	ok, err := c.EvalBool(mustJSON(t, `{"a":1}`))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
}

func TestEvalAllocs(t *testing.T) {
	in := mustJSON(t, `{"seq":4,"line":"the quick brown fox","key":7}`)
	p := mustCompile(t, "record.seq % 2 == 0", ResultBool)
	if n := testing.AllocsPerRun(200, func() { _, _ = p.EvalBool(in) }); n != 0 {
		t.Errorf("EvalBool(record.seq %% 2 == 0) allocates %v times, want 0", n)
	}
}

// TestCloneConcurrent runs clones of one Program on two goroutines; -race
// checks that only the immutable CEL program is shared.
func TestCloneConcurrent(t *testing.T) {
	// Field, arithmetic and CEL entries of the literal fast path; and a
	// tracked program, each clone's own.
	for _, src := range []string{`{"w": record.line, "n": record.n + 1, "u": record.line.startsWith("x")}`, `{"w": record.line, "n": record.n + 1, "u": record.line.contains("x")}`} {
		testCloneConcurrent(t, src)
	}
}

func testCloneConcurrent(t *testing.T, src string) {
	p := mustCompile(t, src, ResultMap)
	errs := make(chan error, 2)
	for g := 0; g < 2; g++ {
		c := mustClone(t, p)
		in := mustJSON(t, `{"line":"x","n":1}`)
		go func() {
			var out record.Record
			for i := 0; i < 200; i++ {
				if err := c.EvalMap(in, &out); err != nil {
					errs <- err
					return
				}
				if out.String() != `{"w":"x","n":2,"u":true}` {
					errs <- errors.New("wrong output " + out.String())
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 2; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
