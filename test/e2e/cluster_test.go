// Package e2e tests weir end to end: it builds the real binaries, starts a
// JobManager and TaskManagers as separate OS processes on free loopback
// ports, drives them with the `weir` CLI, and kills them with SIGKILL.
package e2e

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binaries built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"github.com/weirstream/weir/cmd/jobmanager",
		"github.com/weirstream/weir/cmd/taskmanager",
		"github.com/weirstream/weir/cmd/weir")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a daemon started by a test.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (p *process) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cluster is one JobManager and its TaskManagers.
type cluster struct {
	t            testing.TB
	dir          string
	jmAddr       string
	jm           *process
	taskmanagers []*process
	extra        []string // -D overrides for every daemon
	// perProcess returns -D overrides for one daemon by name ("jobmanager",
	// "taskmanager-1", ...), after extra; nil: none.
	perProcess func(name string) []string
	cliArgs    []string // appended to every weir command
}

// newCluster starts a JobManager and n TaskManagers with the given slots each
// and waits until all of them are registered.
func newCluster(t testing.TB, n, slots int, extra ...string) *cluster {
	t.Helper()
	return (&cluster{t: t, dir: t.TempDir(), extra: extra}).launch(n, slots)
}

// launch starts the JobManager and n TaskManagers of a cluster whose
// directory and settings are set.
func (c *cluster) launch(n, slots int) *cluster {
	t := c.t
	t.Helper()
	c.jmAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, port, _ := net.SplitHostPort(c.jmAddr)
	c.jm = c.start("jobmanager", "jobmanager",
		"-D", "jobmanager.rpc.address=127.0.0.1",
		"-D", "jobmanager.rpc.port="+port)
	// Before anything can fail: a cluster that does not come up is killed
	// and its logs shown too.
	t.Cleanup(func() {
		for _, p := range append([]*process{c.jm}, c.taskmanagers...) {
			p.kill()
		}
		if t.Failed() {
			c.dumpLogs()
		}
	})
	for i := 0; i < n; i++ {
		c.addTaskManager(slots)
	}
	c.waitTaskManagers(n)
	return c
}

func (c *cluster) addTaskManager(slots int) *process {
	_, port, _ := net.SplitHostPort(c.jmAddr)
	p := c.start(fmt.Sprintf("taskmanager-%d", len(c.taskmanagers)+1), "taskmanager",
		"-D", "jobmanager.rpc.address=127.0.0.1",
		"-D", "jobmanager.rpc.port="+port,
		"-D", "taskmanager.host=127.0.0.1",
		"-D", "taskmanager.numberOfTaskSlots="+strconv.Itoa(slots))
	c.taskmanagers = append(c.taskmanagers, p)
	return p
}

func (c *cluster) start(name, binary string, args ...string) *process {
	c.t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	args = append(args, "-D", "metrics.reporter.prom.port=0")
	for _, e := range c.extra {
		args = append(args, "-D", e)
	}
	if c.perProcess != nil {
		for _, e := range c.perProcess(name) {
			args = append(args, "-D", e)
		}
	}
	cmd := exec.Command(filepath.Join(binDir, binary), args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p
}

func (c *cluster) dumpLogs() {
	for _, p := range append([]*process{c.jm}, c.taskmanagers...) {
		data, _ := os.ReadFile(p.log)
		if len(data) > 20000 {
			data = data[len(data)-20000:]
		}
		c.t.Logf("==== %s log (%s) ====\n%s", p.name, p.log, data)
	}
}

// weir runs the CLI against the cluster and returns stdout, stderr and the exit code.
func (c *cluster) weir(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "weir"), append(args, c.cliArgs...)...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "WEIR_JOBMANAGER="+c.jmAddr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("weir %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// mustWeir runs the CLI and fails the test unless it exits 0.
func (c *cluster) mustWeir(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.weir(args...)
	if code != 0 {
		c.t.Fatalf("weir %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// weirJSON runs a read command with -o json and decodes its output into v.
func (c *cluster) weirJSON(v any, args ...string) {
	c.t.Helper()
	out := c.mustWeir(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("weir %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

type taskManagerJSON struct {
	ID         string `json:"id"`
	Address    string `json:"address"`
	DataAddr   string `json:"data_address"`
	SlotsTotal int    `json:"slots_total"`
	SlotsFree  int    `json:"slots_free"`
}

type taskJSON struct {
	Operator    string `json:"operator"`
	Subtask     int    `json:"subtask"`
	State       string `json:"state"`
	TaskManager string `json:"taskmanager"`
	RecordsIn   int64  `json:"records_in"`
	RecordsOut  int64  `json:"records_out"`
	Attempt     int    `json:"attempt"`
}

type jobJSON struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	State         string     `json:"state"`
	Parallelism   int        `json:"parallelism"`
	StartTime     string     `json:"start_time"`
	StatusMessage string     `json:"status_message"`
	Tasks         []taskJSON `json:"tasks"`
}

func (c *cluster) waitTaskManagers(n int) []taskManagerJSON {
	c.t.Helper()
	var tms []taskManagerJSON
	waitFor(c.t, 30*time.Second, fmt.Sprintf("%d TaskManagers registered", n), func() bool {
		out, _, code := c.weir("taskmanagers", "-o", "json")
		if code != 0 {
			return false
		}
		tms = nil
		return json.Unmarshal([]byte(out), &tms) == nil && len(tms) == n
	})
	return tms
}

func (c *cluster) status(jobID string) jobJSON {
	c.t.Helper()
	var j jobJSON
	c.weirJSON(&j, "status", jobID)
	return j
}

// waitState polls until the job is in one of the states and returns its status.
func (c *cluster) waitState(jobID string, timeout time.Duration, states ...string) jobJSON {
	c.t.Helper()
	var j jobJSON
	waitFor(c.t, timeout, fmt.Sprintf("job %s in state %v", jobID, states), func() bool {
		j = c.status(jobID)
		for _, s := range states {
			if j.State == s {
				return true
			}
		}
		return false
	})
	return j
}

// writeJob writes a job file into the cluster's directory and returns its path.
func (c *cluster) writeJob(name, yaml string) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// committedRecords reads every committed part file under dir (names that
// start with neither '.' nor '_') as JSON lines.
func committedRecords(t testing.TB, dir string) []map[string]any {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read output directory: %v", err)
	}
	var out []map[string]any
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if line == "" {
				continue
			}
			var rec map[string]any
			dec := json.NewDecoder(strings.NewReader(line))
			dec.UseNumber()
			if err := dec.Decode(&rec); err != nil {
				t.Fatalf("%s line %d: %v: %q", name, i+1, err, line)
			}
			out = append(out, rec)
		}
	}
	return out
}

func intField(t testing.TB, rec map[string]any, name string) int64 {
	t.Helper()
	n, ok := rec[name].(json.Number)
	if !ok {
		t.Fatalf("record %v: field %q is not a number", rec, name)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("record %v: field %q: %v", rec, name, err)
	}
	return i
}

// processOf returns the TaskManager process whose id is tmID (a TaskManager
// logs its id when it starts).
func (c *cluster) processOf(tmID string) *process {
	c.t.Helper()
	for _, p := range c.taskmanagers {
		if p.exited() {
			continue
		}
		data, _ := os.ReadFile(p.log)
		if strings.Contains(string(data), tmID) {
			return p
		}
	}
	c.t.Fatalf("no running TaskManager logs its id %q", tmID)
	return nil
}

// keyedJob describes the tests' common job: sequence -> hash(key) ->
// aggregate(count) -> file-sink.
type keyedJob struct {
	name           string
	parallelism    int      // job default (sources); 0 = 2
	stateful       int      // parallelism of aggregate and sink; 0 = the job's
	maxParallelism int      // 0 = default
	config         []string // "key: value" lines of the job's config
	keys, count    int      // count 0 = unbounded
	rate, sinkRate int      // records/s per subtask; 0 = unlimited
	out            string   // the sink's directory
}

// write writes the job file into the cluster's directory and returns its path.
func (j keyedJob) write(c *cluster) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nparallelism: %d\n", j.name, cmp.Or(j.parallelism, 2))
	if j.maxParallelism > 0 {
		fmt.Fprintf(&b, "max-parallelism: %d\n", j.maxParallelism)
	}
	if len(j.config) > 0 {
		b.WriteString("config:\n")
		for _, kv := range j.config {
			fmt.Fprintf(&b, "  %s\n", kv)
		}
	}
	stateful := ""
	if j.stateful > 0 {
		stateful = fmt.Sprintf("    parallelism: %d\n", j.stateful)
	}
	count, sinkRate := "", ""
	if j.count > 0 {
		count = fmt.Sprintf(", count: %d", j.count)
	}
	if j.sinkRate > 0 {
		sinkRate = fmt.Sprintf(", rate: %d", j.sinkRate)
	}
	fmt.Fprintf(&b, `operators:
  - id: numbers
    type: sequence
    properties: {keys: %d%s, rate: %d}
  - id: counted
    type: aggregate
%s    input: {from: numbers, partition: hash, key: key}
    properties: {aggregates: {count: count}}
  - id: out
    type: file-sink
%s    input: counted
    properties: {path: %q%s}
`, j.keys, count, j.rate, stateful, stateful, j.out, sinkRate)
	return c.writeJob(j.name+".yaml", b.String())
}

// checkpointing returns config lines that checkpoint every interval into the
// cluster's checkpoint directory, plus extra lines.
func (c *cluster) checkpointing(interval string, extra ...string) []string {
	return append([]string{
		"execution.checkpointing.interval: " + interval,
		fmt.Sprintf("execution.checkpointing.dir: %q", filepath.Join(c.dir, "checkpoints")),
	}, extra...)
}
