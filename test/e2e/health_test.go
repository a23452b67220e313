package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The probes on the metrics port (docs/deployment.md): /healthz while a
// daemon serves, /readyz when it does its part. A TaskManager started
// before its JobManager is live but not ready, and becomes ready when it
// registers; the JobManager is ready as the leader with or without
// TaskManagers.
func TestHealthProbes(t *testing.T) {
	c := &cluster{t: t, dir: t.TempDir()}
	jmPort := strconv.Itoa(freePort(t))
	jmAddr := "127.0.0.1:" + jmPort
	c.jmAddr = jmAddr
	metricsPorts := map[string]string{"jobmanager": strconv.Itoa(freePort(t)), "taskmanager-1": strconv.Itoa(freePort(t))}
	c.perProcess = func(name string) []string { return []string{"metrics.reporter.prom.port=" + metricsPorts[name]} }
	probeURL := func(name, path string) string { return "http://127.0.0.1:" + metricsPorts[name] + path }

	tm := c.start("taskmanager-1", "taskmanager",
		"-D", "jobmanager.rpc.address=127.0.0.1", "-D", "jobmanager.rpc.port="+jmPort,
		"-D", "taskmanager.host=127.0.0.1", "-D", "taskmanager.registration.max-backoff=200ms")
	c.taskmanagers = append(c.taskmanagers, tm)
	t.Cleanup(func() {
		for _, p := range c.taskmanagers {
			p.kill()
		}
		if c.jm != nil {
			c.jm.kill()
		}
		if t.Failed() && c.jm != nil {
			c.dumpLogs()
		}
	})

	// No JobManager yet: the TaskManager is live, not ready, and says why.
	waitProbe(t, probeURL("taskmanager-1", "/healthz"), 200, "ok\n")
	code, body := waitProbeMatch(t, probeURL("taskmanager-1", "/readyz"), 503,
		regexp.MustCompile(`^not ready: not registered with the JobManager 127\.0\.0\.1:`+jmPort+`, retrying: .*dial tcp 127\.0\.0\.1:`+jmPort+`: connect: connection refused`))
	t.Logf("TaskManager before its JobManager: %d %q", code, body)

	c.jm = c.start("jobmanager", "jobmanager", "-D", "jobmanager.rpc.address=127.0.0.1", "-D", "jobmanager.rpc.port="+jmPort)
	// The JobManager leads without TaskManagers, and goes on leading with one.
	waitProbe(t, probeURL("jobmanager", "/readyz"), 200, "ok: leader (standalone)\n")
	waitProbe(t, probeURL("taskmanager-1", "/readyz"), 200, "ok: registered with the JobManager 127.0.0.1:"+jmPort+"\n")
	c.waitTaskManagers(1)
	waitProbe(t, probeURL("jobmanager", "/readyz"), 200, "ok: leader (standalone)\n")
	waitProbe(t, probeURL("jobmanager", "/healthz"), 200, "ok\n")

	// The JobManager gone: the TaskManager is not ready again, and still live.
	c.jm.kill()
	waitProbeMatch(t, probeURL("taskmanager-1", "/readyz"), 503,
		regexp.MustCompile(`^not ready: (registering with|not registered with) the JobManager 127\.0\.0\.1:`+jmPort+`.*\n$`))
	waitProbe(t, probeURL("taskmanager-1", "/healthz"), 200, "ok\n")
}

// With high availability, the leader and a standby that follows it are
// both ready (either answers the CLI: the standby names the leader), and a
// TaskManager is ready once registered with the leader named by etcd.
func TestHealthProbesHA(t *testing.T) {
	h := newHACluster(t, haOptions{jobManagers: 2, taskManagers: 1})
	l := h.leader()
	var standby *jobManagerUnit
	for _, u := range h.jms {
		if u.addr != l.addr {
			standby = u
		}
	}
	leaderProbe := "http://" + jmMetricsAddr(t, h.unit(l.addr)) + "/readyz"
	standbyProbe := "http://" + jmMetricsAddr(t, standby) + "/readyz"
	waitProbe(t, leaderProbe, 200, fmt.Sprintf("ok: leader (epoch %d)\n", l.epoch))
	waitProbe(t, standbyProbe, 200, fmt.Sprintf("ok: standby, following the leader %s (epoch %d)\n", l.addr, l.epoch))
	tmProbe := "http://" + h.tmPorts[h.taskmanagers[0]] + "/readyz"
	waitProbe(t, tmProbe, 200, fmt.Sprintf("ok: registered with the JobManager %s (epoch %d)\n", l.addr, l.epoch))
}

// jmMetricsAddr is the metrics address the JobManager's current run
// logged ("serving metrics").
func jmMetricsAddr(t *testing.T, u *jobManagerUnit) string {
	t.Helper()
	re := regexp.MustCompile(`serving metrics\t\{"addr": "([^"]+)"\}`)
	var addr string
	waitFor(t, 30*time.Second, u.name+" serving metrics", func() bool {
		data, _ := os.ReadFile(u.current().log)
		// The last run's header, then its line.
		runs := strings.Split(string(data), "==== "+u.name+" started at ")
		if m := re.FindStringSubmatch(runs[len(runs)-1]); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("%s logged metrics address %q: %v", u.name, addr, err)
	}
	return addr
}

// probe GETs url and returns the status and body (0 and the error when the
// request fails).
func probe(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// waitProbe polls url until it answers code and exactly body.
func waitProbe(t *testing.T, url string, code int, body string) {
	t.Helper()
	var gotCode int
	var gotBody string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if gotCode, gotBody = probe(url); gotCode == code && gotBody == body {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %q, want %d %q", url, gotCode, gotBody, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitProbeMatch polls url until it answers code and a body matching re.
func waitProbeMatch(t *testing.T, url string, code int, re *regexp.Regexp) (int, string) {
	t.Helper()
	var gotCode int
	var gotBody string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if gotCode, gotBody = probe(url); gotCode == code && re.MatchString(gotBody) {
			return gotCode, gotBody
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %q, want %d matching %s", url, gotCode, gotBody, code, re)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
