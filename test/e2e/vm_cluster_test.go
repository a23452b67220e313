package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weirstream/weir/pkg/ha/hatest"
	"github.com/weirstream/weir/pkg/snapshot/s3/s3test"
)

// Issue 15, "Done when": the three-VM deployment of docs/deployment.md on
// this machine. Each VM is a loopback address of its own (vm1 127.0.0.11,
// vm2 127.0.0.12, vm3 127.0.0.13) with its own directory and its own
// config.yaml, made from deploy/vm/vmN.yaml and passed with --config, as
// the units do. vm1 and vm2 run a JobManager and a TaskManager each (vm1's
// JobManager leads first); vm3 runs a TaskManager, etcd, MinIO and
// Prometheus, so that killing the leader's host leaves etcd and S3 up (the
// shipped example has a three-member etcd and MinIO on vm1; one etcd and
// MinIO on vm3 are what a test can kill around). Prometheus scrapes the
// daemons with deploy/prometheus/prometheus.yml, its host names mapped to
// the loopback addresses.

// vmHost is one VM of the test: its address, directory and daemons.
type vmHost struct {
	name, ip string
	dir      string // its /var/lib/weir: working directory, config.yaml, logs
	config   string // its config.yaml

	mu       sync.Mutex
	down     bool       // killed: its supervisors start nothing more
	procs    []*process // the running process of each daemon, and Prometheus
	restarts []string   // "jobmanager after exit status 75", by the supervisor
}

// vmCluster is the three VMs, the CLI's list of JobManagers and what runs
// on vm3.
type vmCluster struct {
	*haCluster
	hosts      []*vmHost
	minio      *s3test.Server
	prometheus string // http://host:port
	dataDir    string // io.allowed-paths of every VM
}

// vmJMPort is the shipped jobmanager.rpc.port.
const vmJMPort = "6123"

// vmTestKeys shorten the failure detection of the shipped configuration
// for a test: the lease TTL (15 s shipped) bounds the election, and a new
// leader's reporting window is heartbeat.timeout (20 s by default), which
// must stay above the TTL (docs/high-availability.md). 5 s rides out
// etcd stalls of a few seconds on a loaded machine. Given with -D;
// everything else is the file's.
var vmTestKeys = []string{
	"high-availability.etcd.lease-ttl=5s",
	"heartbeat.interval=500ms",
	"heartbeat.timeout=10s",
	"taskmanager.registration.max-backoff=1s",
}

// newVMCluster starts etcd and MinIO on vm3, the JobManagers of vm1 (which
// leads) and vm2, the TaskManagers of vm1..vm3 and Prometheus on vm3, and
// waits until every daemon is registered and every target scraped.
func newVMCluster(t *testing.T) *vmCluster {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v := &vmCluster{dataDir: filepath.Join(root, "data")}
	for i := 1; i <= 3; i++ {
		h := &vmHost{name: fmt.Sprintf("vm%d", i), ip: fmt.Sprintf("127.0.0.%d", 10+i)}
		h.dir = filepath.Join(root, h.name)
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		v.hosts = append(v.hosts, h)
	}
	// The shipped ports are fixed; on a shared machine another process
	// may hold one: say which rather than fail obscurely later.
	for _, h := range v.hosts {
		for _, p := range []string{vmJMPort, "6122", "6121", "9249", "9250"} {
			l, err := net.Listen("tcp", net.JoinHostPort(h.ip, p))
			if err != nil {
				t.Fatalf("%s: the shipped port %s is taken on %s: %v", h.name, p, h.ip, err)
			}
			l.Close()
		}
	}
	vm3 := v.hosts[2]
	etcd := hatest.StartAt(t, vm3.ip)
	v.minio = s3test.StartAt(t, vm3.ip)
	// The shipped configuration's bucket.
	if err := v.minio.Client().MakeBucket(context.Background(), "weir", minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("minio: create bucket weir: %v", err)
	}
	// Runs after every process below is killed (cleanups run last first).
	t.Cleanup(func() { checkNoSecretInLogs(t, root, v.minio.SecretKey) })

	v.haCluster = &haCluster{cluster: &cluster{t: t, dir: root}, etcd: etcd, leaseTTL: 5 * time.Second}
	v.jmAddr = net.JoinHostPort(v.hosts[0].ip, vmJMPort) + "," + net.JoinHostPort(v.hosts[1].ip, vmJMPort)
	v.list = v.jmAddr
	t.Cleanup(v.stop)

	for i, h := range v.hosts {
		v.writeConfig(h, i+1, etcd.Endpoints())
	}
	// The metrics ports are the units' (deploy/systemd: -D
	// metrics.reporter.prom.port, JobManager 9249, TaskManager 9250), the
	// targets of the shipped prometheus.yml.
	vm1, vm2 := v.hosts[0], v.hosts[1]
	v.startDaemon(vm1, "jobmanager", "9249")
	v.waitLeaderBy(time.Now().Add(60*time.Second), 0) // vm1's leads: it is alone
	v.startDaemon(vm2, "jobmanager", "9249")
	for _, h := range v.hosts {
		v.startDaemon(h, "taskmanager", "9250")
	}
	v.waitTaskManagers(3)
	if l := v.leader(); l.addr != net.JoinHostPort(vm1.ip, vmJMPort) {
		t.Fatalf("%s leads, want vm1's JobManager, started first", l.addr)
	}
	v.startPrometheus(vm3)
	return v
}

// writeConfig writes the VM's config.yaml: deploy/vm/vmN.yaml with the
// VM's loopback address for its 10.0.0.x, the test's etcd and MinIO, and
// a data directory shared by the VMs instead of /var/lib/weir/data (a
// job's file-sink writes one path on every TaskManager running its
// subtasks: on VMs each its own disk, here one directory for all).
func (v *vmCluster) writeConfig(h *vmHost, n int, etcd []string) {
	t := v.t
	t.Helper()
	data, err := os.ReadFile(repoFile(t.(*testing.T), fmt.Sprintf("deploy/vm/vm%d.yaml", n)))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	replace := func(re, with string) {
		t.Helper()
		r := regexp.MustCompile(re)
		if !r.MatchString(conf) {
			t.Fatalf("deploy/vm/vm%d.yaml: nothing matches %s: the test maps what the file no longer has", n, re)
		}
		conf = r.ReplaceAllLiteralString(conf, with)
	}
	replace(`(?m)^high-availability\.etcd\.endpoints: .*$`, "high-availability.etcd.endpoints: "+strings.Join(etcd, ","))
	replace(`(?m)^s3\.endpoint: .*$`, "s3.endpoint: "+v.minio.URL)
	replace(`/var/lib/weir/data`, v.dataDir)
	for i, vm := range v.hosts {
		conf = strings.ReplaceAll(conf, fmt.Sprintf("10.0.0.%d", 11+i), vm.ip)
	}
	if strings.Contains(conf, "10.0.0.") {
		t.Fatalf("deploy/vm/vm%d.yaml: an address left unmapped:\n%s", n, conf)
	}
	h.config = filepath.Join(h.dir, "config.yaml")
	if err := os.WriteFile(h.config, []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
}

// startDaemon starts a daemon on h as its unit does (--config, the S3
// credentials in the environment as /etc/weir/environment gives them),
// waits until it serves metrics on metricsPort, and supervises it as
// systemd would (Restart=on-failure): a JobManager that loses its
// leadership (an etcd stall on a loaded machine) exits 75 and comes back
// as a standby, until the host is killed.
func (v *vmCluster) startDaemon(h *vmHost, binary, metricsPort string) {
	t := v.t
	t.Helper()
	p, err := v.spawn(h, binary, metricsPort)
	if err != nil {
		t.Fatal(err)
	}
	go v.supervise(h, binary, metricsPort, p)
	healthz := "http://" + net.JoinHostPort(h.ip, metricsPort) + "/healthz"
	waitFor(t, 30*time.Second, p.name+" serving "+healthz, func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %s", p.name, p.cmd.ProcessState)
		}
		code, _ := probe(healthz)
		return code == http.StatusOK
	})
}

// spawn starts one run of a daemon, its output appended to
// <host dir>/<binary>.log under a header line. It does not fail the test,
// so that a supervisor may call it.
func (v *vmCluster) spawn(h *vmHost, binary, metricsPort string) (*process, error) {
	name := h.name + "-" + binary
	logPath := filepath.Join(h.dir, binary+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "==== %s started at %s ====\n", name, time.Now().Format(time.RFC3339Nano))
	args := []string{"--config", h.config, "-D", "metrics.reporter.prom.port=" + metricsPort}
	for _, kv := range vmTestKeys {
		args = append(args, "-D", kv)
	}
	cmd := exec.Command(filepath.Join(binDir, binary), args...)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+v.minio.AccessKey, "AWS_SECRET_ACCESS_KEY="+v.minio.SecretKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		logFile.Close()
		return nil, fmt.Errorf("%s: the host is down", name)
	}
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
	h.procs = append(h.procs, p)
	return p, nil
}

// supervise starts the daemon again each time it exits, after the HA
// harness's restartDelay (systemd's RestartSec is 5 s in the units; a
// test need not wait that long), until the host is down.
func (v *vmCluster) supervise(h *vmHost, binary, metricsPort string, p *process) {
	for {
		<-p.done
		time.Sleep(restartDelay)
		h.mu.Lock()
		if h.down {
			h.mu.Unlock()
			return
		}
		h.procs = slices.DeleteFunc(h.procs, func(q *process) bool { return q == p })
		h.restarts = append(h.restarts, fmt.Sprintf("%s after %s", binary, p.cmd.ProcessState))
		h.mu.Unlock()
		next, err := v.spawn(h, binary, metricsPort)
		if err != nil {
			return
		}
		p = next
	}
}

// startPrometheus starts Prometheus on h with a copy of
// deploy/prometheus/prometheus.yml whose host names are the VMs'
// addresses, and waits until it scrapes every target.
func (v *vmCluster) startPrometheus(h *vmHost) {
	t := v.t
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (%v): .ci/tools.sh installs it (Debian package prometheus)", err)
	}
	data, err := os.ReadFile(repoFile(t.(*testing.T), "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for _, vm := range v.hosts {
		conf = regexp.MustCompile(`\b`+vm.name+`:`).ReplaceAllString(conf, vm.ip+":")
	}
	// The test's only change besides the addresses: scrape every second,
	// not every 15 s, so that a rate has samples within seconds.
	intervals := regexp.MustCompile(`(?m)^(\s*(?:scrape|evaluation)_interval:) .*$`)
	if !intervals.MatchString(conf) {
		t.Fatalf("deploy/prometheus/prometheus.yml: no scrape_interval to lower:\n%s", conf)
	}
	conf = intervals.ReplaceAllString(conf, "$1 1s")
	path := filepath.Join(h.dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(h.ip, strconv.Itoa(freePortOnAll(t, []string{h.ip})))
	logPath := filepath.Join(h.dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(h.dir, "prometheus"),
		"--web.listen-address="+addr)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	p := &process{name: h.name + "-prometheus", cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	v.prometheus = "http://" + addr
	waitFor(t, 60*time.Second, "prometheus ready at "+addr, func() bool {
		if p.exited() {
			t.Fatalf("prometheus exited: %s", p.cmd.ProcessState)
		}
		code, _ := probe(v.prometheus + "/-/ready")
		return code == http.StatusOK
	})
	// Every daemon is a target, and every target is up: the shipped file
	// scrapes the whole cluster.
	var targets map[string]float64
	waitFor(t, 60*time.Second, "prometheus scraping every daemon", func() bool {
		targets = map[string]float64{}
		res, err := v.query("up")
		if err != nil {
			return false
		}
		for _, s := range res {
			targets[s.Metric["job"]+" "+s.Metric["instance"]] = s.value(t)
		}
		for _, want := range v.metricsTargets() {
			if targets[want] != 1 {
				return false
			}
		}
		return true
	})
	if len(targets) != len(v.metricsTargets()) {
		t.Fatalf("prometheus scrapes %v, want exactly the daemons %v", targets, v.metricsTargets())
	}
}

// latestInStore is the id of the job's latest completed checkpoint in the
// HA store (high-availability.cluster-id prod, as shipped), 0 if none.
func (v *vmCluster) latestInStore(jobID string) int64 {
	t := v.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/weir/prod/jobs/" + jobID + "/checkpoints/"
	resp, err := v.etcdClient().Get(ctx, prefix, clientv3.WithLastKey()...)
	if err != nil {
		t.Fatalf("read the latest checkpoint from etcd: %v", err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatalf("no checkpoint of job %s under %s in etcd", jobID, prefix)
	}
	key := string(resp.Kvs[0].Key)
	id, err := strconv.ParseInt(strings.TrimPrefix(key, prefix), 10, 64)
	if err != nil {
		t.Fatalf("checkpoint key %s: %v", key, err)
	}
	return id
}

// metricsTargets are the daemons, "job instance" as Prometheus labels
// them with the shipped file.
func (v *vmCluster) metricsTargets() []string {
	return []string{
		"weir-jobmanager 127.0.0.11:9249", "weir-jobmanager 127.0.0.12:9249",
		"weir-taskmanager 127.0.0.11:9250", "weir-taskmanager 127.0.0.12:9250", "weir-taskmanager 127.0.0.13:9250",
	}
}

// killHost SIGKILLs every process of h at once: the VM is gone.
func (v *vmCluster) killHost(h *vmHost) {
	h.mu.Lock()
	h.down = true
	procs := slices.Clone(h.procs)
	h.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Kill()
	}
	for _, p := range procs {
		<-p.done
	}
}

// stop kills every process and shows the logs if the test failed.
func (v *vmCluster) stop() {
	for _, h := range v.hosts {
		v.killHost(h)
	}
	for _, h := range v.hosts {
		h.mu.Lock()
		if len(h.restarts) > 0 {
			v.t.Logf("%s: daemons restarted by their supervisor: %v", h.name, h.restarts)
		}
		h.mu.Unlock()
	}
	if !v.t.Failed() {
		return
	}
	for _, h := range v.hosts {
		for _, f := range []string{"jobmanager.log", "taskmanager.log", "prometheus.log"} {
			if path := filepath.Join(h.dir, f); fileExists(path) {
				v.dumpLog(h.name+"-"+strings.TrimSuffix(f, ".log"), path)
			}
		}
	}
	if v.minio != nil {
		v.t.Logf("==== MinIO log (end) ====\n%s", lastBytes(v.minio.Log(), 4096))
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value(t testing.TB) float64 {
	t.Helper()
	str, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("prometheus sample %v: value %v: %v", s.Metric, s.Value[1], err)
	}
	return f
}

// query runs an instant query through Prometheus's HTTP API.
func (v *vmCluster) query(q string) ([]promSample, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(v.prometheus + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %s: HTTP %d: %v: %s", q, resp.StatusCode, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", q, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// The three-VM cluster of docs/deployment.md survives the loss of the
// leader's VM: a checkpointed exactly-once job (checkpoints and the HA
// store in S3) runs over the three TaskManagers; vm1, which runs the
// leading JobManager and a TaskManager with some of the job's subtasks,
// is SIGKILLed whole (vm2, should the leadership have moved there
// before). The other one's JobManager leads, restarts the job from the
// latest checkpoint of the store, and the job finishes with every
// (key, seq) once and count == seq + 1. Meanwhile Prometheus, with the
// shipped scrape configuration, shows the job checkpointing, processing
// records and the restarts `weir status` counts, and every expression of
// the shipped Grafana dashboard returns data; the survivors are ready.
func TestThreeHostCluster(t *testing.T) {
	v := newVMCluster(t)
	vm1, vm2, vm3 := v.hosts[0], v.hosts[1], v.hosts[2]
	out := filepath.Join(v.dataDir, "counts")
	// 15 keys x 10000 over 3 source subtasks (5 keys each) at 2,000
	// records/s per subtask: 25 s without the failover. Parallelism 3
	// over three TaskManagers spreads one slot on each
	// (cluster.evenly-spread-out-slots), so the leader's host runs some.
	const keys, count = 15, 10000
	const jobName = "vm-cluster"
	job := keyedJob{
		name: jobName, parallelism: 3,
		// The cluster's settings (checkpoints in s3://weir/checkpoints,
		// exactly-once, its restart strategy) but for the interval: the
		// shipped 10 s is longer than the job.
		config: []string{"execution.checkpointing.interval: 1s"},
		keys:   keys, count: count, rate: 2000, out: out,
	}.write(v.cluster)
	jobID := strings.TrimSpace(v.mustWeir("run", "-d", job))
	v.waitAllRunning(jobID, 60*time.Second)
	var tms []taskManagerJSON
	v.weirJSON(&tms, "taskmanagers")
	onVM := map[string]string{} // TaskManager id -> VM
	for _, tm := range tms {
		for _, h := range v.hosts {
			if strings.HasPrefix(tm.Address, h.ip+":") {
				onVM[tm.ID] = h.name
			}
		}
	}
	v.waitCheckpoints(jobID, 3)
	// high-availability.storageDir is s3://weir/ha: the job's graph is there.
	if objs := v.minio.Objects("weir", "ha/"); len(objs) == 0 {
		t.Errorf("nothing in s3://weir/ha/ while the job runs with high-availability.storageDir s3://weir/ha")
	}
	// vm1's JobManager led first; an etcd stall may have moved the
	// leadership to vm2's since (the one that lost it exited 75 and came
	// back as a standby): the host to kill is the leader's.
	old := v.leader()
	var gone, survivor *vmHost
	for _, h := range []*vmHost{vm1, vm2} {
		if old.addr == net.JoinHostPort(h.ip, vmJMPort) {
			gone = h
		} else {
			survivor = h
		}
	}
	if gone == nil {
		t.Fatalf("%s leads, not a JobManager of vm1 or vm2", old.addr)
	}
	before := v.waitAllRunning(jobID, 60*time.Second)
	var onGone []string
	for _, task := range before.Tasks {
		if onVM[task.TaskManager] == gone.name {
			onGone = append(onGone, fmt.Sprintf("%s/%d", task.Operator, task.Subtask))
		}
	}
	if len(onGone) == 0 {
		t.Fatalf("no subtask runs on %s's TaskManager (TaskManagers %+v, tasks %v): the kill would not restart the job",
			gone.name, tms, before.attempts())
	}

	killed := time.Now()
	v.killHost(gone)
	// No one writes to the store until the new leader (a lease TTL away)
	// completes a checkpoint: this is the one it restarts from.
	latest := v.latestInStore(jobID)
	nl := v.waitLeaderBy(killed.Add(60*time.Second), old.epoch)
	if nl.addr != net.JoinHostPort(survivor.ip, vmJMPort) {
		t.Fatalf("after the loss of %s %s leads, want %s's JobManager", gone.name, nl.addr, survivor.name)
	}
	t.Logf("%s (leader epoch %d, subtasks %v) killed; %s leads at epoch %d; the store's latest checkpoint is %d",
		gone.name, old.epoch, onGone, survivor.name, nl.epoch, latest)

	// After the recovery, while the job runs.
	v.waitAllRunning(jobID, 60*time.Second)
	v.waitCompletedAbove(jobID, latest, 60*time.Second)
	st, ok := v.tryStatus(jobID)
	if !ok {
		t.Fatal("no status from the new leader")
	}
	want := fmt.Sprintf("JobManager failover: the new leader restarts the job from checkpoint %d: ", latest)
	if !slices.ContainsFunc(st.Exceptions, func(e exceptionJSON) bool { return strings.HasPrefix(e.Message, want) }) {
		t.Errorf("no exception %q...: %+v", want, st.Exceptions)
	}
	if st.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1 (exceptions %+v)", st.Restarts, st.Exceptions)
	}
	v.checkPrometheus(jobID, jobName)
	registered := `^ok: registered with the JobManager ` + regexp.QuoteMeta(nl.addr) + ` \(epoch \d+\)\n$`
	for _, probeAt := range []struct{ addr, re string }{
		{net.JoinHostPort(survivor.ip, "9249"), `^ok: leader \(epoch \d+\)\n$`},
		{net.JoinHostPort(survivor.ip, "9250"), registered},
		{net.JoinHostPort(vm3.ip, "9250"), registered},
	} {
		waitProbeMatch(t, "http://"+probeAt.addr+"/readyz", http.StatusOK, regexp.MustCompile(probeAt.re))
	}
	if now, ok := v.tryStatus(jobID); ok && (now.State == "FINISHED" || now.State == "FAILED" || now.State == "CANCELED") {
		t.Fatalf("the job is %s after the checks, which must see it running: make it longer", now.State)
	}

	end := v.waitEnd(jobID, 120*time.Second)
	if end.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", end.State, end.StatusMessage)
	}
	t.Logf("FINISHED with restarts %d; exceptions %+v", end.Restarts, end.Exceptions)
	for _, cp := range v.checkpoints(jobID) {
		if cp.Status == "COMPLETED" && !strings.HasPrefix(cp.Path, "s3://weir/checkpoints/"+jobID+"/chk-") {
			t.Errorf("checkpoint %d at %q, want it in s3://weir/checkpoints/%s/", cp.ID, cp.Path, jobID)
		}
	}
	checkKeyedCounts(t, out, keys, count)
}

// checkPrometheus checks, through Prometheus's query API, the running
// job's metrics: checkpoints completed and records flowing, the restarts
// `weir status` counts, and data for every expression of the shipped
// dashboard, $job being the job's name. Every check is polled until it
// holds, all within one deadline; the failures are named with what each
// query returned last.
func (v *vmCluster) checkPrometheus(jobID, jobName string) {
	t := v.t
	t.Helper()
	type check struct {
		name, q string
		ok      func([]promSample) bool
		last    string
	}
	one := func(want func(float64) bool) func([]promSample) bool {
		return func(res []promSample) bool { return len(res) == 1 && want(res[0].value(t)) }
	}
	sel := fmt.Sprintf(`{job_id=%q,job_name=%q}`, jobID, jobName)
	statusRestarts := -1 // what weir status said last
	checks := []*check{
		{name: "completed checkpoints > 0", q: "weir_job_checkpoints_completed_total" + sel,
			ok: one(func(f float64) bool { return f > 0 })},
		{name: "records out per second > 0", q: "sum(rate(weir_task_records_out_total" + sel + "[10s]))",
			ok: one(func(f float64) bool { return f > 0 })},
		{name: "restarts == weir status's restarts", q: "weir_job_restarts_total" + sel,
			ok: one(func(f float64) bool {
				st, ok := v.tryStatus(jobID)
				statusRestarts = st.Restarts
				return ok && f == float64(st.Restarts)
			})},
	}
	// $__rate_interval is Grafana's; 10 s holds several 1 s scrapes.
	vars := strings.NewReplacer("$__rate_interval", "10s", "${__rate_interval}", "10s",
		"${job}", regexp.QuoteMeta(jobName), "$job", regexp.QuoteMeta(jobName))
	for _, e := range dashboardExprs(t.(*testing.T)) {
		checks = append(checks, &check{name: fmt.Sprintf("dashboard panel %q returns data", e.panel), q: vars.Replace(e.expr),
			ok: func(res []promSample) bool { return len(res) > 0 }})
	}
	pending := slices.Clone(checks)
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		pending = slices.DeleteFunc(pending, func(c *check) bool {
			res, err := v.query(c.q)
			if err != nil {
				c.last = err.Error()
				return false
			}
			ok := c.ok(res)
			c.last = fmt.Sprintf("%d series", len(res))
			if len(res) == 1 {
				c.last = fmt.Sprintf("1 series, value %v", res[0].Value[1])
			}
			if c == checks[2] {
				c.last += fmt.Sprintf(" (weir status: restarts %d)", statusRestarts)
			}
			return ok
		})
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, c := range checks[:3] {
		t.Logf("prometheus: %s: %s", c.q, c.last)
	}
	for _, c := range pending {
		t.Errorf("prometheus: %s: %s: got %s", c.q, c.name, c.last)
	}
	t.Logf("prometheus: %d of %d checks hold (%d expressions of deploy/grafana/weir.json)",
		len(checks)-len(pending), len(checks), len(checks)-3)
}
