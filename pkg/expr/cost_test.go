package expr

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/record"
)

// nineReplaces multiplies the length of record.s by 10 nine times: a
// one-character field becomes a string of a billion.
var nineReplaces = "record.s" + strings.Repeat(`.replace("a", "aaaaaaaaaa")`, 9) + ` == ""`

// nestedAll is ten nested all() over ten elements: 10^10 steps.
func nestedAll() string {
	src := "true"
	for i := 9; i >= 0; i-- {
		src = fmt.Sprintf("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].all(x%d, %s)", i, src)
	}
	return src
}

func costError(src string, limit uint64) string {
	return fmt.Sprintf("expression %q exceeded the cost limit of %d (weir.expression.cost-limit)", src, limit)
}

// allocated returns the bytes allocated while f ran (all goroutines: the
// test must not run in parallel with others).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// bytesPerUnit is what docs/jobs.md states one evaluation allocates at
// most per cost unit (about 45), and maxEvalBytes that under the default
// limit.
const (
	bytesPerUnit = 48
	maxEvalBytes = bytesPerUnit * DefaultCostLimit
)

// checkAllocated fails t when n bytes are more than max, unless the race
// detector (which allocates for itself) is on.
func checkAllocated(t *testing.T, what string, n, max uint64) {
	t.Helper()
	if !raceEnabled && n > max {
		t.Errorf("%s: allocated %d bytes, want at most %d", what, n, max)
	}
}

func TestNineReplacesFailWithinBudget(t *testing.T) {
	p := mustCompile(t, nineReplaces, ResultBool)
	in := mustJSON(t, `{"s":"a"}`)
	var err error
	n := allocated(func() { _, err = p.EvalBool(in) })
	if want := costError(nineReplaces, DefaultCostLimit); err == nil || err.Error() != want {
		t.Fatalf("error = %v\n want %s", err, want)
	}
	var ce *CostLimitError
	if !errors.As(err, &ce) || ce.Limit != DefaultCostLimit {
		t.Fatalf("error %T is not a *CostLimitError with the limit", err)
	}
	// Six replaces fit the limit (10^6 characters); the seventh is stopped
	// before it allocates 10^7.
	checkAllocated(t, nineReplaces, n, 8<<20)
	t.Logf("allocated %d bytes", n)
	checkScratchClear(t, p)
}

// Each guard stops its call before the result is allocated: with a small
// limit, a call whose result alone is over it allocates almost nothing.
func TestGuardsStopBeforeAllocating(t *testing.T) {
	long := strings.Repeat("ab", 50_000)
	list := "[" + strings.Repeat("1,", 2_999) + "1]"
	in := mustJSON(t, `{"s":"`+long+`","l":`+list+`,"w":"`+strings.Repeat("a ", 50_000)+`"}`)
	const limit = 10_000
	for _, src := range []string{
		`record.s.replace("a", record.s) == ""`,    // 50,000 × 100,000 characters
		`record.s.replace("", "xy", 100000) == ""`, // 300,000 characters
		`size(record.w.split(" ")) > 0`,            // 50,001 elements
		`size(record.w.split("", 20000)) > 0`,      // 20,000 elements
		`record.w.split(" ").join(record.s) == ""`, // 50,000 × 100,000 characters
		`"%s".format([record.l.map(x, record.l)]) == ""`,
	} {
		p := mustCompile(t, src, ResultBool)
		if err := p.SetLimits(Limits{CostLimit: limit}); err != nil {
			t.Fatal(err)
		}
		var err error
		n := allocated(func() { _, err = p.EvalBool(in) })
		if want := costError(src, limit); err == nil || err.Error() != want {
			t.Errorf("%s: error = %v\n want %s", src, err, want)
		}
		// The guarded call allocates nothing: what is allocated is what
		// came before it, within the limit.
		checkAllocated(t, src, n, bytesPerUnit*limit)
	}
}

// Calls on a record's fields are typed dyn and dispatched at run time;
// they cost by the size of their arguments too.
func TestDynamicCallsCostBySize(t *testing.T) {
	in := mustJSON(t, `{"s":"`+strings.Repeat("a", 100_000)+`","l":[`+strings.Repeat("1,", 2_999)+`1]}`)
	for _, src := range []string{
		`record.l.map(x, record.s + record.s).size() > 0`,
		`record.l.all(x, record.s < record.s + "b")`,
		`record.l.all(x, x in record.l)`,
	} {
		p := mustCompile(t, src, ResultBool)
		var err error
		n := allocated(func() { _, err = p.EvalBool(in) })
		if want := costError(src, DefaultCostLimit); err == nil || err.Error() != want {
			t.Errorf("%s: error = %v\n want %s", src, err, want)
		}
		checkAllocated(t, src, n, maxEvalBytes)
	}
}

// Runaway expressions of every kind stop within the limit, having
// allocated at most bytesPerUnit per unit.
func TestMemoryPerUnit(t *testing.T) {
	in := mustJSON(t, `{"l":[`+strings.Repeat("1,", 999_999)+`1],"s":"`+strings.Repeat("ab ", 300_000)+
		`","line":"`+strings.TrimSpace(strings.Repeat("word ", 200_000))+`"}`)
	for _, src := range []string{
		`{"x": record.l.map(x, {"a": x})}`,
		`{"x": record.l.map(x, {"a": x, "b": x, "c": x, "d": x, "e": x, "f": x, "g": x, "h": x})}`,
		`{"x": record.l.map(x, [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x])}`,
		`{"x": record.l.map(x, x).map(y, y)}`,
		`{"x": record.l.filter(x, false)}`,
		`{"x": record.l.all(x, true)}`,
		`{"x": record.l.exists_one(x, x == 2)}`,
		`{"x": record.line.split(" ").map(w, {"w": w})}`,
		`{"x": record.l.map(x, record.s + "a")}`,
		`{"x": record.l.map(x, string(x) + "abc")}`,
		`{"x": record.l.map(x, record.s.contains("zz"))}`,
		`{"x": record.l.map(x, record.s.charAt(x))}`,
		`{"x": "%s".format([record.l.map(x, [x, x])])}`,
		`{"x": record.l.map(x, [record.l, record.l])}`,
	} {
		p := mustCompile(t, src, ResultMap)
		var err error
		var out record.Record
		n := allocated(func() { err = p.EvalMap(in, &out) })
		if want := costError(src, DefaultCostLimit); err == nil || err.Error() != want {
			t.Errorf("%s: error = %v\n want %s", src, err, want)
		}
		checkAllocated(t, src, n, maxEvalBytes)
	}
}

func TestNestedAllFailsByCost(t *testing.T) {
	src := nestedAll()
	p := mustCompile(t, src, ResultBool)
	_, err := p.EvalBool(mustJSON(t, `{}`))
	if want := costError(src, DefaultCostLimit); err == nil || err.Error() != want {
		t.Fatalf("error = %v\n want %s", err, want)
	}
	// Two limits: a job's own wins.
	if err := p.SetLimits(Limits{CostLimit: 5000}); err != nil {
		t.Fatal(err)
	}
	_, err = p.EvalBool(mustJSON(t, `{}`))
	if want := costError(src, 5000); err == nil || err.Error() != want {
		t.Fatalf("error = %v\n want %s", err, want)
	}
}

// Converting a result counts too: a list CEL built by concatenation shares
// its parts, so its size is not what it cost.
func TestConversionCounts(t *testing.T) {
	in := mustJSON(t, `{"l":[`+strings.Repeat("1,", 59)+`1]}`)
	src := `{"x": record.l + record.l}`
	p := mustCompile(t, src, ResultMap)
	var out record.Record
	if err := p.EvalMap(in, &out); err != nil {
		t.Fatal(err)
	}
	if err := p.SetLimits(Limits{CostLimit: 100}); err != nil {
		t.Fatal(err)
	}
	if err := p.EvalMap(in, &out); err == nil || err.Error() != costError(src, 100) {
		t.Fatalf("error = %v\n want %s", err, costError(src, 100))
	}
	if out.Len() != 0 {
		t.Fatalf("output %s left after error", &out)
	}
	checkScratchClear(t, p)
	// A record's list is shared, not copied, however often the result
	// holds it.
	big := mustJSON(t, `{"l":[`+strings.Repeat("1,", 2_999)+`1]}`)
	p = mustCompile(t, `{"x": record.l.map(x, record.l)}`, ResultMap)
	var err error
	n := allocated(func() { err = p.EvalMap(big, &out) })
	if err != nil {
		t.Fatal(err)
	}
	checkAllocated(t, "3,000 references to one list", n, 4<<20)
}

func TestInterruptedEvaluationReturns(t *testing.T) {
	src := nestedAll()
	p := mustCompile(t, src, ResultBool)
	done := make(chan struct{})
	if err := p.SetLimits(Limits{CostLimit: 1 << 62, Done: done}); err != nil {
		t.Fatal(err)
	}
	started, result := make(chan struct{}), make(chan error, 1)
	go func() {
		close(started)
		_, err := p.EvalBool(mustJSON(t, `{}`))
		result <- err
	}()
	<-started
	close(done)
	select {
	case err := <-result:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("error = %v, want ErrInterrupted", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("evaluation not interrupted after 30 s")
	}
	checkScratchClear(t, p)
}

// Expressions whose cost cannot depend on the input keep their fast path
// (no cost tracking, the map literal plan); others are tracked and give
// the same results.
func TestOrdinaryExpressionsUnaffected(t *testing.T) {
	for _, c := range []struct {
		src     string
		want    ResultType
		tracked bool
	}{
		{"record.seq % 2 == 0", ResultBool, false},
		{`record.line.startsWith("the") && record.score > 0.1`, ResultBool, false},
		{`{"word": record.line, "n": 1}`, ResultMap, false},
		{`{"key": record.key, "seq": record.seq, "twice": record.seq * 2}`, ResultMap, false},
		{`record`, ResultMap, false},
		{`record.line.split(" ").map(w, {"word": w})`, ResultListOfMaps, true},
		{`record.line.contains("fox")`, ResultBool, true},
	} {
		p := mustCompile(t, c.src, c.want)
		if got := p.tracked != nil; got != c.tracked {
			t.Errorf("%s: tracked %v (static cost %d), want %v", c.src, got, p.maxCost, c.tracked)
		}
	}
	in := mustJSON(t, `{"line":"the quick brown fox"}`)
	p := mustCompile(t, `record.line.split(" ").map(w, {"word": w, "n": size(w)})`, ResultListOfMaps)
	var got []string
	err := p.EvalList(in, func(r *record.Record) error { got = append(got, r.String()); return nil })
	if want := `{"word":"the","n":3} {"word":"quick","n":5} {"word":"brown","n":5} {"word":"fox","n":3}`; err != nil || strings.Join(got, " ") != want {
		t.Fatalf("got %v, %v\n want %s", got, err, want)
	}
	checkScratchClear(t, p)
}

func TestSetLimitsDefault(t *testing.T) {
	p := mustCompile(t, nestedAll(), ResultBool)
	if p.limit != DefaultCostLimit {
		t.Fatalf("limit after Compile %d", p.limit)
	}
	if err := p.SetLimits(Limits{CostLimit: 7}); err != nil {
		t.Fatal(err)
	}
	c := mustClone(t, p)
	if c.limit != 7 || c.tracked == nil || c.tracked == p.tracked {
		t.Fatalf("clone limit %d, tracked %p (original %p): want its own tracked program", c.limit, c.tracked, p.tracked)
	}
	if err := p.SetLimits(Limits{}); err != nil || p.limit != DefaultCostLimit {
		t.Fatalf("SetLimits(zero): limit %d, %v", p.limit, err)
	}
}
