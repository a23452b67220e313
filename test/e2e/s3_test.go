package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/snapshot/s3"
	"github.com/weirstream/weir/pkg/snapshot/s3/s3test"
)

// s3Cluster starts a MinIO server and a cluster whose daemons get its s3.*
// keys, as an operator would give them (-D). This process registers the
// same driver, to read what the cluster wrote. When the test ends it checks
// that no log file of the run holds the secret key.
func s3Cluster(t *testing.T, n, slots int) (*cluster, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t)
	return s3ClusterVia(t, n, slots, srv, srv.URL), srv
}

// s3ClusterVia starts a cluster whose daemons reach srv at endpoint (a
// proxy in front of it).
func s3ClusterVia(t *testing.T, n, slots int, srv *s3test.Server, endpoint string) *cluster {
	t.Helper()
	conf := srv.Config()
	conf["s3.endpoint"] = endpoint
	cfg, _, err := config.FromMap(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Register(cfg); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, v := range conf {
		keys = append(keys, k+"="+v)
	}
	slices.Sort(keys)
	c := newCluster(t, n, slots, keys...)
	t.Cleanup(func() { checkNoSecretInLogs(t, c.dir, srv.SecretKey) })
	return c
}

// checkNoSecretInLogs fails the test if any log file under dir holds the
// secret.
func checkNoSecretInLogs(t *testing.T, dir, secret string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".log") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if strings.Contains(string(data), secret) {
			t.Errorf("log file %s holds the S3 secret key", p)
		}
		return nil
	})
	if err != nil {
		t.Errorf("read logs: %v", err)
	}
	if n == 0 {
		t.Errorf("no log files under %s to check", dir)
	}
}

// s3Job is faultJob with 4096 keys (so that keyed state is larger than the
// inline threshold and goes to S3 objects), checkpoints in
// s3://<bucket>/cp and extra config.
func s3Job(c *cluster, srv *s3test.Server, name string, count, rate int, out string, extra ...string) string {
	return keyedJob{
		name: name,
		config: append([]string{
			"execution.checkpointing.interval: 300ms",
			"execution.checkpointing.dir: s3://" + srv.Bucket + "/cp",
			"restart-strategy.type: fixed-delay",
			"restart-strategy.fixed-delay.attempts: 10",
			"restart-strategy.fixed-delay.delay: 500ms",
		}, extra...),
		keys: 4096, count: count, rate: rate, out: out,
	}.write(c)
}

// checkNoOrphans waits until the bucket holds exactly the objects of the
// retained checkpoints and savepoints: every object is in a directory with
// a _metadata that references it (or is that _metadata), every such
// directory is a completed checkpoint or savepoint of one of the jobs (or
// one of the extra directories, copies the test made), and no multipart
// upload is left open.
func checkNoOrphans(t *testing.T, c *cluster, srv *s3test.Server, jobIDs []string, extra ...string) {
	t.Helper()
	retained := map[string]bool{}
	for _, d := range extra {
		retained[d] = true
	}
	for _, id := range jobIDs {
		for _, cp := range c.checkpoints(id) {
			if cp.Status == "COMPLETED" {
				retained[cp.Path] = true
			}
		}
	}
	var problem string
	deadline := time.Now().Add(30 * time.Second)
	for {
		problem = orphans(t, srv, retained)
		if problem == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if problem != "" {
		t.Fatalf("bucket %s after the test: %s", srv.Bucket, problem)
	}
	t.Logf("bucket %s: %d objects, all of retained checkpoints and savepoints", srv.Bucket, len(srv.Objects(srv.Bucket, "")))
}

func orphans(t *testing.T, srv *s3test.Server, retained map[string]bool) string {
	t.Helper()
	if u := srv.Uploads(srv.Bucket, ""); len(u) > 0 {
		return fmt.Sprintf("multipart uploads left open: %v", u)
	}
	dirs := map[string][]string{}
	for _, k := range srv.Objects(srv.Bucket, "") {
		dirs[path.Dir(k)] = append(dirs[path.Dir(k)], path.Base(k))
	}
	for dir, names := range dirs {
		p := "s3://" + srv.Bucket + "/" + dir
		if !slices.Contains(names, snapshot.MetadataFileName) {
			return fmt.Sprintf("%s holds %v without a _metadata (orphans)", p, names)
		}
		if !retained[p] {
			return fmt.Sprintf("%s is not a retained checkpoint or savepoint (retained: %v)", p, retained)
		}
		m, err := snapshot.LoadMetadata(context.Background(), p)
		if err != nil {
			return err.Error()
		}
		want := []string{snapshot.MetadataFileName}
		for _, op := range m.Operators {
			for _, st := range op.Subtasks {
				for _, o := range st.State {
					if !o.IsInline() {
						want = append(want, o.Path)
					}
				}
			}
		}
		slices.Sort(want)
		slices.Sort(names)
		if !slices.Equal(names, want) {
			return fmt.Sprintf("%s holds %v, its _metadata references %v", p, names, want)
		}
	}
	return ""
}

// Exactly-once under SIGKILL with checkpoints in S3.
func TestS3ExactlyOnceUnderKill(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	c, srv := s3Cluster(t, 3, 2)
	out := filepath.Join(c.dir, "out")
	// 4096 keys x 80 at 10,000 records/s per subtask: 16 s without failures.
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", s3Job(c, srv, "s3-kill", 80, 10000, out)))
	victim := c.runningOn(jobID, rnd)
	c.waitCheckpoints(jobID, 3)
	c.processOf(victim).kill()
	t.Logf("killed TaskManager %s", victim)

	st := c.waitState(jobID, 120*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	if f := c.failover(jobID); f.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1 after the kill", f.Restarts)
	}
	cps := c.checkpoints(jobID)
	for _, cp := range cps {
		if cp.Status == "COMPLETED" && !strings.HasPrefix(cp.Path, "s3://"+srv.Bucket+"/cp/"+jobID+"/chk-") {
			t.Errorf("checkpoint %d at %q, want it in s3://%s/cp/%s/", cp.ID, cp.Path, srv.Bucket, jobID)
		}
	}
	checkKeyedCounts(t, out, 4096, 80)
	checkNoOrphans(t, c, srv, []string{jobID})
}

// A savepoint to S3, stop; the savepoint's objects copied (server-side, by
// the MinIO client, as an operator would with any S3 tool) to another
// prefix; resumed from the copy at another parallelism: exactly-once.
func TestS3SavepointCopyResumeRescale(t *testing.T) {
	c, srv := s3Cluster(t, 2, 3)
	out := filepath.Join(c.dir, "out")
	spDir := "s3://" + srv.Bucket + "/savepoints"
	job := func(name string, p int) string {
		return keyedJob{
			name: name, stateful: p, maxParallelism: 128,
			config: []string{
				"execution.checkpointing.interval: 300ms",
				"execution.checkpointing.dir: s3://" + srv.Bucket + "/cp",
			},
			// 4096 keys: the keyed state is larger than the inline
			// threshold, so the savepoint has state objects to copy.
			keys: 4096, rate: 2000, out: out,
		}.write(c)
	}

	job1 := strings.TrimSpace(c.mustWeir("run", "-d", job("s3-run1", 2)))
	c.waitState(job1, 60*time.Second, "RUNNING")
	c.waitCommitted(out, 2*4096)
	sp1 := lastLine(c.mustWeir("stop", "--savepoint-path", spDir, job1))
	c.waitState(job1, 60*time.Second, "FINISHED")
	if !strings.HasPrefix(sp1, spDir+"/savepoint-") {
		t.Fatalf("savepoint at %q, want it in %s", sp1, spDir)
	}

	// Copy every object of the savepoint to another prefix.
	ctx := context.Background()
	from := strings.TrimPrefix(sp1, "s3://"+srv.Bucket+"/") + "/"
	moved := "s3://" + srv.Bucket + "/elsewhere/sp1"
	objs := srv.Objects(srv.Bucket, from)
	if !slices.Contains(objs, from+snapshot.MetadataFileName) || len(objs) < 2 {
		t.Fatalf("savepoint %s has no _metadata or no state object: %v", sp1, objs)
	}
	for _, k := range objs {
		dst := minio.CopyDestOptions{Bucket: srv.Bucket, Object: "elsewhere/sp1/" + strings.TrimPrefix(k, from)}
		if _, err := srv.Client().CopyObject(ctx, dst, minio.CopySrcOptions{Bucket: srv.Bucket, Object: k}); err != nil {
			t.Fatal(err)
		}
	}

	// weir reads the copy straight from S3 with the daemons' keys (-D).
	inspectArgs := []string{"checkpoint", "inspect", "--verify", "-o", "json"}
	for k, v := range srv.Config() {
		inspectArgs = append(inspectArgs, "-D", k+"="+v)
	}
	stdout, stderr, code := c.weir(append(inspectArgs, moved)...)
	var insp struct {
		Kind      string `json:"kind"`
		JobID     string `json:"job_id"`
		SizeBytes int64  `json:"size_bytes"`
		Operators []struct {
			ID          string `json:"id"`
			Parallelism int    `json:"parallelism"`
		} `json:"operators"`
		Valid    bool     `json:"valid"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &insp); err != nil || code != 0 {
		t.Fatalf("weir checkpoint inspect %s: exit %d, %v\nstdout: %s\nstderr: %s", moved, code, err, stdout, stderr)
	}
	if insp.Kind != "savepoint" || insp.JobID != job1 || !insp.Valid || len(insp.Problems) != 0 || len(insp.Operators) != 3 || insp.SizeBytes == 0 {
		t.Errorf("inspect %s: %+v, want a valid savepoint of job %s with 3 operators", moved, insp, job1)
	}
	if strings.Contains(stdout+stderr, srv.SecretKey) {
		t.Errorf("weir checkpoint inspect printed the secret key")
	}

	job2 := strings.TrimSpace(c.mustWeir("run", "-d", "--from-savepoint", moved, job("s3-run2", 3)))
	c.waitState(job2, 60*time.Second, "RUNNING")
	c.waitCommitted(out, 5*4096)
	sp2 := lastLine(c.mustWeir("stop", "--savepoint-path", spDir, job2))
	c.waitState(job2, 60*time.Second, "FINISHED")

	total := checkGapless(t, out, 4096)
	t.Logf("2 runs (p=2, then 3 from a copy of %s at %s): %d records, every key gapless and duplicate-free, count == seq+1", sp1, moved, total)
	checkNoOrphans(t, c, srv, []string{job1, job2}, moved)
	if sp2 == "" {
		t.Fatal("no second savepoint")
	}
}

// MinIO stopped for several checkpoint intervals, with more tolerable
// failed checkpoints than that: the checkpoints fail with a reason naming
// S3, the job keeps RUNNING; MinIO restarted, checkpoints complete again
// and the output is exactly-once.
func TestS3Outage(t *testing.T) {
	c, srv := s3Cluster(t, 2, 2)
	out := filepath.Join(c.dir, "out")
	// 4096 keys x 80 at 2,000 records/s per subtask: 80 s without the outage.
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", s3Job(c, srv, "s3-outage", 80, 2000, out,
		"execution.checkpointing.timeout: 2s",
		"execution.checkpointing.tolerable-failed-checkpoints: 1000")))
	c.waitState(jobID, 60*time.Second, "RUNNING")
	c.waitCheckpoints(jobID, 2)

	srv.Stop()
	failedBefore := failedS3(c.checkpoints(jobID), srv.Bucket)
	waitFor(t, 60*time.Second, "3 checkpoints failed naming S3 while MinIO is down", func() bool {
		return failedS3(c.checkpoints(jobID), srv.Bucket) >= failedBefore+3
	})
	if st := c.status(jobID); st.State != "RUNNING" {
		t.Fatalf("job is %s while S3 is down, want RUNNING: %s", st.State, st.StatusMessage)
	}
	if f := c.failover(jobID); f.Restarts != 0 {
		t.Errorf("the outage restarted the job %d time(s); it should only fail checkpoints", f.Restarts)
	}
	logFailure(t, c.checkpoints(jobID), "s3://"+srv.Bucket)
	srv.Restart()
	c.waitCheckpoints(jobID, 3)
	checkFailedDeleted(t, c, srv, jobID)

	st := c.waitState(jobID, 180*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	checkKeyedCounts(t, out, 4096, 80)
	checkNoOrphans(t, c, srv, []string{jobID})
}

// failedS3 counts the failed checkpoints whose reason names the bucket and S3.
func failedS3(cps []checkpointJSON, bucket string) (n int) {
	for _, cp := range cps {
		if cp.Status == "FAILED" && strings.Contains(cp.Failure, "s3://"+bucket) {
			n++
		}
	}
	return n
}

// MinIO made slow by a latency toxic between weir and MinIO, so that
// checkpoints exceed their timeout: they fail as expired, the job keeps
// running, and their objects are deleted. Without the toxic, checkpoints
// complete again and the output is exactly-once.
func TestS3SlowStorageTimeouts(t *testing.T) {
	srv := s3test.Start(t)
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		"minio", "127.0.0.1:0", srv.Endpoint)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	c := s3ClusterVia(t, 2, 2, srv, "http://"+proxy.Listen)
	out := filepath.Join(c.dir, "out")
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", s3Job(c, srv, "s3-slow", 80, 3000, out,
		"execution.checkpointing.timeout: 1s",
		"execution.checkpointing.tolerable-failed-checkpoints: 1000")))
	c.waitState(jobID, 60*time.Second, "RUNNING")
	c.waitCheckpoints(jobID, 2)

	// Every chunk of every response from MinIO is 1.5 s late: no
	// checkpoint can write its state and _metadata within 1 s.
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(
		`{"name": "slow", "type": "latency", "stream": "downstream", "attributes": {"latency": 1500}}`)); err != nil {
		t.Fatal(err)
	}
	expiredBefore := expired(c.checkpoints(jobID))
	waitFor(t, 60*time.Second, "3 checkpoints expired while MinIO is slow", func() bool {
		return expired(c.checkpoints(jobID)) >= expiredBefore+3
	})
	if st := c.status(jobID); st.State != "RUNNING" {
		t.Fatalf("job is %s while S3 is slow, want RUNNING: %s", st.State, st.StatusMessage)
	}
	logFailure(t, c.checkpoints(jobID), "CHECKPOINT_EXPIRED")
	if err := proxy.Toxics.RemoveToxic(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	c.waitCheckpoints(jobID, 3)
	checkFailedDeleted(t, c, srv, jobID)

	st := c.waitState(jobID, 180*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	checkKeyedCounts(t, out, 4096, 80)
	checkNoOrphans(t, c, srv, []string{jobID})
}

// expired counts the checkpoints that failed by exceeding their timeout.
func expired(cps []checkpointJSON) (n int) {
	for _, cp := range cps {
		if cp.Status == "FAILED" && strings.HasPrefix(cp.Failure, "CHECKPOINT_EXPIRED") {
			n++
		}
	}
	return n
}

// logFailure logs the reason of the newest failed checkpoint that holds want.
func logFailure(t *testing.T, cps []checkpointJSON, want string) {
	t.Helper()
	for _, cp := range cps {
		if cp.Status == "FAILED" && strings.Contains(cp.Failure, want) {
			t.Logf("checkpoint %d failed: %s", cp.ID, cp.Failure)
			return
		}
	}
}

// checkFailedDeleted waits until no object is left in the directory of
// any failed checkpoint of the running job.
func checkFailedDeleted(t *testing.T, c *cluster, srv *s3test.Server, jobID string) {
	t.Helper()
	var failed []int64
	for _, cp := range c.checkpoints(jobID) {
		if cp.Status == "FAILED" {
			failed = append(failed, cp.ID)
		}
	}
	if len(failed) == 0 {
		t.Fatal("no failed checkpoint in the job's list")
	}
	var left []string
	waitFor(t, 30*time.Second, "the objects of the failed checkpoints deleted", func() bool {
		left = left[:0]
		for _, id := range failed {
			left = append(left, srv.Objects(srv.Bucket, fmt.Sprintf("cp/%s/chk-%d/", jobID, id))...)
		}
		return len(left) == 0
	})
	t.Logf("failed checkpoints %v: no object left", failed)
}
