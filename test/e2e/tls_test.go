package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/security/securitytest"
	"github.com/weirstream/weir/proto/weirpb"
)

// tlsSetup is the PKI of a TLS cluster, made by the test: an internal CA
// with one certificate per daemon (issued when the daemon starts), and an
// API CA with the JobManager's API certificate and the operator's client
// certificate.
type tlsSetup struct {
	t          testing.TB
	dir        string
	internalCA *securitytest.CA
	caPath     string
	apiCAPath  string

	mu    sync.Mutex
	certs map[string][2]string // daemon name -> cert, key
	// operator's client certificate of the API CA
	clientCert, clientKey string
}

// newTLSCluster starts a JobManager and n TaskManagers with internal TLS and
// API TLS with client authentication on, and io.allowed-paths set to the
// cluster's directory; the weir CLI of c runs with the operator's
// certificate. metricsPort is the JobManager's Prometheus port.
func newTLSCluster(t testing.TB, n, slots int) (c *cluster, s *tlsSetup, metricsPort int) {
	t.Helper()
	dir := t.TempDir()
	s = &tlsSetup{t: t, dir: filepath.Join(dir, "tls"), internalCA: securitytest.NewCA(t, "weir internal CA"), certs: map[string][2]string{}}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	apiCA := securitytest.NewCA(t, "weir API CA")
	s.caPath = s.internalCA.Write(t, s.dir, "internal-ca.crt")
	s.apiCAPath = apiCA.Write(t, s.dir, "api-ca.crt")
	apiCert, apiKey := apiCA.Issue(t, securitytest.CertOptions{CommonName: "jobmanager-api", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}).Write(t, s.dir, "api")
	s.clientCert, s.clientKey = apiCA.Issue(t, securitytest.CertOptions{CommonName: "operator"}).Write(t, s.dir, "operator")

	metricsPort = freePort(t)
	c = &cluster{t: t, dir: dir, extra: []string{
		"security.ssl.internal.enabled=true",
		"security.ssl.internal.ca=" + s.caPath,
		"security.ssl.api.enabled=true",
		"security.ssl.api.cert=" + apiCert,
		"security.ssl.api.key=" + apiKey,
		"security.ssl.api.ca=" + s.apiCAPath,
		"security.ssl.api.authentication-enabled=true",
		"io.allowed-paths=" + dir,
	}}
	c.perProcess = func(name string) []string {
		cert, key := s.daemonCert(name)
		out := []string{"security.ssl.internal.cert=" + cert, "security.ssl.internal.key=" + key}
		if name == "jobmanager" {
			out = append(out, fmt.Sprintf("metrics.reporter.prom.port=%d", metricsPort))
		}
		return out
	}
	c.cliArgs = s.cliArgs(true)
	return c.launch(n, slots), s, metricsPort
}

// daemonCert returns the internal certificate of a daemon, issued on first
// use with CN = its name.
func (s *tlsSetup) daemonCert(name string) (cert, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.certs[name]; ok {
		return f[0], f[1]
	}
	cert, key = s.internalCA.Issue(s.t, securitytest.CertOptions{CommonName: name}).Write(s.t, s.dir, name)
	s.certs[name] = [2]string{cert, key}
	return cert, key
}

// cliArgs are the CLI's -D flags for API TLS, with or without the
// operator's client certificate.
func (s *tlsSetup) cliArgs(withCert bool) []string {
	args := []string{"-D", "security.ssl.api.enabled=true", "-D", "security.ssl.api.ca=" + s.apiCAPath}
	if withCert {
		args = append(args, "-D", "security.ssl.api.cert="+s.clientCert, "-D", "security.ssl.api.key="+s.clientKey)
	}
	return args
}

// internalClient returns a gRPC connection to addr with the internal
// certificate of daemon name.
func (s *tlsSetup) internalClient(name, addr string) *grpc.ClientConn {
	cert, key := s.daemonCert(name)
	tlsc, err := security.NewInternal(security.Files{Cert: cert, Key: key, CA: s.caPath,
		CertKey: "security.ssl.internal.cert", KeyKey: "security.ssl.internal.key", CAKey: "security.ssl.internal.ca"}, security.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	return dialGRPC(s.t, addr, tlsc.ClientCredentials())
}

func dialGRPC(t testing.TB, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// logContains waits until the log of p holds every one of the texts.
func logContains(t *testing.T, p *process, texts ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(p.log)
		missing := ""
		for _, s := range texts {
			if !strings.Contains(string(data), s) {
				missing = s
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Fatalf("the log of %s does not say %q:\n%s", p.name, missing, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The exactly-once SIGKILL test with internal and API TLS on.
func TestTLSExactlyOnceUnderKill(t *testing.T) {
	c, _, _ := newTLSCluster(t, 3, 2)
	exactlyOnceUnderKill(t, c)
}

// TestTLSRefusals: with internal and API TLS on, nothing without the right
// certificate gets served, and every refusal says why.
func TestTLSRefusals(t *testing.T) {
	c, s, metricsPort := newTLSCluster(t, 2, 2)
	tms := c.waitTaskManagers(2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("TaskManager of another CA", func(t *testing.T) {
		// Its certificate and CA are another cluster's: it refuses the
		// JobManager's certificate, and the JobManager would refuse its.
		other := securitytest.NewCA(t, "another CA")
		cert, key := other.Issue(t, securitytest.CertOptions{CommonName: "intruder"}).Write(t, s.dir, "intruder")
		p := c.startTaskManagerWith("intruder-1", "security.ssl.internal.cert="+cert, "security.ssl.internal.key="+key,
			"security.ssl.internal.ca="+other.Write(t, s.dir, "another-ca.crt"))
		logContains(t, p, "cannot reach the JobManager", "the JobManager's certificate is not signed by security.ssl.internal.ca ("+filepath.Join(s.dir, "another-ca.crt")+")",
			"x509: certificate signed by unknown authority")
		// Trusting the cluster's CA does not help a certificate it did not sign.
		cert, key = other.Issue(t, securitytest.CertOptions{CommonName: "intruder-2"}).Write(t, s.dir, "rogue-2")
		p = c.startTaskManagerWith("intruder-2", "security.ssl.internal.cert="+cert, "security.ssl.internal.key="+key)
		logContains(t, p, "cannot reach the JobManager", "the JobManager refused this daemon's certificate (security.ssl.internal.cert): it must be signed by the server's security.ssl.internal.ca")
	})

	t.Run("TaskManager without TLS", func(t *testing.T) {
		p := c.startTaskManagerWith("plaintext-1", "security.ssl.internal.enabled=false")
		logContains(t, p, "cannot reach the JobManager", "the JobManager closed the connection before answering: if it uses TLS, set security.ssl.internal.enabled")
		logContains(t, c.jm, "TLS handshake refused", "first record does not look like a TLS handshake: plaintext connections are refused")
	})
	if got := c.waitTaskManagers(2); len(got) != 2 {
		t.Fatalf("registered TaskManagers: %+v", got)
	}

	t.Run("plain TCP to the data port", func(t *testing.T) {
		conn, err := net.Dial("tcp", tms[0].DataAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// A partition request as a consumer would send it in plaintext: length, type, id.
		if _, err := conn.Write([]byte("\x00\x00\x00\x20\x01job/src/0/0/0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(conn)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the data server did not close the connection: %v", err)
		}
		if len(got) > 0 && got[0] != 0x15 { // a TLS alert is all it may send
			t.Fatalf("the data server answered a plaintext peer with %q", got)
		}
		logContains(t, c.processOf(tms[0].ID), "network: TLS handshake refused", conn.LocalAddr().String(), "first record does not look like a TLS handshake")
	})

	t.Run("plaintext gRPC", func(t *testing.T) {
		plain := insecure.NewCredentials()
		_, err := weirpb.NewJobServiceClient(dialGRPC(t, c.jmAddr, plain)).ListJobs(ctx, &weirpb.ListJobsRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext ListJobs on the JobManager: %v, want Unavailable (refused handshake)", err)
		}
		_, err = weirpb.NewJobManagerGatewayClient(dialGRPC(t, c.jmAddr, plain)).RegisterTaskManager(ctx, &weirpb.RegisterTaskManagerRequest{
			TaskmanagerId: "forged", RpcAddress: "127.0.0.1:1", DataAddress: "127.0.0.1:2", NumSlots: 1, CallToken: "t"})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext RegisterTaskManager: %v, want Unavailable (refused handshake)", err)
		}
		_, err = weirpb.NewTaskExecutorGatewayClient(dialGRPC(t, tms[0].Address, plain)).CancelTask(ctx, &weirpb.CancelTaskRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext CancelTask on a TaskManager: %v, want Unavailable (refused handshake)", err)
		}
		logContains(t, c.processOf(tms[0].ID), "TLS handshake refused")
	})

	var jobID string
	t.Run("forged reports from the wrong TaskManager", func(t *testing.T) {
		out := filepath.Join(c.dir, "out")
		jobID = strings.TrimSpace(c.mustWeir("run", "-d", keyedJob{name: "forged", keys: 4, rate: 100, out: out,
			config: c.checkpointing("200ms")}.write(c)))
		c.runningOn(jobID, rand.New(rand.NewPCG(1, 2)))
		c.waitCheckpoints(jobID, 1)
		var victim taskJSON
		for _, task := range c.status(jobID).Tasks {
			if task.Operator == "numbers" {
				victim = task
				break
			}
		}
		if victim.TaskManager == "" {
			t.Fatalf("no source task in %+v", c.status(jobID))
		}
		// The forger holds a valid certificate: the other TaskManager's.
		forger := ""
		for _, tm := range tms {
			if tm.ID != victim.TaskManager {
				forger = c.processOf(tm.ID).name
			}
		}
		victimName := c.processOf(victim.TaskManager).name
		gw := weirpb.NewJobManagerGatewayClient(s.internalClient(forger, c.jmAddr))
		exec := &weirpb.ExecutionAttemptID{JobId: jobID, Vertex: 0, Subtask: int32(victim.Subtask), Attempt: int32(victim.Attempt)}
		_, err := gw.UpdateTaskExecutionState(ctx, &weirpb.TaskExecutionState{TaskmanagerId: victim.TaskManager, Execution: exec, State: "FINISHED"})
		wantDenied(t, err, fmt.Sprintf(`task state report (FINISHED) of %s/0/%d#%d names TaskManager %q, registered from certificate "CN=%s,O=weir test" issued by "CN=weir internal CA,O=weir test": refused for the caller at 127.0.0.1:`,
			jobID, victim.Subtask, victim.Attempt, victim.TaskManager, victimName))
		_, err = gw.AcknowledgeCheckpoint(ctx, &weirpb.AcknowledgeCheckpointRequest{Execution: exec, CheckpointId: 1})
		wantDenied(t, err, fmt.Sprintf(`acknowledgement of checkpoint 1 by %s/0/%d#%d names TaskManager %q, registered from certificate "CN=%s,O=weir test"`,
			jobID, victim.Subtask, victim.Attempt, victim.TaskManager, victimName))
		// The operator's API certificate reaches the job API, not the gateway.
		apiTLS, err := security.NewAPIClient(security.Files{Cert: s.clientCert, Key: s.clientKey, CA: s.apiCAPath,
			CertKey: "security.ssl.api.cert", KeyKey: "security.ssl.api.key", CAKey: "security.ssl.api.ca"}, security.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = weirpb.NewJobManagerGatewayClient(dialGRPC(t, c.jmAddr, apiTLS.ClientCredentials())).UpdateTaskExecutionState(ctx,
			&weirpb.TaskExecutionState{TaskmanagerId: victim.TaskManager, Execution: exec, State: "FINISHED"})
		wantDenied(t, err, "UpdateTaskExecutionState is a call between weir daemons and needs internal TLS (security.ssl.internal.enabled): refused over job API TLS")
		// A cluster member without the TaskManager's call token cannot deploy or cancel there.
		_, err = weirpb.NewTaskExecutorGatewayClient(s.internalClient(forger, victimAddress(tms, victim.TaskManager))).CancelTask(ctx,
			&weirpb.CancelTaskRequest{Execution: exec})
		wantDenied(t, err, "CancelTask refused: the call carries no weir-call-token")

		want := map[string]float64{
			`weir_jobmanager_rejected_calls_total{method="UpdateTaskExecutionState",reason="foreign_peer"}`: 1,
			`weir_jobmanager_rejected_calls_total{method="AcknowledgeCheckpoint",reason="foreign_peer"}`:    1,
			`weir_jobmanager_rejected_calls_total{method="UpdateTaskExecutionState",reason="not_internal"}`: 1,
		}
		got := scrapeMetrics(t, fmt.Sprintf("127.0.0.1:%d", metricsPort), "weir_jobmanager_rejected_calls_total")
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
			}
		}
		if st := c.status(jobID); st.State != "RUNNING" {
			t.Fatalf("after the forged calls the job is %s: %s", st.State, st.StatusMessage)
		}
		c.mustWeir("cancel", jobID)
		c.waitState(jobID, 60*time.Second, "CANCELED")
	})
	t.Run("weir list", func(t *testing.T) {
		cli := c.cliArgs
		defer func() { c.cliArgs = cli }()
		c.cliArgs = s.cliArgs(false)
		_, stderr, code := c.weir("list")
		if want := "weir: the job API requires a client certificate (security.ssl.api.authentication-enabled on the server): " +
			"set security.ssl.api.cert and security.ssl.api.key (the JobManager at " + c.jmAddr + ": "; code != 1 || !strings.HasPrefix(stderr, want) {
			t.Fatalf("weir list without a client certificate: exit %d\n%s\nwant exit 1 and %q...", code, stderr, want)
		}
		c.cliArgs = nil
		_, stderr, code = c.weir("list")
		if want := "weir: cannot reach the JobManager at " + c.jmAddr + ": the job API closed the connection before answering: if it uses TLS, set security.ssl.api.enabled (and security.ssl.api.ca)"; code != 1 || !strings.HasPrefix(stderr, want) {
			t.Fatalf("weir list without TLS: exit %d\n%s\nwant exit 1 and %q...", code, stderr, want)
		}
		c.cliArgs = cli
		if out := c.mustWeir("list", "-a"); !strings.Contains(out, jobID) || !strings.Contains(out, "CANCELED") {
			t.Fatalf("weir list with the client certificate: %q, want job %s CANCELED", out, jobID)
		}
	})
}

func victimAddress(tms []taskManagerJSON, id string) string {
	for _, tm := range tms {
		if tm.ID == id {
			return tm.Address
		}
	}
	return ""
}

func wantDenied(t *testing.T, err error, msgPrefix string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.PermissionDenied || !strings.HasPrefix(st.Message(), msgPrefix) {
		t.Fatalf("got %v\nwant PermissionDenied: %s...", err, msgPrefix)
	}
}

// scrapeMetrics returns the samples of the metric family name at addr,
// by "name{labels}".
func scrapeMetrics(t *testing.T, addr, name string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// startTaskManagerWith starts one more TaskManager, named name, with extra
// -D overrides after the cluster's; it is not waited for.
func (c *cluster) startTaskManagerWith(name string, overrides ...string) *process {
	_, port, _ := net.SplitHostPort(c.jmAddr)
	args := []string{"-D", "jobmanager.rpc.address=127.0.0.1", "-D", "jobmanager.rpc.port=" + port,
		"-D", "taskmanager.host=127.0.0.1", "-D", "taskmanager.numberOfTaskSlots=1"}
	prev := c.perProcess
	c.perProcess = func(n string) []string { return append(prev(n), overrides...) }
	p := c.start(name, "taskmanager", args...)
	c.perProcess = prev
	c.t.Cleanup(p.kill)
	return p
}
