package cli

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/proto/weirpb"
)

// nasty are strings a job file, a TaskManager or a failing operator can put
// in front of the user, and how weir prints them.
var nasty = []struct{ name, in, out string }{
	{"invalid UTF-8", "a\xff\xfeb", `a\xff\xfeb`},
	{"truncated UTF-8", "caf\xc3", `caf\xc3`},
	{"newline faking a table row", "evil\n7f3c2a1e  wordcount  RUNNING", `evil\n7f3c2a1e  wordcount  RUNNING`},
	{"carriage return", "ok\roverwritten", `ok\roverwritten`},
	{"tab", "a\tb", `a\tb`},
	{"ANSI color", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
	{"OSC window title", "\x1b]0;pwned\x07", `\x1b]0;pwned\a`},
	{"clear screen", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
	{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
	{"C1 CSI", "\u009b31mred", `\u009b31mred`},
	{"C1 NEL", "a\u0085b", `a\u0085b`},
	{"bidi override", "abc\u202edcba", `abc\u202edcba`},
	{"line separator", "a\u2028b", `a\u2028b`},
	{"zero-width space", "a\u200bb", `a\u200bb`},
	{"ordinary UTF-8 kept", "Grüße, 日本語　ジョブ 🚀 ü", "Grüße, 日本語　ジョブ 🚀 ü"},
	{"replacement character kept", "a\uFFFDb", "a\uFFFDb"},
	{"backslashes and quotes kept", `map "r": {\"x\": 1}`, `map "r": {\"x\": 1}`},
	{"empty", "", ""},
}

// nastyOnTheWire are the nasty strings a proto3 string field can carry:
// all but invalid UTF-8, which gRPC refuses to marshal.
func nastyOnTheWire() []struct{ name, in, out string } {
	var out []struct{ name, in, out string }
	for _, tc := range nasty {
		if utf8.ValidString(tc.in) {
			out = append(out, tc)
		}
	}
	return out
}

func TestPrintable(t *testing.T) {
	for _, tc := range nasty {
		if got := printable(tc.in); got != tc.out {
			t.Errorf("%s: printable(%q) = %q, want %q", tc.name, tc.in, got, tc.out)
		}
		if got := printable(tc.out); got != tc.out {
			t.Errorf("%s: printable is not idempotent: %q -> %q", tc.name, tc.out, got)
		}
	}
}

// unsafeRunes returns what in out could act on a terminal: a control character
// other than the newlines weir writes itself, a format character, invalid
// UTF-8.
func unsafeRunes(out string) []rune {
	var bad []rune
	for i, r := range out {
		if r == '\n' {
			continue
		}
		if (r == utf8.RuneError && !strings.HasPrefix(out[i:], "\uFFFD")) || !keep(r, utf8.RuneLen(r)) {
			bad = append(bad, r)
		}
	}
	return bad
}

// Every table and plain line of every command shows the nasty strings
// escaped: no line more, no control character through.
func TestNastyStringsAreEscaped(t *testing.T) {
	for _, tc := range nastyOnTheWire() {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.in
			f := &fakeJobService{
				list: func() (*weirpb.ListJobsResponse, error) {
					return &weirpb.ListJobsResponse{Jobs: []*weirpb.JobSummary{{Id: "j1", Name: n, State: n}}}, nil
				},
				get: func(context.Context, *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
					return &weirpb.JobDetails{Id: "j1", Name: n, State: "FAILED", StatusMessage: n,
						Checkpoints: &weirpb.CheckpointStats{Completed: 1, Latest: &weirpb.CheckpointInfo{Id: 1, Path: n}},
						Tasks:       []*weirpb.TaskStatus{{Operator: n, State: "FAILED", Taskmanager: n, Failure: n + "!"}},
						Exceptions:  []*weirpb.JobException{{Task: n, Message: n}}}, nil
				},
				checkpoints: func(*weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error) {
					return &weirpb.ListCheckpointsResponse{Checkpoints: []*weirpb.CheckpointInfo{{Id: 1, Status: "FAILED", Failure: n}}}, nil
				},
				taskManagers: func() (*weirpb.ListTaskManagersResponse, error) {
					return &weirpb.ListTaskManagersResponse{Taskmanagers: []*weirpb.TaskManagerInfo{{Id: n, Address: n, DataAddress: n}}}, nil
				},
				savepoint: func(*weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
					return &weirpb.TriggerSavepointResponse{Path: n}, nil
				},
				cancel: func(*weirpb.CancelJobRequest) (*weirpb.CancelJobResponse, error) {
					return nil, status.Error(codes.NotFound, "job "+n+" not found")
				},
			}
			addr := serve(t, f)
			e := tc.out
			o := e
			if o == "" {
				o = "-"
			}
			// pad fills a cell to the width of the column (tabwriter
			// counts runes).
			pad := func(cell string, width int) string {
				return cell + strings.Repeat(" ", max(width, utf8.RuneCountInString(cell))-utf8.RuneCountInString(cell))
			}
			nameW, stateW := max(utf8.RuneCountInString(o), 4), max(utf8.RuneCountInString(e), 5)
			for _, c := range []struct {
				args           []string
				stdout, stderr string
				code           int
			}{
				{[]string{"list"}, "" +
					"ID  " + pad("NAME", nameW) + "  " + pad("STATE", stateW) + "  START TIME  DURATION\n" +
					"j1  " + pad(o, nameW) + "  " + pad(e, stateW) + "  -           -\n", "", 0},
				{[]string{"checkpoints", "j1"}, "", "", 0},
				{[]string{"taskmanagers"}, "", "", 0},
				{[]string{"status", "j1"}, "", "", 0},
				{[]string{"savepoint", "j1"}, e + "\n", "Triggering savepoint for job j1...\nSavepoint completed. Resume with: weir run --from-savepoint " + e + " JOBFILE\n", 0},
				{[]string{"cancel", "j1"}, "", "weir: job " + e + " not found\n", 1},
				{[]string{"cancel", n}, "", "weir: job " + e + " not found\n", 1},
			} {
				r := weir(t, addr, c.args...)
				if c.stdout != "" || c.stderr != "" {
					r.check(t, c.stdout, c.stderr, c.code)
				}
				if bad := unsafeRunes(r.stdout + r.stderr); len(bad) > 0 || r.code != c.code {
					t.Errorf("weir %q: exit %d, unescaped %q in\n%s%s", c.args, r.code, bad, r.stdout, r.stderr)
				}
				// One line per row: the escaped string never adds one.
				if lines := strings.Count(r.stdout, "\n"); c.args[0] == "list" && lines != 2 ||
					c.args[0] == "checkpoints" && lines != 2 || c.args[0] == "taskmanagers" && lines != 2 {
					t.Errorf("weir %q: %d lines:\n%s", c.args, lines, r.stdout)
				}
				if c.args[0] == "status" {
					for _, want := range []string{"Name:         " + o + "\n", "Message:      " + e + "\n",
						"  -  " + o + ": " + e + "\n", "  " + e + " (subtask 0, attempt 0): " + e + "!\n"} {
						if e == "" && strings.HasPrefix(want, "Message:") {
							continue
						}
						if !strings.Contains(r.stdout, want) {
							t.Errorf("weir status: no line %q in\n%s", want, r.stdout)
						}
					}
				}
			}
		})
	}
}

// The progress lines of `weir run` are escaped too.
func TestRunProgressIsEscaped(t *testing.T) {
	n := "\x1b[2Jboom\nRUNNING"
	s := &scriptedJob{steps: []*weirpb.JobDetails{
		{Id: "j1", State: "RUNNING", StatusMessage: n},
		{Id: "j1", State: "CANCELED", StatusMessage: n},
	}}
	addr := serve(t, &fakeJobService{submit: submitAs("j1"), get: s.get})
	r := weir(t, addr, "run", "-o", "json", writeJobFile(t))
	want := "Job j1 submitted\nRUNNING (\\x1b[2Jboom\\nRUNNING)\nweir: job j1 CANCELED: \\x1b[2Jboom\\nRUNNING\n"
	if r.stderr != want || r.code != 1 {
		t.Fatalf("exit %d, stderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}
}
