package taskmanager

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
	"github.com/weirstream/weir/proto/weirpb"
)

func TestCancelWatchStep(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := time.Second
	type call struct {
		at   time.Duration // since the cancellation
		act  watchAction
		next time.Duration // since the cancellation; 0: none
	}
	cases := []struct {
		name              string
		interval, timeout time.Duration
		calls             []call
	}{
		{"Flink's defaults: a warning every 30 s, fatal at 180 s", 30 * s, 180 * s, []call{
			{0, watchWait, 30 * s},
			{30 * s, watchWarn, 60 * s},
			{60 * s, watchWarn, 90 * s},
			{150 * s, watchWarn, 180 * s},
			{179 * s, watchWait, 180 * s},
			{180 * s, watchFatal, 0},
		}},
		{"an early wake-up does nothing", 30 * s, 180 * s, []call{
			{29 * s, watchWait, 30 * s},
			{30 * s, watchWarn, 60 * s},
			{59 * s, watchWait, 60 * s},
		}},
		{"a late wake-up warns once for every missed interval", 30 * s, 180 * s, []call{
			{0, watchWait, 30 * s},
			{100 * s, watchWarn, 120 * s},
			{120 * s, watchWarn, 150 * s},
		}},
		{"a wake-up after the timeout is fatal at once", 30 * s, 180 * s, []call{
			{0, watchWait, 30 * s},
			{500 * s, watchFatal, 0},
		}},
		{"interval longer than the timeout: fatal without a warning", 30 * s, 10 * s, []call{
			{0, watchWait, 10 * s},
			{10 * s, watchFatal, 0},
		}},
		{"timeout 0: warnings forever, never fatal", 30 * s, 0, []call{
			{0, watchWait, 30 * s},
			{30 * s, watchWarn, 60 * s},
			{3600 * s, watchWarn, 3630 * s},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := cancelWatch{canceledAt: t0, interval: tc.interval, timeout: tc.timeout}
			for _, c := range tc.calls {
				act, next := w.step(t0.Add(c.at))
				var wantNext time.Time
				if c.next > 0 {
					wantNext = t0.Add(c.next)
				}
				if act != c.act || !next.Equal(wantNext) {
					t.Errorf("step(+%v) = %v, next +%v; want %v, next +%v", c.at, act, next.Sub(t0), c.act, c.next)
				}
			}
		})
	}
}

// stuckOp blocks in ProcessRecord on its name's channel, ignoring the
// task's cancellation: a bug the watchdog is for.
type stuckOp struct{ name string }

var (
	stuckMu      sync.Mutex
	stuckRelease = map[string]chan struct{}{}
	stuckEntered sync.Map // name -> *atomic.Bool
)

func stuck(name string) (release chan struct{}, entered *atomic.Bool) {
	stuckMu.Lock()
	defer stuckMu.Unlock()
	if stuckRelease[name] == nil {
		stuckRelease[name] = make(chan struct{})
	}
	v, _ := stuckEntered.LoadOrStore(name, new(atomic.Bool))
	return stuckRelease[name], v.(*atomic.Bool)
}

// resetStuck gives name a new channel and flag (tests run with -count > 1).
func resetStuck(name string) (release chan struct{}, entered *atomic.Bool) {
	stuckMu.Lock()
	delete(stuckRelease, name)
	stuckMu.Unlock()
	stuckEntered.Delete(name)
	return stuck(name)
}

func init() {
	operator.Register(&operator.Type{Name: "tm-stuck", Kind: operator.KindSink, NewOperator: func(p operator.Properties) (operator.Operator, error) {
		name, err := p.RequiredString("name")
		return &stuckOp{name: name}, err
	}})
}

func (o *stuckOp) Open(*operator.Context) error { return nil }
func (o *stuckOp) ProcessRecord(*record.Record, operator.Collector) error {
	release, entered := stuck(o.name)
	entered.Store(true)
	<-release
	return nil
}
func (o *stuckOp) EndInput(operator.Collector) error { return nil }
func (o *stuckOp) Close() error                      { return nil }

// stuckTM starts a TaskManager with the given overrides, an observed
// logger, and an Exit that records its code.
func stuckTM(t *testing.T, jmAddr string, overrides map[string]string) (*TaskManager, *observer.ObservedLogs, *atomic.Int32) {
	t.Helper()
	host, port, _ := net.SplitHostPort(jmAddr)
	m := map[string]string{
		"jobmanager.rpc.address":               host,
		"jobmanager.rpc.port":                  port,
		"taskmanager.registration.max-backoff": "100ms",
	}
	for k, v := range overrides {
		m[k] = v
	}
	cfg, _, err := config.FromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	exitCode := new(atomic.Int32)
	exitCode.Store(-1)
	tm, err := New(cfg, zap.New(core), Options{
		Registry: prometheus.NewRegistry(), NoMetricsServer: true,
		Exit: func(code int) { exitCode.Store(int32(code)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return tm, logs, exitCode
}

func stuckChain(t *testing.T, job, name string) *weirpb.TaskDeploymentDescriptor {
	return &weirpb.TaskDeploymentDescriptor{
		Execution:      &weirpb.ExecutionAttemptID{JobId: job, Vertex: 2, Subtask: 0, Attempt: 3},
		JobName:        job,
		Parallelism:    1,
		MaxParallelism: 128,
		Operators: [][]byte{
			opJSON(t, "src", "tm-spin", map[string]any{"count": 10}),
			opJSON(t, "sink", "tm-stuck", map[string]any{"name": name}, jobgraph.Input{From: "src", Partition: jobgraph.Forward}),
		},
	}
}

// A canceled task that ignores the cancellation makes the TaskManager warn
// with its stack, then exit with ExitCodeFatal, naming the attempt.
func TestWatchdogExitsOnStuckTask(t *testing.T) {
	const name = "watchdog-stuck"
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm, logs, exitCode := stuckTM(t, jm.addr, map[string]string{
		"task.cancellation.interval": "10ms",
		"task.cancellation.timeout":  "500ms",
	})
	release, entered := resetStuck(name)
	defer func() { _ = tm.Close() }()
	defer close(release)
	c := client(t, tm)
	d := stuckChain(t, "stuck-job", name)
	if _, err := c.SubmitTask(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the operator to be stuck", entered.Load)
	if _, err := c.CancelTask(context.Background(), &weirpb.CancelTaskRequest{Execution: d.GetExecution()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watchdog's exit", func() bool { return exitCode.Load() >= 0 })
	if code := exitCode.Load(); code != ExitCodeFatal {
		t.Errorf("exit code %d, want %d", code, ExitCodeFatal)
	}
	fatal := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(fatal) != 1 {
		t.Fatalf("%d error lines, want 1: %v", len(fatal), fatal)
	}
	f := fatal[0]
	wantMsg := "canceled task did not stop within task.cancellation.timeout: exiting the TaskManager, " +
		"so that the task cannot write output after a new attempt started; its service manager restarts it"
	if f.Message != wantMsg {
		t.Errorf("message %q, want %q", f.Message, wantMsg)
	}
	fields := f.ContextMap()
	for k, want := range map[string]any{"job": "stuck-job", "task": "src -> sink", "subtask": int64(0), "attempt": int64(3),
		"task.cancellation.timeout": 500 * time.Millisecond, "exit_code": int64(ExitCodeFatal)} {
		if got := fields[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("field %s = %v, want %v", k, got, want)
		}
	}
	if !strings.Contains(f.Stack, "(*stuckOp).ProcessRecord") {
		t.Errorf("the fatal line's stack does not show the stuck operator:\n%s", f.Stack)
	}
	warns := logs.FilterMessage("canceled task has not stopped").All()
	if len(warns) == 0 || !strings.Contains(warns[0].Stack, "(*stuckOp).ProcessRecord") {
		t.Errorf("want warnings with the stuck operator's stack before the exit, got %v", warns)
	}
}

// A task that stops within the timeout leaves the process alone, and its
// watchdog ends with it.
func TestWatchdogQuietWhenTaskStops(t *testing.T) {
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm, logs, exitCode := stuckTM(t, jm.addr, map[string]string{"task.cancellation.timeout": "1 h"})
	c := client(t, tm)
	d := chain(t, "quiet", 0, map[string]any{"name": "quiet"}, -1)
	if _, err := c.SubmitTask(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING", func() bool { return len(jm.statesOf("quiet", 0)) == 1 })
	if _, err := c.CancelTask(context.Background(), &weirpb.CancelTaskRequest{Execution: d.GetExecution()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CANCELED", func() bool { return len(jm.statesOf("quiet", 0)) == 2 })
	tm.wgWatch.Wait()
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}
	if code := exitCode.Load(); code != -1 {
		t.Errorf("exit(%d) called", code)
	}
	if n := logs.FilterMessage("canceled task has not stopped").Len(); n != 0 {
		t.Errorf("%d warnings about a task that stopped", n)
	}
}

// Shutdown with a stuck task gives up when its context ends and names the
// task; the process would then exit.
func TestShutdownGivesUpOnStuckTask(t *testing.T) {
	const name = "shutdown-stuck"
	jm := startJM(t, "127.0.0.1:0", "jm-1")
	tm, logs, exitCode := stuckTM(t, jm.addr, nil)
	release, entered := resetStuck(name)
	c := client(t, tm)
	if _, err := c.SubmitTask(context.Background(), stuckChain(t, "stuck-shutdown", name)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the operator to be stuck", entered.Load)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has passed
	err := tm.Shutdown(ctx)
	want := "1 task(s) did not stop after cancel: stuck-shutdown/v2[0]#3"
	if err == nil || err.Error() != want {
		t.Errorf("Shutdown = %v, want %q", err, want)
	}
	if n := logs.FilterMessage("canceled task did not stop before the shutdown deadline").Len(); n != 1 {
		t.Errorf("%d lines about the stuck task, want 1", n)
	}
	if code := exitCode.Load(); code != -1 {
		t.Errorf("exit(%d) called by Shutdown; the daemon exits", code)
	}
	// Let it go so that nothing leaks into the next test.
	close(release)
	tm.wgTasks.Wait()
	tm.wgReports.Wait()
	tm.wgWatch.Wait()
	<-tm.loopDone
}
