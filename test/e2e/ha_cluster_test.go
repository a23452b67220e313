package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weirstream/weir/pkg/ha/hatest"
)

// The high-availability harness: a real etcd server, JobManagers under a
// supervisor and TaskManagers that find the leader through etcd, all
// separate processes, each daemon on a loopback address of its own as on a
// machine of its own (127.0.0.11.. for JobManagers, 127.0.0.21.. for
// TaskManagers), so that an address names one daemon in logs and metrics.
// The CLI is the real `weir`, given every JobManager's address
// (WEIR_JOBMANAGER=host1:port,host2:port,...) as an operator would.

// haClusterID is the high-availability.cluster-id of the tests: not the
// default, so that the key is exercised.
const haClusterID = "e2e"

// haOptions shape an HA cluster; the zero value is the tests' usual one.
type haOptions struct {
	jobManagers  int           // 0 = 3
	taskManagers int           // 0 = 3
	slots        int           // per TaskManager; 0 = 2
	leaseTTL     time.Duration // 0 = 3 s
}

// haCluster is one HA cluster of a test. The embedded cluster gives the
// CLI, job and checkpoint helpers of the other tests; its jmAddr is the
// list of the JobManagers that are not paused.
type haCluster struct {
	*cluster
	etcd     *hatest.Server
	leaseTTL time.Duration
	haKeys   []string // the high-availability.* keys every daemon gets
	jms      []*jobManagerUnit
	tmPorts  map[*process]string // metrics address of each TaskManager

	listMu sync.Mutex
	list   string // WEIR_JOBMANAGER for run, which background polls call
}

// Heartbeats short enough for fast tests, long enough for a loaded
// machine: the JobManager's heartbeat.timeout is also a new leader's
// reporting window and how long TaskManagers keep their tasks without a
// leader (docs/high-availability.md), so it must exceed lease TTL +
// election + registration with room to spare.
var haHeartbeats = []string{
	"heartbeat.interval=500ms",
	"heartbeat.timeout=10s",
	"taskmanager.registration.max-backoff=1s",
}

// newHACluster starts etcd, the JobManagers (the first one started leads)
// and the TaskManagers, and waits until a leader serves with every
// TaskManager registered.
func newHACluster(t testing.TB, o haOptions) *haCluster {
	t.Helper()
	if o.jobManagers == 0 {
		o.jobManagers = 3
	}
	if o.taskManagers == 0 {
		o.taskManagers = 3
	}
	if o.slots == 0 {
		o.slots = 2
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = 3 * time.Second
	}
	etcd := hatest.StartAt(t, "127.0.0.10")
	h := &haCluster{
		cluster:  &cluster{t: t, dir: t.TempDir()},
		etcd:     etcd,
		leaseTTL: o.leaseTTL,
		tmPorts:  map[*process]string{},
	}
	h.haKeys = []string{
		"high-availability.type=etcd",
		"high-availability.etcd.endpoints=" + strings.Join(etcd.Endpoints(), ","),
		"high-availability.cluster-id=" + haClusterID,
		"high-availability.storageDir=" + filepath.Join(h.dir, "ha"),
		"high-availability.etcd.lease-ttl=" + o.leaseTTL.String(),
	}
	var ips []string
	for i := range o.jobManagers {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", 11+i))
	}
	port := strconv.Itoa(freePortOnAll(t, ips))
	for i, ip := range ips {
		h.jms = append(h.jms, &jobManagerUnit{
			h: h, name: fmt.Sprintf("jobmanager-%d", i+1), ip: ip,
			addr: net.JoinHostPort(ip, port),
			stop: make(chan struct{}), stopped: make(chan struct{}),
		})
	}
	h.syncList()
	t.Cleanup(h.stop)
	for i, u := range h.jms {
		if err := u.startRun(); err != nil {
			t.Fatal(err)
		}
		go u.supervise()
		if i == 0 {
			// The first one leads: the tests know where the job starts.
			h.waitLeaderBy(time.Now().Add(30*time.Second), 0)
		}
	}
	for i := range o.taskManagers {
		h.addTaskManager(fmt.Sprintf("127.0.0.%d", 21+i), o.slots)
	}
	h.waitTaskManagers(o.taskManagers)
	return h
}

// freePortOnAll returns a TCP port free on every one of the addresses.
func freePortOnAll(t testing.TB, ips []string) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatalf("listen on %s: %v", ips[0], err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		free := true
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			l2.Close()
		}
		l.Close()
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return 0
}

// addTaskManager starts a TaskManager at ip that finds the leader through
// etcd, its metrics on a fixed port of that address.
func (h *haCluster) addTaskManager(ip string, slots int) *process {
	h.t.Helper()
	name := fmt.Sprintf("taskmanager-%d", len(h.taskmanagers)+1)
	metricsPort := strconv.Itoa(freePortOnAll(h.t, []string{ip}))
	args := []string{
		"taskmanager.host=" + ip,
		"taskmanager.numberOfTaskSlots=" + strconv.Itoa(slots),
		"metrics.reporter.prom.port=" + metricsPort,
	}
	p, err := h.startDaemon(name, "taskmanager", args)
	if err != nil {
		h.t.Fatal(err)
	}
	h.taskmanagers = append(h.taskmanagers, p)
	h.tmPorts[p] = net.JoinHostPort(ip, metricsPort)
	return p
}

// startDaemon starts one run of a daemon with the HA keys, the test
// heartbeats and args (key=value); its output is appended to
// <dir>/<name>.log, each run under a header line. It does not fail the
// test, so that the supervisor's goroutine may call it.
func (h *haCluster) startDaemon(name, binary string, args []string) (*process, error) {
	logPath := filepath.Join(h.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "==== %s started at %s ====\n", name, time.Now().Format(time.RFC3339Nano))
	var argv []string
	for _, kv := range slices.Concat(h.haKeys, haHeartbeats,
		[]string{"metrics.reporter.prom.port=0"}, args) {
		argv = append(argv, "-D", kv)
	}
	cmd := exec.Command(filepath.Join(binDir, binary), argv...)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// stop ends the supervisors, then every process (etcd stops after, in
// its own cleanup), and shows the logs if the test failed.
func (h *haCluster) stop() {
	for _, u := range h.jms {
		close(u.stop)
		if u.current() != nil {
			<-u.stopped
		}
	}
	for _, u := range h.jms {
		if p := u.current(); p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused one dies too
			p.kill()
		}
	}
	for _, p := range h.taskmanagers {
		p.kill()
	}
	if !h.t.Failed() {
		return
	}
	for _, u := range h.jms {
		h.t.Logf("==== %s at %s: runs ended %v", u.name, u.addr, u.exits())
		h.dumpLog(u.name, filepath.Join(h.dir, u.name+".log"))
	}
	for _, p := range h.taskmanagers {
		h.dumpLog(p.name, p.log)
	}
}

func (h *haCluster) dumpLog(name, path string) {
	data, _ := os.ReadFile(path)
	if len(data) > 30000 {
		data = data[len(data)-30000:]
	}
	h.t.Logf("==== %s log (%s) ====\n%s", name, path, data)
}

// jobManagerUnit is one JobManager machine: a fixed address and the
// process running there now. Like systemd with Restart=always, its
// supervisor starts the JobManager again, on the same address and port,
// whenever it exits, whatever the reason (a SIGKILL of the test, or exit
// 75 after losing its leadership).
type jobManagerUnit struct {
	h          *haCluster
	name, ip   string
	addr       string // ip:port, what it campaigns with
	stop       chan struct{}
	stopped    chan struct{}
	mu         sync.Mutex
	proc       *process
	runs       int      // processes started
	ended      []string // how each ended run ended: "exit 75", "signal: killed"
	restartErr error
	paused     bool
}

// restartDelay is systemd's default RestartSec.
const restartDelay = 100 * time.Millisecond

func (u *jobManagerUnit) startRun() error {
	_, port, _ := net.SplitHostPort(u.addr)
	p, err := u.h.startDaemon(u.name, "jobmanager", []string{
		"jobmanager.rpc.address=" + u.ip,
		"jobmanager.rpc.port=" + port,
	})
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.proc, u.paused = p, false
	u.runs++
	u.mu.Unlock()
	return nil
}

// supervise restarts the JobManager each time it exits, until stop.
func (u *jobManagerUnit) supervise() {
	defer close(u.stopped)
	for {
		p := u.current()
		select {
		case <-p.done:
		case <-u.stop:
			return
		}
		u.mu.Lock()
		u.ended = append(u.ended, p.cmd.ProcessState.String())
		u.mu.Unlock()
		select {
		case <-time.After(restartDelay):
		case <-u.stop:
			return
		}
		if err := u.startRun(); err != nil {
			u.mu.Lock()
			u.restartErr = err
			u.mu.Unlock()
			return
		}
	}
}

func (u *jobManagerUnit) current() *process {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.proc
}

// exits returns how each run that ended ended, oldest first.
func (u *jobManagerUnit) exits() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.ended)
}

// kill SIGKILLs the running JobManager and waits until it has exited; the
// supervisor starts it again.
func (u *jobManagerUnit) kill() {
	u.current().kill()
	u.h.syncList()
}

// pause stops the process (SIGSTOP) and resume continues it (SIGCONT).
// A paused JobManager accepts connections but never answers, so the CLI,
// which asks the listed JobManagers in order, is not given it meanwhile,
// as an operator would leave out a machine known to hang.
func (u *jobManagerUnit) pause() {
	u.mu.Lock()
	_ = u.proc.cmd.Process.Signal(syscall.SIGSTOP)
	u.paused = true
	u.mu.Unlock()
	u.h.syncList()
}

func (u *jobManagerUnit) resume() {
	u.mu.Lock()
	_ = u.proc.cmd.Process.Signal(syscall.SIGCONT)
	u.paused = false
	u.mu.Unlock()
	u.h.syncList()
}

// waitRuns waits until the supervisor has started the n-th process.
func (u *jobManagerUnit) waitRuns(n int, timeout time.Duration) {
	u.h.t.Helper()
	waitFor(u.h.t, timeout, fmt.Sprintf("%s started %d times", u.name, n), func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.restartErr != nil {
			u.h.t.Fatalf("%s not restarted: %v", u.name, u.restartErr)
		}
		return u.runs >= n
	})
}

// syncList sets the CLI's JobManager list: every JobManager not paused.
// Only the test's goroutine calls it (cluster.weir reads jmAddr).
func (h *haCluster) syncList() {
	var addrs []string
	for _, u := range h.jms {
		u.mu.Lock()
		if !u.paused {
			addrs = append(addrs, u.addr)
		}
		u.mu.Unlock()
	}
	h.jmAddr = strings.Join(addrs, ",")
	h.listMu.Lock()
	h.list = h.jmAddr
	h.listMu.Unlock()
}

// unit returns the JobManager unit at addr.
func (h *haCluster) unit(addr string) *jobManagerUnit {
	h.t.Helper()
	for _, u := range h.jms {
		if u.addr == addr {
			return u
		}
	}
	h.t.Fatalf("no JobManager at %q (the leader named by etcd)", addr)
	return nil
}

// run runs the CLI with the cluster's list and never fails the test: for
// polls across a failover, when a call may fail for a while.
func (h *haCluster) run(args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(filepath.Join(binDir, "weir"), args...)
	cmd.Dir = h.dir
	h.listMu.Lock()
	cmd.Env = append(os.Environ(), "WEIR_JOBMANAGER="+h.list)
	h.listMu.Unlock()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		return "", err.Error(), -1
	}
	return o.String(), e.String(), code
}

// tryJSON runs a read command with -o json; false if it failed.
func (h *haCluster) tryJSON(v any, args ...string) bool {
	out, _, code := h.run(append(args, "-o", "json")...)
	return code == 0 && json.Unmarshal([]byte(out), v) == nil
}

type jobManagerJSON struct {
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Since   string `json:"since"`
	Epoch   int64  `json:"epoch"`
}

// leaderInfo is a leader as `weir jobmanagers` names it.
type leaderInfo struct {
	addr  string
	epoch int64
}

// waitLeaderBy waits until `weir jobmanagers` names a leader at an epoch
// above after, and that leader serves the API (`weir list` answers),
// failing the test if that is not so by the deadline.
func (h *haCluster) waitLeaderBy(deadline time.Time, after int64) leaderInfo {
	h.t.Helper()
	var l leaderInfo
	var last string
	for {
		var jms []jobManagerJSON
		if h.tryJSON(&jms, "jobmanagers") {
			last = fmt.Sprintf("%+v", jms)
			for _, jm := range jms {
				if jm.Leader && jm.Epoch > after {
					l = leaderInfo{jm.Address, jm.Epoch}
				}
			}
			if l.addr != "" {
				if _, _, code := h.run("list", "-o", "json"); code == 0 {
					return l
				}
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no JobManager leads at an epoch above %d and serves by the deadline (%s); weir jobmanagers said %s",
				after, deadline.Format("15:04:05.000"), last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leader returns the current leader, waiting up to 30 s for one.
func (h *haCluster) leader() leaderInfo {
	h.t.Helper()
	return h.waitLeaderBy(time.Now().Add(30*time.Second), 0)
}

// killLeader SIGKILLs the leader and waits until a standby leads and
// serves, within lease TTL + 2 s of the kill (the bound), and
// returns the new leader.
func (h *haCluster) killLeader(old leaderInfo) leaderInfo {
	h.t.Helper()
	u := h.unit(old.addr)
	killed := time.Now()
	u.kill()
	l := h.waitLeaderBy(killed.Add(h.leaseTTL+2*time.Second), old.epoch)
	h.t.Logf("leader %s (epoch %d) killed; %s leads at epoch %d", old.addr, old.epoch, l.addr, l.epoch)
	return l
}

// tryStatus is the job's status, false while no leader answers.
func (h *haCluster) tryStatus(jobID string) (failoverStatus, bool) {
	var st failoverStatus
	return st, h.tryJSON(&st, "status", jobID)
}

// failoverStatus is `weir status -o json` with what the HA tests check.
type failoverStatus struct {
	State         string          `json:"state"`
	StatusMessage string          `json:"status_message"`
	Restarts      int             `json:"restarts"`
	Exceptions    []exceptionJSON `json:"exceptions"`
	Tasks         []struct {
		Operator    string `json:"operator"`
		Subtask     int    `json:"subtask"`
		State       string `json:"state"`
		TaskManager string `json:"taskmanager"`
		Attempt     int    `json:"attempt"`
	} `json:"tasks"`
}

// attempts maps "operator/subtask" to the task's attempt and TaskManager.
func (s failoverStatus) attempts() map[string]string {
	m := map[string]string{}
	for _, t := range s.Tasks {
		m[fmt.Sprintf("%s/%d", t.Operator, t.Subtask)] = fmt.Sprintf("attempt %d on %s", t.Attempt, t.TaskManager)
	}
	return m
}

// waitEnd waits, across failovers, until the job is FINISHED, FAILED or
// CANCELED, and returns its status.
func (h *haCluster) waitEnd(jobID string, timeout time.Duration) failoverStatus {
	h.t.Helper()
	var st failoverStatus
	waitFor(h.t, timeout, "job "+jobID+" ended", func() bool {
		var ok bool
		st, ok = h.tryStatus(jobID)
		return ok && (st.State == "FINISHED" || st.State == "FAILED" || st.State == "CANCELED")
	})
	return st
}

// waitAllRunning waits until the job and every one of its tasks is
// RUNNING and returns its status.
func (h *haCluster) waitAllRunning(jobID string, timeout time.Duration) failoverStatus {
	h.t.Helper()
	var st failoverStatus
	waitFor(h.t, timeout, "job "+jobID+" and every task RUNNING", func() bool {
		var ok bool
		st, ok = h.tryStatus(jobID)
		if !ok || st.State != "RUNNING" || len(st.Tasks) == 0 {
			return false
		}
		for _, t := range st.Tasks {
			if t.State != "RUNNING" {
				return false
			}
		}
		return true
	})
	return st
}

// waitCompletedAbove waits until the leader lists a completed checkpoint
// with an id above id, and returns that id.
func (h *haCluster) waitCompletedAbove(jobID string, id int64, timeout time.Duration) int64 {
	h.t.Helper()
	var got int64
	waitFor(h.t, timeout, fmt.Sprintf("a checkpoint above %d completed", id), func() bool {
		var cps []checkpointJSON
		if !h.tryJSON(&cps, "checkpoints", jobID) {
			return false
		}
		for _, cp := range cps {
			if cp.Status == "COMPLETED" && cp.ID > id {
				got = max(got, cp.ID)
			}
		}
		return got > 0
	})
	return got
}

// latestCompleted is the highest completed checkpoint id the leader lists.
func (h *haCluster) latestCompleted(jobID string) int64 {
	h.t.Helper()
	var best int64
	for _, cp := range h.checkpoints(jobID) {
		if cp.Status == "COMPLETED" {
			best = max(best, cp.ID)
		}
	}
	return best
}

// checkpointLog records every checkpoint that `weir checkpoints` showed
// during a test, polled in the background across leaders, to check that
// checkpoint ids are never handed out twice and grow with time across
// leaders.
type checkpointLog struct {
	h     *haCluster
	jobID string
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	seen  map[int64]checkpointJSON // by id, the last view of each
	dup   []string                 // one id seen with two trigger times
	polls int
}

// watchCheckpoints polls `weir checkpoints` until the returned log's
// finish.
func (h *haCluster) watchCheckpoints(jobID string) *checkpointLog {
	l := &checkpointLog{h: h, jobID: jobID, stop: make(chan struct{}), done: make(chan struct{}), seen: map[int64]checkpointJSON{}}
	go func() {
		defer close(l.done)
		for {
			var cps []checkpointJSON
			if l.h.tryJSON(&cps, "checkpoints", jobID) {
				l.add(cps)
			}
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	h.t.Cleanup(l.finish)
	return l
}

func (l *checkpointLog) add(cps []checkpointJSON) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.polls++
	for _, cp := range cps {
		if cp.TriggerTime == "" {
			continue
		}
		if prev, ok := l.seen[cp.ID]; ok && prev.TriggerTime != cp.TriggerTime {
			l.dup = append(l.dup, fmt.Sprintf("checkpoint %d triggered at %s and at %s", cp.ID, prev.TriggerTime, cp.TriggerTime))
		}
		l.seen[cp.ID] = cp
	}
}

// finish stops the polling (it may be called twice).
func (l *checkpointLog) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// check stops the polling and checks that every checkpoint id was
// triggered once, and that ordered by id their trigger times strictly
// increase: a later leader never reuses or goes below an earlier one's
// ids. It returns the ids that completed.
func (l *checkpointLog) check(t testing.TB) []int64 {
	t.Helper()
	l.finish()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.dup {
		t.Errorf("checkpoint id handed out twice: %s", d)
	}
	ids := make([]int64, 0, len(l.seen))
	for id := range l.seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var prev time.Time
	var completedIDs []int64
	for i, id := range ids {
		cp := l.seen[id]
		ts, err := time.Parse(time.RFC3339Nano, cp.TriggerTime)
		if err != nil {
			t.Fatalf("checkpoint %d: trigger time %q: %v", id, cp.TriggerTime, err)
		}
		if i > 0 && !ts.After(prev) {
			t.Errorf("checkpoint %d triggered at %s, not after checkpoint %d at %s", id, cp.TriggerTime, ids[i-1], prev.Format(time.RFC3339Nano))
		}
		prev = ts
		if cp.Status == "COMPLETED" {
			completedIDs = append(completedIDs, id)
		}
	}
	if len(ids) == 0 {
		t.Fatalf("no checkpoint seen in %d polls of weir checkpoints", l.polls)
	}
	t.Logf("checkpoints seen in %d polls across leaders: ids %d..%d (%d ids, %d completed), each triggered once, in id order",
		l.polls, ids[0], ids[len(ids)-1], len(ids), len(completedIDs))
	return completedIDs
}

// etcdClient is a client of the test's etcd, to read the HA store behind
// the daemons' backs.
func (h *haCluster) etcdClient() *clientv3.Client { return h.etcd.Client() }

// jobResult reads the job's result from the HA store: its state, "" when
// none is recorded; and whether its graph is still stored.
func (h *haCluster) jobResult(cli *clientv3.Client, jobID string) (state string, graphStored bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/weir/" + haClusterID + "/"
	resp, err := cli.Get(ctx, prefix+"results/"+jobID)
	if err != nil {
		h.t.Fatalf("read the job result from etcd: %v", err)
	}
	if len(resp.Kvs) == 1 {
		var r struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
			h.t.Fatalf("job result %s: %v: %q", resp.Kvs[0].Key, err, resp.Kvs[0].Value)
		}
		state = r.State
	}
	g, err := cli.Get(ctx, prefix+"jobgraphs/"+jobID, clientv3.WithCountOnly())
	if err != nil {
		h.t.Fatalf("read the job graph pointer from etcd: %v", err)
	}
	return state, g.Count > 0
}

// storeLatestCheckpoint is the id of the job's latest completed
// checkpoint in the HA store, 0 if none.
func (h *haCluster) storeLatestCheckpoint(jobID string) int64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/weir/" + haClusterID + "/jobs/" + jobID + "/checkpoints/"
	resp, err := h.etcdClient().Get(ctx, prefix, clientv3.WithLastKey()...)
	if err != nil {
		h.t.Fatalf("read the latest checkpoint from etcd: %v", err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	key := string(resp.Kvs[0].Key)
	id, err := strconv.ParseInt(strings.TrimPrefix(key, prefix), 10, 64)
	if err != nil {
		h.t.Fatalf("checkpoint key %s: %v", key, err)
	}
	return id
}

// tmMetric sums the samples of a counter or gauge over the TaskManagers'
// metrics, by label set; TaskManagers that do not answer are left out.
func (h *haCluster) tmMetric(name string) map[string]float64 {
	h.t.Helper()
	sums := map[string]float64{}
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, p := range h.taskmanagers {
		if p.exited() {
			continue
		}
		resp, err := hc.Get("http://" + h.tmPorts[p] + "/metrics")
		if err != nil {
			h.t.Logf("metrics of %s: %v", p.name, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		s := bufio.NewScanner(bytes.NewReader(body))
		for s.Scan() {
			line := s.Text()
			if !strings.HasPrefix(line, name) {
				continue
			}
			rest := line[len(name):]
			labels := ""
			if strings.HasPrefix(rest, "{") {
				end := strings.Index(rest, "}")
				if end < 0 {
					continue
				}
				labels, rest = rest[:end+1], rest[end+1:]
			} else if !strings.HasPrefix(rest, " ") {
				continue // another metric whose name starts with this one
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				h.t.Fatalf("metrics of %s: %q: %v", p.name, line, err)
			}
			sums[labels] += v
		}
	}
	return sums
}

// runLog returns the log of the unit's run n (1 is the first), "" if it
// has not started.
func (u *jobManagerUnit) runLog(n int) string {
	data, _ := os.ReadFile(filepath.Join(u.h.dir, u.name+".log"))
	runs := strings.Split(string(data), "==== "+u.name+" started at ")
	if n < 1 || n >= len(runs) {
		return ""
	}
	return runs[n]
}

// logHas reports whether the log of the unit's latest run holds s.
func (u *jobManagerUnit) logHas(s string) bool {
	u.mu.Lock()
	n := u.runs
	u.mu.Unlock()
	return strings.Contains(u.runLog(n), s)
}
