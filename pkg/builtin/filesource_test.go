package builtin

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/operator"
)

// writeFiles creates name -> content under dir (and subdirectories for
// names ending in "/").
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileSourceRead(t *testing.T) {
	long := strings.Repeat("x", 100_000) // longer than the read buffer
	tests := []struct {
		name   string
		files  map[string]string
		path   string // relative to the temp dir; "" = the dir
		format string
		par    int
		want   [][]string // per subtask
	}{
		{
			name: "text in name order, hidden and subdirectories skipped",
			files: map[string]string{
				"b.txt": "three\n\nfive", "a.txt": "one\r\ntwo\n",
				".hidden": "no\n", "_SUCCESS": "no\n", "sub/": "", "c.txt": "",
			},
			par: 1,
			want: [][]string{{
				`{"line":"one"}`, `{"line":"two"}`, `{"line":"three"}`, `{"line":""}`, `{"line":"five"}`,
			}},
		},
		{
			name:  "files split over subtasks by index",
			files: map[string]string{"a": "a\n", "b": "b\n", "c": "c\n", "d": "d\n", "e": "e\n"},
			par:   2,
			want:  [][]string{{`{"line":"a"}`, `{"line":"c"}`, `{"line":"e"}`}, {`{"line":"b"}`, `{"line":"d"}`}},
		},
		{
			name:  "a single file goes to subtask 0",
			files: map[string]string{"f.txt": "x\ny\n", "g.txt": "no\n"},
			path:  "f.txt",
			par:   2,
			want:  [][]string{{`{"line":"x"}`, `{"line":"y"}`}, nil},
		},
		{
			name:  "a line longer than the buffer",
			files: map[string]string{"l": "a\n" + long + "\nb"},
			par:   1,
			want:  [][]string{{`{"line":"a"}`, `{"line":"` + long + `"}`, `{"line":"b"}`}},
		},
		{
			name:   "json objects, blank lines skipped",
			files:  map[string]string{"x.json": "{\"a\":1,\"b\":\"s\"}\n\n  \n{\"c\":[1.5,null]}\r\n{}"},
			format: "json",
			par:    1,
			want:   [][]string{{`{"a":1,"b":"s"}`, `{"c":[1.5,null]}`, `{}`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			props := operator.Properties{"path": filepath.Join(dir, tt.path)}
			if tt.format != "" {
				props["format"] = tt.format
			}
			for sub := 0; sub < tt.par; sub++ {
				src := newSource(t, "file-source", props)
				if err := src.Open(testCtx("files", sub, tt.par)); err != nil {
					t.Fatal(err)
				}
				var c collector
				drain(t, src, &c, 10)
				if !slices.Equal(c.out, tt.want[sub]) {
					t.Errorf("subtask %d:\n got %.200q\nwant %.200q", sub, c.out, tt.want[sub])
				}
				if err := src.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bad.json": "{\"a\":1}\n\n{\"a\":2,}\n", "f": "x\n"})

	src := newSource(t, "file-source", operator.Properties{"path": dir, "format": "json"})
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var c collector
	_, _, err := src.PollNext(&c)
	want := "file-source: " + filepath.Join(dir, "bad.json") + `:3: decode JSON at byte 7: unexpected '}', want a string key`
	if errString(err) != want {
		t.Errorf("bad line: err = %q\nwant %q", errString(err), want)
	}
	if !slices.Equal(c.out, []string{`{"a":1}`}) {
		t.Errorf("records before the bad line = %q", c.out)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	missing := filepath.Join(dir, "missing")
	src = newSource(t, "file-source", operator.Properties{"path": missing})
	err = src.Open(testCtx("files", 0, 1))
	if want := "file-source: stat " + missing + ": no such file or directory"; errString(err) != want {
		t.Errorf("missing path: err = %q, want %q", errString(err), want)
	}

	file := filepath.Join(dir, "f")
	src = newSource(t, "file-source", operator.Properties{"path": file, "monitor-interval": "1s"})
	err = src.Open(testCtx("files", 0, 1))
	if want := "file-source: monitor-interval needs a directory, " + file + " is a file"; errString(err) != want {
		t.Errorf("monitoring a file: err = %q, want %q", errString(err), want)
	}
}

// TestFileSourceResume: a source restored at the position of another
// (file index, byte offset, line) continues exactly where it stopped.
func TestFileSourceResume(t *testing.T) {
	dir := t.TempDir()
	var a strings.Builder
	for i := 0; i < 600; i++ {
		fmt.Fprintf(&a, "{\"i\":%d}\n", i)
	}
	writeFiles(t, dir, map[string]string{"a": a.String(), "b": "{\"i\":600}\n{\"i\":601}\n"})
	props := operator.Properties{"path": dir, "format": "json"}

	first := newSource(t, "file-source", props).(*fileSource)
	if err := first.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var head collector
	if st, _, err := first.PollNext(&head); st != operator.MoreAvailable || err != nil {
		t.Fatalf("first poll = %v, %v", st, err)
	}
	if len(head.out) != maxBatch {
		t.Fatalf("first poll emitted %d records, want %d", len(head.out), maxBatch)
	}
	pos := first.position()
	wantOffset := int64(len(strings.Join(lines(a.String())[:maxBatch], "\n")) + 1)
	if pos != (filePosition{FileIndex: 0, Offset: wantOffset, Line: maxBatch}) {
		t.Fatalf("position = %+v, want offset %d line %d", pos, wantOffset, maxBatch)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := newSource(t, "file-source", props).(*fileSource)
	if err := second.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := second.seek(pos); err != nil {
		t.Fatal(err)
	}
	var tail collector
	drain(t, second, &tail, 10)
	got := append(head.out, tail.out...)
	if len(got) != 602 {
		t.Fatalf("got %d records, want 602", len(got))
	}
	for i, r := range got {
		if want := fmt.Sprintf(`{"i":%d}`, i); r != want {
			t.Fatalf("record %d = %s, want %s", i, r, want)
		}
	}
}

// TestFileSourceMonitor: with monitor-interval the source stays alive and
// picks up files that appear later, at the next scan.
func TestFileSourceMonitor(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"1.txt": "a\n"})
	src := newSource(t, "file-source", operator.Properties{"path": dir, "monitor-interval": "1s"}).(*fileSource)
	clock := &fakeClock{}
	src.now = clock.now
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	type poll struct {
		at    time.Duration
		st    operator.SourceStatus
		retry time.Duration
		out   []string
	}
	check := func(i int, p poll) {
		t.Helper()
		clock.t = p.at
		var c collector
		st, retry, err := src.PollNext(&c)
		if err != nil || st != p.st || retry != p.retry || !slices.Equal(c.out, p.out) {
			t.Fatalf("poll %d at %v = %v, %v, %v, %q; want %v, %v, %q", i, p.at, st, retry, err, c.out, p.st, p.retry, p.out)
		}
	}
	ms := time.Millisecond
	check(0, poll{0, operator.NothingAvailable, time.Second, []string{`{"line":"a"}`}})
	check(1, poll{300 * ms, operator.NothingAvailable, 700 * ms, nil})

	// A file appears the way monitored files must: written under a hidden
	// name, then renamed.
	writeFiles(t, dir, map[string]string{".2.txt.tmp": "b\nc\n"})
	check(2, poll{400 * ms, operator.NothingAvailable, 600 * ms, nil})
	if err := os.Rename(filepath.Join(dir, ".2.txt.tmp"), filepath.Join(dir, "2.txt")); err != nil {
		t.Fatal(err)
	}
	check(3, poll{500 * ms, operator.NothingAvailable, 500 * ms, nil}) // not scanned yet
	check(4, poll{time.Second, operator.NothingAvailable, time.Second, []string{`{"line":"b"}`, `{"line":"c"}`}})
	check(5, poll{2500 * ms, operator.NothingAvailable, time.Second, nil}) // scanned, nothing new
	// A file already read is not read again, even if rewritten.
	writeFiles(t, dir, map[string]string{"1.txt": "again\n", "0.txt": "d\n"})
	check(6, poll{3500 * ms, operator.NothingAvailable, time.Second, []string{`{"line":"d"}`}})
}

// TestFileSourceMonitorSplit: with monitoring, subtasks that scan
// independently read every file exactly once between them.
func TestFileSourceMonitorSplit(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	var want []string
	for i := 0; i < 20; i++ {
		files[fmt.Sprintf("f%02d", i)] = fmt.Sprintf("%d\n", i)
		want = append(want, fmt.Sprintf(`{"line":"%d"}`, i))
	}
	writeFiles(t, dir, files)
	var got []string
	perSubtask := make([]int, 3)
	for sub := 0; sub < 3; sub++ {
		src := newSource(t, "file-source", operator.Properties{"path": dir, "monitor-interval": "1m"})
		if err := src.Open(testCtx("files", sub, 3)); err != nil {
			t.Fatal(err)
		}
		var c collector
		if st, _, err := src.PollNext(&c); st != operator.NothingAvailable || err != nil {
			t.Fatalf("subtask %d: %v, %v", sub, st, err)
		}
		src.Close()
		got = append(got, c.out...)
		perSubtask[sub] = len(c.out)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("subtasks together read %q, want every file once: %q", got, want)
	}
	t.Logf("files per subtask: %v", perSubtask)
}
