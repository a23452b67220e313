package builtin

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
	want := "file-source: " + filepath.Join(dir, "bad.json") + `:3: not a valid JSON object (the TaskManager's log has the decoder's message)`
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

// numberedLines returns n lines "<prefix><i>\n".
func numberedLines(prefix string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

// restoreSource opens a file-source subtask and restores items into it.
func restoreSource(t *testing.T, props operator.Properties, sub, par int, items [][]byte, clock *fakeClock) *fileSource {
	t.Helper()
	src := newSource(t, "file-source", props).(*fileSource)
	if clock != nil {
		src.now = clock.now
	}
	if err := src.Open(testCtx("files", sub, par)); err != nil {
		t.Fatal(err)
	}
	if err := src.RestoreState(&operator.RestoredState{CheckpointID: 4, Items: items}); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestFileSourceSnapshotRestore: the snapshot items say where each file of
// the subtask is, and a restored subtask resumes at the exact line.
func TestFileSourceSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	// a: 300 lines, b: 300 lines (the first poll of 512 stops in b at
	// line 212), c: 2 lines without a final newline.
	writeFiles(t, dir, map[string]string{
		"a": numberedLines("a", 300), "b": numberedLines("b", 300), "c": "c0\nc1", "_SUCCESS": "", ".hidden": "x",
	})
	props := operator.Properties{"path": dir}
	src := newSource(t, "file-source", props).(*fileSource)
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var head collector
	if st, _, err := src.PollNext(&head); st != operator.MoreAvailable || err != nil || len(head.out) != maxBatch {
		t.Fatalf("poll = %v, %v, %d records", st, err, len(head.out))
	}
	items := snapshotItems(t, src, 1)
	bOffset := len(numberedLines("b", 212)) // 950 = 0x3b6: uvarint 0xb6 0x07
	want := []srcFile{{"a", 0, 0, true}, {"b", int64(bOffset), 212, false}, {"c", 0, 0, false}}
	wantItems := []string{"\x01\x01a\x00\x00\x01", "\x01\x01b\xb6\x07\xd4\x01\x00", "\x01\x01c\x00\x00\x00"}
	if bOffset != 950 || fmt.Sprintf("%q", items) != fmt.Sprintf("%q", wantItems) {
		t.Fatalf("items = %q, want %q (%+v)", items, wantItems, want)
	}
	for i, it := range items {
		if f, err := decodeFileItem(it); err != nil || f != want[i] {
			t.Fatalf("item %d decodes to %+v, %v; want %+v", i, f, err, want[i])
		}
	}
	// The source goes on after the snapshot; the restored one must not
	// care.
	var more collector
	drain(t, src, &more, 10)

	restored := restoreSource(t, props, 0, 1, items, nil)
	if pos := restored.position(); pos != (filePosition{FileIndex: 1, Offset: int64(bOffset), Line: 212}) {
		t.Fatalf("restored position %+v", pos)
	}
	var tail collector
	drain(t, restored, &tail, 10)
	if !slices.Equal(tail.out, more.out) || len(tail.out) != 602-maxBatch {
		t.Fatalf("restored source emitted %d records, want the %d the first one emitted after the snapshot", len(tail.out), len(more.out))
	}
	if tail.out[0] != `{"line":"b212"}` || tail.out[len(tail.out)-1] != `{"line":"c1"}` {
		t.Fatalf("restored output %s ... %s", tail.out[0], tail.out[len(tail.out)-1])
	}
}

// TestFileSourceRescale: subtasks of a bounded and of a monitoring source
// stopped at different points are restored at other parallelisms; together
// they read every line exactly once.
func TestFileSourceRescale(t *testing.T) {
	files := map[string]string{}
	for _, name := range []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6"} {
		files[name] = numberedLines(name+"-", 300)
	}
	for _, monitor := range []bool{false, true} {
		for _, tt := range []struct{ oldPar, newPar int }{{2, 3}, {2, 1}, {3, 2}, {2, 2}} {
			t.Run(fmt.Sprintf("monitor=%v %d->%d", monitor, tt.oldPar, tt.newPar), func(t *testing.T) {
				dir := t.TempDir()
				writeFiles(t, dir, files)
				props := operator.Properties{"path": dir}
				if monitor {
					props["monitor-interval"] = "1m"
				}
				clock := &fakeClock{}
				read := map[string]int{}
				var items [][]byte
				for sub := 0; sub < tt.oldPar; sub++ {
					src := newSource(t, "file-source", props).(*fileSource)
					src.now = clock.now
					if err := src.Open(testCtx("files", sub, tt.oldPar)); err != nil {
						t.Fatal(err)
					}
					var c collector
					for i := 0; i < sub; i++ { // subtask s polls s times
						if _, _, err := src.PollNext(&c); err != nil {
							t.Fatal(err)
						}
					}
					for _, r := range c.out {
						read[r]++
					}
					items = append(items, snapshotItems(t, src, 1)...)
					src.Close()
				}
				// A file that appears after the checkpoint is read too.
				writeFiles(t, dir, map[string]string{"g": "g-0\n"})
				for sub := 0; sub < tt.newPar; sub++ {
					src := restoreSource(t, props, sub, tt.newPar, items, clock)
					var c collector
					for i := 0; i < 10; i++ {
						st, _, err := src.PollNext(&c)
						if err != nil {
							t.Fatal(err)
						}
						if st != operator.MoreAvailable {
							break
						}
					}
					src.Close()
					for _, r := range c.out {
						read[r]++
					}
				}
				if len(read) != 7*300+1 {
					t.Errorf("%d distinct lines read, want %d", len(read), 7*300+1)
				}
				for r, n := range read {
					if n != 1 {
						t.Errorf("%s read %d times", r, n)
					}
				}
			})
		}
	}
}

// TestFileSourceMonitorRestoreSeen: after a restore, a monitored file that
// was read is not read again, even if deleted and created anew.
func TestFileSourceMonitorRestoreSeen(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"1.txt": "a\n"})
	props := operator.Properties{"path": dir, "monitor-interval": "1s"}
	clock := &fakeClock{}
	src := newSource(t, "file-source", props).(*fileSource)
	src.now = clock.now
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var c collector
	if _, _, err := src.PollNext(&c); err != nil || !slices.Equal(c.out, []string{`{"line":"a"}`}) {
		t.Fatalf("first poll: %q, %v", c.out, err)
	}
	items := snapshotItems(t, src, 1)
	src.Close()
	if err := os.Remove(filepath.Join(dir, "1.txt")); err != nil {
		t.Fatal(err)
	}
	restored := restoreSource(t, props, 0, 1, items, clock)
	defer restored.Close()
	writeFiles(t, dir, map[string]string{"1.txt": "again\n", "2.txt": "b\n"})
	clock.t = 5 * time.Second
	var after collector
	if _, _, err := restored.PollNext(&after); err != nil || !slices.Equal(after.out, []string{`{"line":"b"}`}) {
		t.Fatalf("after restore: %q, %v; want only the new file", after.out, err)
	}
}

func TestFileSourceRestoreErrors(t *testing.T) {
	item := func(f srcFile) []byte { return appendFileItem(nil, f) }
	tests := []struct {
		name    string
		monitor bool
		items   [][]byte
		want    string
	}{
		{"unfinished file gone", false, [][]byte{item(srcFile{name: "gone", offset: 10, line: 2})},
			`file-source: restore checkpoint 4: item 0: file "gone" was read up to line 2 (offset 10) but is no longer in DIR`},
		{"unfinished monitored file gone", true, [][]byte{item(srcFile{name: "gone", offset: 10, line: 2})},
			`file-source: restore checkpoint 4: item 0: file "gone" was read up to line 2 (offset 10) but is no longer in DIR`},
		{"finished file gone", false, [][]byte{item(srcFile{name: "gone", offset: 10, line: 2, done: true})}, ``},
		{"duplicate", false, [][]byte{item(srcFile{name: "a"}), item(srcFile{name: "a"})},
			`file-source: restore checkpoint 4: file "a" appears twice`},
		{"other version", false, [][]byte{[]byte("\x02")}, `file-source: restore checkpoint 4: item 0: not a file-source item of version 1: "\x02"`},
		{"truncated name", false, [][]byte{[]byte("\x01\x05ab")}, `file-source: restore checkpoint 4: item 0: bad name in file-source item "\x01\x05ab"`},
		{"bad done flag", false, [][]byte{[]byte("\x01\x01a\x00\x00\x02")}, `file-source: restore checkpoint 4: item 0: bad done flag in file-source item "\x01\x01a\x00\x00\x02"`},
		{"trailing bytes", false, [][]byte{[]byte("\x01\x01a\x00\x00\x00\x00")}, `file-source: restore checkpoint 4: item 0: bad done flag in file-source item "\x01\x01a\x00\x00\x00\x00"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a": "x\n"})
			props := operator.Properties{"path": dir}
			if tt.monitor {
				props["monitor-interval"] = "1s"
			}
			src := newSource(t, "file-source", props).(*fileSource)
			if err := src.Open(testCtx("files", 0, 1)); err != nil {
				t.Fatal(err)
			}
			err := src.RestoreState(&operator.RestoredState{CheckpointID: 4, Items: tt.items})
			if got := strings.ReplaceAll(errString(err), dir, "DIR"); got != tt.want {
				t.Fatalf("err = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFileSourceSingleFileRestore: a path that is a file has one item,
// named "", owned by subtask 0.
func TestFileSourceSingleFileRestore(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"in.txt": numberedLines("l", 600)})
	props := operator.Properties{"path": filepath.Join(dir, "in.txt")}
	src := newSource(t, "file-source", props)
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var c collector
	if _, _, err := src.PollNext(&c); err != nil {
		t.Fatal(err)
	}
	items := snapshotItems(t, src, 1)
	if f, err := decodeFileItem(items[0]); len(items) != 1 || err != nil || f != (srcFile{name: "", offset: int64(len(numberedLines("l", 512))), line: 512}) {
		t.Fatalf("items %q: %+v, %v", items, f, err)
	}
	for sub, want := range [][]string{{`{"line":"l512"}`}, nil} {
		restored := restoreSource(t, props, sub, 2, items, nil)
		var tail collector
		drain(t, restored, &tail, 10)
		if len(want) == 0 && len(tail.out) != 0 || len(want) > 0 && (len(tail.out) != 88 || tail.out[0] != want[0]) {
			t.Fatalf("subtask %d read %d lines from %v", sub, len(tail.out), tail.out[:min(1, len(tail.out))])
		}
	}
}

// TestFileSourceMaxLineBytes: a line longer than max-line-bytes (without
// its line break) fails with the file, the line and its byte offset; a
// line of exactly max-line-bytes is read.
func TestFileSourceMaxLineBytes(t *testing.T) {
	dir := t.TempDir()
	x, y := strings.Repeat("x", 1000), strings.Repeat("y", 1001)
	writeFiles(t, dir, map[string]string{"f": "ok\n" + x + "\r\n" + y + "\nz\n", "g": x + "\r"})
	src := newSource(t, "file-source", operator.Properties{"path": dir, "max-line-bytes": 1000})
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var c collector
	_, _, err := src.PollNext(&c)
	want := "file-source: " + filepath.Join(dir, "f") + ": line 3, at byte offset 1005, is longer than max-line-bytes (1000 bytes)"
	if errString(err) != want {
		t.Fatalf("err = %q\nwant %q", errString(err), want)
	}
	if !slices.Equal(c.out, []string{`{"line":"ok"}`, `{"line":"` + x + `"}`}) {
		t.Fatalf("records before the long line: %.80q", c.out)
	}

	// A \r at the end of the file is a line break too.
	src = newSource(t, "file-source", operator.Properties{"path": filepath.Join(dir, "g"), "max-line-bytes": 1000})
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c = collector{}
	drain(t, src, &c, 3)
	if !slices.Equal(c.out, []string{`{"line":"` + x + `"}`}) {
		t.Fatalf("g: %.80q", c.out)
	}
}

// TestFileSourceEndlessLine: a file without a line break (as /dev/zero
// would be) fails once max-line-bytes are read, holding no more than that.
func TestFileSourceEndlessLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zeros")
	if err := os.WriteFile(path, make([]byte, 5<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	src := newSource(t, "file-source", operator.Properties{"path": path, "max-line-bytes": "1000 kb"}).(*fileSource)
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, _, err := src.PollNext(&collector{})
	if want := "file-source: " + path + ": line 1, at byte offset 0, is longer than max-line-bytes (1024000 bytes)"; errString(err) != want {
		t.Fatalf("err = %q\nwant %q", errString(err), want)
	}
	if n := cap(src.long); n > 1000<<10+2 {
		t.Fatalf("%d bytes held for the line, more than max-line-bytes + 2", n)
	}
}

// TestFileSourceNotRegular: devices, named pipes and sockets cannot be
// read to an end nor resumed at an offset; they are refused at once,
// without blocking on a pipe that has no writer.
func TestFileSourceNotRegular(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err == nil {
		src := newSource(t, "file-source", operator.Properties{"path": "/dev/zero"})
		err := src.Open(testCtx("files", 0, 1))
		if want := "file-source: /dev/zero is a character device: file-source reads regular files only"; errString(err) != want {
			t.Errorf("/dev/zero: err = %q, want %q", errString(err), want)
		}
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "b-pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	writeFiles(t, dir, map[string]string{"a": "first\n"})
	src := newSource(t, "file-source", operator.Properties{"path": fifo})
	if err := src.Open(testCtx("files", 0, 1)); errString(err) != "file-source: "+fifo+" is a named pipe: file-source reads regular files only" {
		t.Errorf("named pipe: err = %q", errString(err))
	}
	// In a directory, the pipe is refused when its turn comes.
	src = newSource(t, "file-source", operator.Properties{"path": dir})
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	done := make(chan error, 1)
	var c collector
	go func() {
		_, _, err := src.PollNext(&c)
		done <- err
	}()
	select {
	case err := <-done:
		if want := "file-source: " + fifo + " is a named pipe: file-source reads regular files only"; errString(err) != want {
			t.Fatalf("err = %q, want %q", errString(err), want)
		}
		if !slices.Equal(c.out, []string{`{"line":"first"}`}) {
			t.Fatalf("records before the pipe: %q", c.out)
		}
	case <-time.After(time.Minute):
		t.Fatal("PollNext blocked on a named pipe")
	}
}

// TestFileSourcePollIsBounded: a PollNext returns after a bounded amount
// of reading even when the lines read give no records (blank lines in json
// format), and after about maxPollBytes of long lines.
func TestFileSourcePollIsBounded(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"blank.json": strings.Repeat("\n", 3*maxPollLines) + "{\"a\":1}\n",
		"long.txt":   strings.Repeat(strings.Repeat("l", 99_999)+"\n", 30),
	})
	src := newSource(t, "file-source", operator.Properties{"path": filepath.Join(dir, "blank.json"), "format": "json"}).(*fileSource)
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var c collector
	for i := 1; i <= 3; i++ {
		if st, _, err := src.PollNext(&c); st != operator.MoreAvailable || err != nil || len(c.out) != 0 || src.position().Line != int64(i*maxPollLines) {
			t.Fatalf("poll %d: %v, %v, %d records, at %+v; want none, at line %d", i, st, err, len(c.out), src.position(), i*maxPollLines)
		}
	}
	drain(t, src, &c, 1)
	if !slices.Equal(c.out, []string{`{"a":1}`}) {
		t.Fatalf("records: %q", c.out)
	}

	src = newSource(t, "file-source", operator.Properties{"path": filepath.Join(dir, "long.txt")}).(*fileSource)
	if err := src.Open(testCtx("files", 0, 1)); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var d discard
	if _, _, err := src.PollNext(&d); err != nil || d.n != 11 {
		t.Fatalf("first poll: %v, %d records of 100000 bytes; want 11 (the one that crosses %d bytes included)", err, d.n, maxPollBytes)
	}
}
