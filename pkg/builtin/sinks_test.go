package builtin

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/operator"
)

// dirListing returns name -> content of the files in dir.
func dirListing(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func equalListing(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFileSinkNamingAndVisibility(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "nested") // created by Open
	in := []string{`{"a":1}`, `{"b":"x","c":[1.5]}`}

	// First run, subtask 0: part-0-0, hidden until EndInput.
	sink := newOperator(t, "file-sink", operator.Properties{"path": dir})
	if err := sink.Open(testCtx("sink", 0, 2)); err != nil {
		t.Fatal(err)
	}
	var c collector
	for _, js := range in {
		if err := sink.ProcessRecord(decodeJSON(t, js), &c); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirListing(t, dir); !equalListing(got, map[string]string{".part-0-0.inprogress": ""}) {
		t.Fatalf("before EndInput: %q (buffered, hidden)", got)
	}
	if err := sink.EndInput(&c); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"part-0-0": "{\"a\":1}\n{\"b\":\"x\",\"c\":[1.5]}\n"}
	if got := dirListing(t, dir); !equalListing(got, want) || len(c.out) != 0 {
		t.Fatalf("after EndInput: %q, want %q", got, want)
	}

	// Leftovers of other runs and subtasks: n continues after the highest
	// of this subtask, hidden or not.
	writeFiles(t, dir, map[string]string{
		".part-0-3.inprogress": "old", "part-1-7": "other subtask", "part-0-x": "not a part", "part-0-02": "not canonical",
	})
	// A failed run: Close without EndInput leaves the file hidden.
	sink = newOperator(t, "file-sink", operator.Properties{"path": dir, "format": "text"})
	if err := sink.Open(testCtx("sink", 0, 2)); err != nil {
		t.Fatal(err)
	}
	if err := sink.ProcessRecord(decodeJSON(t, `{"line":"partial"}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	want[".part-0-3.inprogress"] = "old"
	want["part-1-7"] = "other subtask"
	want["part-0-x"] = "not a part"
	want["part-0-02"] = "not canonical"
	want[".part-0-4.inprogress"] = "partial\n"
	if got := dirListing(t, dir); !equalListing(got, want) {
		t.Fatalf("after a failed run: %q\nwant %q", got, want)
	}

	// Text format; non-string lines are written as JSON.
	sink = newOperator(t, "file-sink", operator.Properties{"path": dir, "format": "text"})
	if err := sink.Open(testCtx("sink", 0, 2)); err != nil {
		t.Fatal(err)
	}
	for _, js := range []string{`{"line":"hello \"world\""}`, `{"x":1,"line":42}`, `{"line":""}`} {
		if err := sink.ProcessRecord(decodeJSON(t, js), &c); err != nil {
			t.Fatal(err)
		}
	}
	err := sink.ProcessRecord(decodeJSON(t, `{"text":"no line"}`), &c)
	if want := `file-sink "sink": record {"text":"no line"} has no "line" field (format text)`; errString(err) != want {
		t.Fatalf("record without line: err %q, want %q", errString(err), want)
	}
	if err := sink.EndInput(&c); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	want["part-0-5"] = "hello \"world\"\n42\n\n"
	if got := dirListing(t, dir); !equalListing(got, want) {
		t.Fatalf("after the text run: %q\nwant %q", got, want)
	}

	// A subtask without records writes no file.
	sink = newOperator(t, "file-sink", operator.Properties{"path": dir})
	if err := sink.Open(testCtx("sink", 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := sink.EndInput(&c); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dirListing(t, dir); !equalListing(got, want) {
		t.Fatalf("after an empty run: %q\nwant %q", got, want)
	}
}

func TestPartNumber(t *testing.T) {
	tests := []struct {
		name    string
		subtask int
		n       int
		ok      bool
	}{
		{"part-0-0", 0, 0, true},
		{"part-0-12", 0, 12, true},
		{".part-0-12.inprogress", 0, 12, true},
		{"part-10-3", 1, 0, false},
		{"part-1-3", 10, 0, false},
		{"part-0-", 0, 0, false},
		{"part-0--1", 0, 0, false},
		{"part-0-+1", 0, 0, false},
		{".part-0-1", 0, 0, false},
		{"part-0-1.inprogress", 0, 0, false},
	}
	for _, tt := range tests {
		n, ok := partNumber(tt.name, tt.subtask)
		if n != tt.n || ok != tt.ok {
			t.Errorf("partNumber(%q, %d) = %d, %v; want %d, %v", tt.name, tt.subtask, n, ok, tt.n, tt.ok)
		}
	}
}

// TestFileSinkRate: with rate, ProcessRecord sleeps until each record is
// due; an injected clock and sleep record the sleeps.
func TestFileSinkRate(t *testing.T) {
	sink := newOperator(t, "file-sink", operator.Properties{"path": t.TempDir(), "rate": 4}).(*fileSink)
	clock := &fakeClock{}
	var sleeps []time.Duration
	sink.now = clock.now
	sink.sleep = func(d time.Duration) bool { sleeps = append(sleeps, d); clock.t += d; return true }
	if err := sink.Open(testCtx("sink", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var c collector
	for i := 0; i < 3; i++ {
		if err := sink.ProcessRecord(decodeJSON(t, `{"a":1}`), &c); err != nil {
			t.Fatal(err)
		}
	}
	// 4 per second: records due at 0, 250ms, 500ms.
	want := []time.Duration{250 * time.Millisecond, 250 * time.Millisecond}
	if !slices.Equal(sleeps, want) {
		t.Fatalf("sleeps = %v, want %v", sleeps, want)
	}
}

// TestFileSinkRateCanceled: a file-sink waiting for its rate limit returns
// as soon as the task is canceled (Context.Done), not when the record is
// due (here in 1000 s).
func TestFileSinkRateCanceled(t *testing.T) {
	sink := newOperator(t, "file-sink", operator.Properties{"path": t.TempDir(), "rate": 0.001})
	ctx := testCtx("sink", 0, 1)
	done := make(chan struct{})
	ctx.Done = done
	if err := sink.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var c collector
	if err := sink.ProcessRecord(decodeJSON(t, `{"a":1}`), &c); err != nil {
		t.Fatalf("first record (due at once): %v", err)
	}
	errc := make(chan error, 1)
	second := decodeJSON(t, `{"a":2}`)
	go func() { errc <- sink.ProcessRecord(second, &c) }()
	close(done)
	select {
	case err := <-errc:
		want := `file-sink "sink": task canceled while waiting for the rate limit (0.001 records per second)`
		if err == nil || err.Error() != want {
			t.Fatalf("ProcessRecord after cancel = %v, want %q", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ProcessRecord still waiting for the rate limit after the task was canceled")
	}
}

func TestPrintSink(t *testing.T) {
	var buf bytes.Buffer
	ctx := testCtx("print", 3, 4)
	ctx.Stdout = &buf
	sink := newOperator(t, "print-sink", nil)
	got, err := runOperator(t, sink, ctx, []string{`{"a":1}`, `{"s":"x y","l":[1.5,null]}`})
	if err != nil || got != nil {
		t.Fatalf("print-sink emitted %q, err %v", got, err)
	}
	want := "print:3> {\"a\":1}\nprint:3> {\"s\":\"x y\",\"l\":[1.5,null]}\n"
	if buf.String() != want {
		t.Fatalf("stdout = %q, want %q", buf.String(), want)
	}
}

func TestBlackholeSink(t *testing.T) {
	sink := newOperator(t, "blackhole-sink", operator.Properties{})
	got, err := runOperator(t, sink, testCtx("bh", 0, 1), []string{`{"a":1}`, `{}`, `{"b":2}`})
	if err != nil || got != nil {
		t.Fatalf("blackhole emitted %q, err %v", got, err)
	}
	if n := sink.(*blackholeSink).Count(); n != 3 {
		t.Fatalf("count = %d, want 3", n)
	}
}

func TestPrintSinkNoAllocs(t *testing.T) {
	var buf bytes.Buffer
	ctx := testCtx("print", 0, 1)
	ctx.Stdout = &buf
	sink := newOperator(t, "print-sink", nil)
	if err := sink.Open(ctx); err != nil {
		t.Fatal(err)
	}
	r := decodeJSON(t, `{"key":1,"seq":2}`)
	_ = sink.ProcessRecord(r, nil)
	buf.Grow(1 << 20)
	if n := testing.AllocsPerRun(100, func() { _ = sink.ProcessRecord(r, nil) }); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}
