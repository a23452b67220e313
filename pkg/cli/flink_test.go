package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/proto/weirpb"
)

// keyedCounts is examples/keyed-counts.yaml: the tests of weir info and of
// -p and -D show what they do to a real job file.
func keyedCounts(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "keyed-counts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keyed-counts.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// submitted is the one SubmitJobRequest f received.
func submitted(t *testing.T, f *fakeJobService) *weirpb.SubmitJobRequest {
	t.Helper()
	var got []*weirpb.SubmitJobRequest
	for _, r := range f.received() {
		if s, ok := r.(*weirpb.SubmitJobRequest); ok {
			got = append(got, s)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d submissions, want 1", len(got))
	}
	return got[0]
}

// Flink's spellings of run's flags send what weir's do.
func TestRunFlinkFlags(t *testing.T) {
	path := keyedCounts(t)
	for _, tc := range []struct {
		args      []string
		savepoint string
		allow     bool
	}{
		{[]string{"-s", "/sp/1"}, "/sp/1", false},
		{[]string{"--from-savepoint", "/sp/1"}, "/sp/1", false},
		{[]string{"--fromSavepoint", "/sp/1"}, "/sp/1", false},
		{[]string{"--fromSavepoint=/sp/1", "--allowNonRestoredState"}, "/sp/1", true},
		{[]string{"-s", "/sp/1", "-n"}, "/sp/1", true},
		{[]string{"--from-savepoint", "s3://b/sp/1", "--allow-non-restored-state"}, "s3://b/sp/1", true},
		{[]string{"-s", "file:///sp/1"}, "file:///sp/1", false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := &fakeJobService{submit: submitAs("7f3c2a1e")}
			addr := serve(t, f)
			args := append(append([]string{"run", "-d"}, tc.args...), path)
			weir(t, addr, args...).check(t, "7f3c2a1e\n", "", 0)
			got := submitted(t, f)
			if got.GetFromSavepoint() != tc.savepoint || got.GetAllowNonRestoredState() != tc.allow || got.GetFileName() != path {
				t.Errorf("request %v", got)
			}
		})
	}
}

// -m is --jobmanager, as in flink run -m.
func TestJobManagerShorthand(t *testing.T) {
	addr := serve(t, listsJobs())
	weirApp(t, nil, "", "-m", addr, "list").check(t, jobsTable, "", 0)
	weirApp(t, nil, "", "list", "-m", addr).check(t, jobsTable, "", 0)
}

// A relative local path of a savepoint to read is the user's, in weir's
// working directory; the JobManager would look for it in its own.
func TestRelativeSavepointPaths(t *testing.T) {
	path := keyedCounts(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeJobService{
		submit: submitAs("7f3c2a1e"),
		stop: func(*weirpb.StopJobRequest) (*weirpb.StopJobResponse, error) {
			return &weirpb.StopJobResponse{Path: "/x/savepoint-1"}, nil
		},
		savepoint: func(*weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
			return &weirpb.TriggerSavepointResponse{Path: "/x/savepoint-2"}, nil
		},
		dispose: func(*weirpb.DisposeSavepointRequest) (*weirpb.DisposeSavepointResponse, error) {
			return &weirpb.DisposeSavepointResponse{}, nil
		},
	}
	addr := serve(t, f)
	abs := filepath.Join(wd, "sp", "savepoint-7f3c2a-1")
	weir(t, addr, "run", "-d", "-s", "sp/savepoint-7f3c2a-1", path).check(t, "7f3c2a1e\n", "", 0)
	weir(t, addr, "run", "-d", "--fromSavepoint", "./sp/savepoint-7f3c2a-1/", path).check(t, "7f3c2a1e\n", "", 0)
	weir(t, addr, "stop", "-p", "sp", "7f3c2a1e").check(t, "/x/savepoint-1\n",
		"Stopping job 7f3c2a1e with a savepoint...\nStopped job 7f3c2a1e. Savepoint:\n", 0)
	weir(t, addr, "savepoint", "7f3c2a1e", "sp").check(t, "/x/savepoint-2\n",
		"Triggering savepoint for job 7f3c2a1e...\nSavepoint completed. Resume with: weir run --from-savepoint /x/savepoint-2 JOBFILE\n", 0)
	weir(t, addr, "savepoint", "--dispose", "sp/savepoint-7f3c2a-1").check(t, "Disposed savepoint "+abs+"\n", "", 0)
	weir(t, addr, "savepoint", "-d", "s3://bucket/sp/savepoint-7f3c2a-1").check(t, "Disposed savepoint s3://bucket/sp/savepoint-7f3c2a-1\n", "", 0)
	want := []proto.Message{
		&weirpb.SubmitJobRequest{FromSavepoint: abs},
		&weirpb.SubmitJobRequest{FromSavepoint: abs},
		// Where to write is the cluster's business: a relative directory
		// goes as it is, for the JobManager to refuse.
		&weirpb.StopJobRequest{JobId: "7f3c2a1e", TargetDirectory: "sp"},
		&weirpb.TriggerSavepointRequest{JobId: "7f3c2a1e", TargetDirectory: "sp"},
		&weirpb.DisposeSavepointRequest{Path: abs},
		&weirpb.DisposeSavepointRequest{Path: "s3://bucket/sp/savepoint-7f3c2a-1"},
	}
	got := f.received()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i].(proto.Message)
		if s, ok := g.(*weirpb.SubmitJobRequest); ok {
			g = &weirpb.SubmitJobRequest{FromSavepoint: s.GetFromSavepoint()}
		}
		if !proto.Equal(g, w) {
			t.Errorf("request %d: %v, want %v", i, g, w)
		}
	}
}

// stop --savepointPath is Flink's spelling; --type canonical is the only
// format there is, and native is refused with the reason.
func TestStopAndSavepointFlinkFlags(t *testing.T) {
	f := &fakeJobService{
		stop: func(*weirpb.StopJobRequest) (*weirpb.StopJobResponse, error) {
			return &weirpb.StopJobResponse{Path: "/sp/savepoint-1"}, nil
		},
		savepoint: func(*weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
			return &weirpb.TriggerSavepointResponse{Path: "/sp/savepoint-2"}, nil
		},
	}
	addr := serve(t, f)
	const stopped = "Stopping job j1 with a savepoint...\nStopped job j1. Savepoint:\n"
	const triggered = "Triggering savepoint for job j1...\nSavepoint completed. Resume with: weir run --from-savepoint /sp/savepoint-2 JOBFILE\n"
	for _, args := range [][]string{
		{"stop", "--savepointPath", "/sp", "j1"},
		{"stop", "--savepointPath=/sp", "--drain", "j1"},
		{"stop", "-p", "/sp", "--type", "canonical", "j1"},
		{"stop", "--savepoint-path", "/sp", "-t", "CANONICAL", "j1"},
	} {
		weir(t, addr, args...).check(t, "/sp/savepoint-1\n", stopped, 0)
	}
	weir(t, addr, "savepoint", "--type", "canonical", "j1", "/sp").check(t, "/sp/savepoint-2\n", triggered, 0)
	weir(t, addr, "savepoint", "-t", "canonical", "j1", "/sp").check(t, "/sp/savepoint-2\n", triggered, 0)
	want := []proto.Message{
		&weirpb.StopJobRequest{JobId: "j1", TargetDirectory: "/sp"},
		&weirpb.StopJobRequest{JobId: "j1", TargetDirectory: "/sp", Drain: true},
		&weirpb.StopJobRequest{JobId: "j1", TargetDirectory: "/sp"},
		&weirpb.StopJobRequest{JobId: "j1", TargetDirectory: "/sp"},
		&weirpb.TriggerSavepointRequest{JobId: "j1", TargetDirectory: "/sp"},
		&weirpb.TriggerSavepointRequest{JobId: "j1", TargetDirectory: "/sp"},
	}
	got := f.received()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		if !proto.Equal(got[i].(proto.Message), w) {
			t.Errorf("request %d: %v, want %v", i, got[i], w)
		}
	}

	native := "weir: invalid argument \"native\" for \"-t, --type\" flag: weir's savepoints have one format, canonical " +
		"(any weir job reads it, whatever its state); there is no native format: leave --type out or pass canonical\nUsage:\n"
	for _, args := range [][]string{{"savepoint", "--type", "native", "j1"}, {"stop", "-t", "native", "j1"}} {
		r := weir(t, addr, args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, native) {
			t.Errorf("weir %v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr starting with:\n%s", args, r.code, r.stdout, r.stderr, native)
		}
	}
	r := weir(t, addr, "savepoint", "--type", "full", "j1")
	if want := "weir: invalid argument \"full\" for \"-t, --type\" flag: unknown savepoint format \"full\": weir writes canonical savepoints only\n"; r.code != 2 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("--type full: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := len(f.received()); n != len(want) {
		t.Errorf("%d requests after the refused ones, want %d", n, len(want))
	}
}

// -p sets the job file's parallelism field and -D the keys of its config:
// section; cluster keys in -D configure weir, not the job.
func TestRunParallelismAndJobConfig(t *testing.T) {
	path := keyedCounts(t)
	for _, tc := range []struct {
		name string
		args []string
		// what the JobManager gets, parsed
		parallelism int
		config      map[string]string
	}{
		{"none", nil, 2, map[string]string{"execution.buffer-timeout": "50ms"}},
		{"-p", []string{"-p", "4"}, 4, map[string]string{"execution.buffer-timeout": "50ms"}},
		{"--parallelism", []string{"--parallelism", "1"}, 1, map[string]string{"execution.buffer-timeout": "50ms"}},
		{"-D", []string{"-D", "execution.checkpointing.interval=10s", "-Dexecution.buffer-timeout=5ms"}, 2,
			map[string]string{"execution.buffer-timeout": "5ms", "execution.checkpointing.interval": "10s"}},
		{"-D cluster key", []string{"-D", "high-availability.type=none", "-p", "3"}, 3, map[string]string{"execution.buffer-timeout": "50ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeJobService{submit: submitAs("7f3c2a1e")}
			addr := serve(t, f)
			args := append(append([]string{"run", "-d"}, tc.args...), path)
			weir(t, addr, args...).check(t, "7f3c2a1e\n", "", 0)
			req := submitted(t, f)
			g, err := jobgraph.Parse(req.GetJobSpec(), req.GetFileName())
			if err != nil {
				t.Fatalf("the JobManager would refuse the job: %v\n%s", err, req.GetJobSpec())
			}
			if g.Parallelism != tc.parallelism || len(g.Config) != len(tc.config) {
				t.Errorf("parallelism %d, config %v; want %d, %v", g.Parallelism, g.Config, tc.parallelism, tc.config)
			}
			for k, v := range tc.config {
				if g.Config[k] != v {
					t.Errorf("config %s = %q, want %q", k, g.Config[k], v)
				}
			}
			if g.MaxParallelism != 128 || len(g.Operators) != 4 || g.Operators[0].ID != "numbers" {
				t.Errorf("the rest of the file changed: %+v", g)
			}
		})
	}
	// Without -p and job keys, the file goes as written.
	f := &fakeJobService{submit: submitAs("7f3c2a1e")}
	addr := serve(t, f)
	weir(t, addr, "run", "-d", path).check(t, "7f3c2a1e\n", "", 0)
	orig, _ := os.ReadFile(path)
	if got := submitted(t, f).GetJobSpec(); string(got) != string(orig) {
		t.Errorf("job file sent changed:\n%s", got)
	}
}

func TestRunOverrideErrors(t *testing.T) {
	path := keyedCounts(t)
	addr := closedAddr(t) // refused before any call
	for _, tc := range []struct {
		args []string
		msg  string
		code int
	}{
		{[]string{"-p", "300"}, "weir: with -p 300: " + path + ": parallelism 300 is above max-parallelism 128\n", 1},
		{[]string{"-D", "execution.checkpointing.interval=often"}, "weir: -D: ", 1},
		{[]string{"-p", "0"}, "weir: invalid argument \"0\" for \"-p, --parallelism\" flag: want a number from 1 to 32768\n", 2},
		{[]string{"-p", "many"}, "weir: invalid argument \"many\" for \"-p, --parallelism\" flag: want a number from 1 to 32768\n", 2},
	} {
		args := append(append([]string{"run"}, tc.args...), path)
		r := weir(t, addr, args...)
		if r.code != tc.code || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.msg) {
			t.Errorf("weir %v: exit %d, stdout %q, stderr:\n%s\nwant exit %d and stderr starting with:\n%s", args, r.code, r.stdout, r.stderr, tc.code, tc.msg)
		}
	}
	// An error in the file itself names the line as written, -p or not.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: bad\n\n\nfrobnicate: 1\noperators: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	weir(t, addr, "run", "-p", "2", bad).check(t, "",
		"weir: "+bad+": unknown field \"frobnicate\" at line 4 (known: name, parallelism, max-parallelism, config, operators)\n", 1)
}

const keyedCountsPlan = "" +
	"Job:               keyed-counts\n" +
	"File:              FILE\n" +
	"Parallelism:       2 (max 128)\n" +
	"Slots:             2\n" +
	"Tasks:             2 (4 subtasks)\n" +
	"Checkpointing:     off\n" +
	"Restart strategy:  none\n" +
	"\n" +
	"TASK  OPERATORS         PARALLELISM\n" +
	"0     numbers -> evens  2\n" +
	"1     counted -> out    2\n" +
	"\n" +
	"OPERATOR  TYPE       PARALLELISM  TASK\n" +
	"numbers   sequence   2            0\n" +
	"evens     filter     2            0\n" +
	"counted   aggregate  2            1\n" +
	"out       file-sink  2            1\n" +
	"\n" +
	"FROM     TO       PARTITION  KEY  CHAINED\n" +
	"numbers  evens    forward    -    yes\n" +
	"evens    counted  hash       key  no\n" +
	"counted  out      forward    -    yes\n" +
	"\n" +
	"CONFIGURATION             VALUE  FROM\n" +
	"execution.buffer-timeout  50ms   job file\n"

// weir info needs no JobManager: the plan is computed here, by the
// chaining the JobManager uses.
func TestInfo(t *testing.T) {
	path := keyedCounts(t)
	addr := closedAddr(t)
	weir(t, addr, "info", path).check(t, strings.Replace(keyedCountsPlan, "FILE", path, 1), "", 0)

	weir(t, addr, "info", "-o", "json", path).check(t, `{
  "name": "keyed-counts",
  "file": "`+path+`",
  "parallelism": 2,
  "max_parallelism": 128,
  "slots": 2,
  "subtasks": 4,
  "checkpoint_interval_ms": 0,
  "checkpointing_mode": "EXACTLY_ONCE",
  "restart_strategy": "none",
  "tasks": [
    {
      "index": 0,
      "name": "numbers -> evens",
      "operators": [
        "numbers",
        "evens"
      ],
      "parallelism": 2
    },
    {
      "index": 1,
      "name": "counted -> out",
      "operators": [
        "counted",
        "out"
      ],
      "parallelism": 2
    }
  ],
  "operators": [
    {
      "id": "numbers",
      "type": "sequence",
      "parallelism": 2,
      "task": 0
    },
    {
      "id": "evens",
      "type": "filter",
      "parallelism": 2,
      "task": 0
    },
    {
      "id": "counted",
      "type": "aggregate",
      "parallelism": 2,
      "task": 1
    },
    {
      "id": "out",
      "type": "file-sink",
      "parallelism": 2,
      "task": 1
    }
  ],
  "edges": [
    {
      "from": "numbers",
      "to": "evens",
      "partition": "forward",
      "key": "",
      "chained": true
    },
    {
      "from": "evens",
      "to": "counted",
      "partition": "hash",
      "key": "key",
      "chained": false
    },
    {
      "from": "counted",
      "to": "out",
      "partition": "forward",
      "key": "",
      "chained": true
    }
  ],
  "config": [
    {
      "key": "execution.buffer-timeout",
      "value": "50ms",
      "from": "job file"
    }
  ]
}
`, "", 0)
}

// The cluster's configuration file and -D are under the job's; -p and -D
// change the plan as they change what run submits.
func TestInfoWithConfigAndOverrides(t *testing.T) {
	path := keyedCounts(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(conf, []byte("parallelism.default: 3\nrestart-strategy.type: fixed-delay\n"+
		"restart-strategy.fixed-delay.attempts: 2\ntaskmanager.numberOfTaskSlots: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := withEnv(map[string]string{config.ConfDirEnv: dir})
	weirApp(t, env, "", "info", "-p", "3", "-D", "execution.checkpointing.interval=10s", path).check(t, ""+
		"Job:               keyed-counts\n"+
		"File:              "+path+"\n"+
		"Parallelism:       3 (max 128)\n"+
		"Slots:             3\n"+
		"Tasks:             2 (6 subtasks)\n"+
		"Checkpointing:     every 10s, EXACTLY_ONCE\n"+
		"Restart strategy:  fixed-delay (attempts 2, delay 1s)\n"+
		"\n"+
		"TASK  OPERATORS         PARALLELISM\n"+
		"0     numbers -> evens  3\n"+
		"1     counted -> out    3\n"+
		"\n"+
		"OPERATOR  TYPE       PARALLELISM  TASK\n"+
		"numbers   sequence   3            0\n"+
		"evens     filter     3            0\n"+
		"counted   aggregate  3            1\n"+
		"out       file-sink  3            1\n"+
		"\n"+
		"FROM     TO       PARTITION  KEY  CHAINED\n"+
		"numbers  evens    forward    -    yes\n"+
		"evens    counted  hash       key  no\n"+
		"counted  out      forward    -    yes\n"+
		"\n"+
		"CONFIGURATION                          VALUE        FROM\n"+
		"execution.buffer-timeout               50ms         job file\n"+
		"execution.checkpointing.interval       10s          -D\n"+
		"parallelism.default                    3            "+conf+"\n"+
		"restart-strategy.fixed-delay.attempts  2            "+conf+"\n"+
		"restart-strategy.type                  fixed-delay  "+conf+"\n", "", 0)
}

// A hostile job file gets from weir info what it gets from weir run.
func TestInfoHostileFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, make([]byte, config.MaxJobFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	cel := write("cel.yaml", "name: bad\noperators:\n  - {id: numbers, type: sequence, properties: {keys: 2, count: 10}}\n"+
		"  - {id: m, type: map, input: numbers, properties: {expr: '{\"x\": record.seq +* 2}'}}\n"+
		"  - {id: out, type: print-sink, input: m}\n")
	cycle := write("cycle.yaml", "name: c\noperators:\n  - {id: a, type: map, input: b, properties: {expr: 'record'}}\n"+
		"  - {id: b, type: map, input: a, properties: {expr: 'record'}}\n")
	cluster := write("cluster.yaml", "name: c\nconfig:\n  taskmanager.numberOfTaskSlots: 8\n"+
		"operators:\n  - {id: numbers, type: sequence, properties: {keys: 2, count: 10}}\n  - {id: out, type: print-sink, input: numbers}\n")
	for _, tc := range []struct {
		path, msg string
		run       bool // weir run refuses it too before calling; the rest the JobManager refuses, as info does here
	}{
		{huge, "weir: job file " + huge + " is 1.0 MiB (1048577 bytes): the limit is 1.0 MiB (1048576 bytes)\n", true},
		{"/dev/zero", "weir: job file /dev/zero is a character device: want a regular file\n", true},
		{dir, "weir: job file " + dir + " is a directory: want a regular file\n", true},
		{filepath.Join(dir, "missing.yaml"), "weir: cannot read job file " + filepath.Join(dir, "missing.yaml") + ": no such file or directory\n", true},
		{cel, "weir: " + cel + ": operator \"m\" (map): property \"expr\": expression \"{\\\"x\\\": record.seq +* 2}\" does not compile: " +
			"ERROR: <input>:1:19: Syntax error: extraneous input '*' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n", false},
		{cycle, "weir: " + cycle + ": operators form a cycle: ", false},
		{cluster, "weir: " + cluster + ": config: taskmanager.numberOfTaskSlots is a cluster setting (set it in the TaskManager's config.yaml), not a job setting\n", false},
	} {
		verbs := []string{"info"}
		if tc.run {
			verbs = append(verbs, "run")
		}
		for _, verb := range verbs {
			r := weir(t, closedAddr(t), verb, tc.path)
			if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.msg) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("weir %s %s: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and one line starting with:\n%s", verb, tc.path, r.code, r.stdout, r.stderr, tc.msg)
			}
		}
	}
}

// CEL's compile errors come with the expression and a caret on lines of
// their own; weir's errors are one line.
func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"plain", "plain"},
		{"expr does not compile: ERROR: <input>:1:19: Syntax error: x\n | {\"x\": record.seq +* 2}\n | ..................^",
			"expr does not compile: ERROR: <input>:1:19: Syntax error: x"},
		{"does not compile: ERROR: <input>:1:1: a\n | a\n | ^\nERROR: <input>:1:5: b\n | a b\n | ....^",
			"does not compile: ERROR: <input>:1:1: a; ERROR: <input>:1:5: b"},
		{"evil\nfake row", "evil\nfake row"}, // escaped by printable, not hidden
	} {
		if got := oneLine(tc.in); got != tc.out {
			t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.out)
		}
	}
}

// weir reads the daemons' configuration file without being told where it
// is ($WEIR_CONF_DIR/config.yaml), and finds the JobManager in it
// (jobmanager.rpc.address and port) as the TaskManagers do. The command
// line wins over the environment, the environment over a file found on
// its own.
func TestConfigFileDiscovery(t *testing.T) {
	fromFile := serve(t, listsJobs())
	other := serve(t, &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{Jobs: []*weirpb.JobSummary{{Id: "c4", Name: "etl", State: "CREATED"}}}, nil
	}})
	const otherTable = "ID  NAME  STATE    START TIME  DURATION\nc4  etl   CREATED  -           -\n"
	writeConf := func(addr string) (dir, file string) {
		host, port, _ := strings.Cut(addr, ":")
		dir = t.TempDir()
		file = filepath.Join(dir, config.ConfigFileName)
		if err := os.WriteFile(file, []byte("jobmanager.rpc.address: "+host+"\njobmanager.rpc.port: "+port+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir, file
	}
	confDir, _ := writeConf(fromFile)
	_, otherFile := writeConf(other)
	_, otherPort, _ := strings.Cut(other, ":")
	empty := t.TempDir()

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"file in WEIR_CONF_DIR", map[string]string{config.ConfDirEnv: confDir}, nil, jobsTable},
		{"WEIR_JOBMANAGER over a file found on its own", map[string]string{config.ConfDirEnv: confDir, EnvJobManager: other}, nil, otherTable},
		{"--config over WEIR_JOBMANAGER", map[string]string{EnvJobManager: fromFile}, []string{"--config", otherFile}, otherTable},
		{"--config over WEIR_CONF_DIR", map[string]string{config.ConfDirEnv: confDir}, []string{"--config", otherFile}, otherTable},
		{"-D over the file and WEIR_JOBMANAGER", map[string]string{config.ConfDirEnv: confDir, EnvJobManager: fromFile},
			[]string{"-D", "jobmanager.rpc.port=" + otherPort}, otherTable},
		{"-m over everything", map[string]string{config.ConfDirEnv: confDir, EnvJobManager: fromFile},
			[]string{"--config", otherFile, "-m", fromFile}, jobsTable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), "list")
			weirApp(t, withEnv(tc.env), "", args...).check(t, tc.want, "", 0)
		})
	}

	// A WEIR_CONF_DIR without config.yaml is a mistake to hear about, not
	// a silent fall-back to the defaults.
	weirApp(t, withEnv(map[string]string{config.ConfDirEnv: empty}), "", "list").check(t, "",
		"weir: config file \""+filepath.Join(empty, "config.yaml")+"\" (WEIR_CONF_DIR=\""+empty+"\") does not exist or is not a regular file\n", 1)
	weirApp(t, nil, "", "--config", filepath.Join(empty, "nope.yaml"), "list").check(t, "",
		"weir: config file \""+filepath.Join(empty, "nope.yaml")+"\" (--config) does not exist or is not a regular file\n", 1)
	// Commands that need no configuration do not read it.
	if r := weirApp(t, withEnv(map[string]string{config.ConfDirEnv: empty}), "", "version"); r.code != 0 {
		t.Errorf("weir version with a bad %s: exit %d, stderr %q", config.ConfDirEnv, r.code, r.stderr)
	}
}

// weir info says what weir run's JobManager would warn about.
func TestInfoWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warn.yaml")
	if err := os.WriteFile(path, []byte("name: w\nconfig:\n  execution.checkpointing.intervall: 1s\n"+
		"operators:\n  - {id: n, type: sequence, properties: {keys: 1, count: 1}}\n  - {id: o, type: print-sink, input: n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := weir(t, "", "info", path)
	want := "warning: " + path + ": config: unknown configuration key \"execution.checkpointing.intervall\" (did you mean \"execution.checkpointing.interval\"?)\n"
	if r.code != 0 || r.stderr != want || !strings.HasSuffix(r.stdout, "execution.checkpointing.intervall  1s     job file\n") {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant the warning:\n%s", r.code, r.stdout, r.stderr, want)
	}
}
