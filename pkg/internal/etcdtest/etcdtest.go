// Package etcdtest starts real etcd servers for tests, as net/http/httptest
// starts HTTP servers: a single-member cluster on loopback, with free client
// and peer ports and its own data directory, stopped when the test ends.
//
//	srv := etcdtest.Start(t)          // or StartAt(t, "127.0.0.11")
//	// clientv3.Config{Endpoints: srv.Endpoints()}
//	srv.Kill()    // SIGKILL: etcd is gone, its connections reset
//	srv.Restart() // back, same ports, same data (leases are kept)
//	srv.Stop()    // SIGSTOP: requests hang instead of failing
//	srv.Cont()    // SIGCONT
//
// StartWith(t, Options{TLS: true}) serves clients over TLS instead (https
// client URLs), with a certificate for the loopback address and localhost
// from a CA of its own; with ClientCertAuth it also requires a client
// certificate of that CA (etcd's --client-cert-auth). The CA and a client
// certificate it accepts are PEM files in the test's temporary directory
// (Server.CAFile, ClientCertFile, ClientKeyFile), for the
// high-availability.etcd.tls.* keys.
//
// etcd is a test tool, not a dependency: test/tools/etcd is a module of its
// own around go.etcd.io/etcd/server/v3's etcdmain, built once by
// .ci/tools.sh into a cache outside the repository, and found through
// $WEIR_ETCD or that cache. A test that needs it fails, saying how to build
// it, when it is missing (with go test -short it is skipped).
//
// The server runs with --unsafe-no-fsync: the tests kill processes, not
// machines, and a killed process loses nothing the kernel has been given,
// so fsync would only slow the shared test machine down.
package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/internal/testtool"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

// Version is the etcd server the tests run: the version of
// go.etcd.io/etcd/server/v3 in test/tools/etcd/go.mod, as .ci/tools.sh
// builds it.
const Version = "v3.7.3"

// EnvBinary names the environment variable that holds the path of the
// server binary (.ci/tools.sh exports it).
const EnvBinary = "WEIR_ETCD"

// startTimeout bounds a server's start (or restart) until it is healthy.
const startTimeout = 60 * time.Second

// tool is the server binary .ci/tools.sh builds.
var tool = testtool.Tool{Name: "etcd", Version: Version, Env: EnvBinary, HowToBuild: "test/tools/etcd, go.etcd.io/etcd/server/v3 " + Version + ", about 2 minutes once"}

// CachePath is where .ci/tools.sh puts the binary:
// $XDG_CACHE_HOME/weir-tools/etcd-<Version>/etcd (~/.cache by default).
func CachePath() string { return tool.CachePath() }

// Binary returns the path of the server: $WEIR_ETCD if set, else
// CachePath. The error says how to build it.
func Binary() (string, error) { return tool.Binary() }

// Options configure a server.
type Options struct {
	// IP is the loopback address it listens on; "" means 127.0.0.1.
	IP string
	// TLS serves clients over TLS (https client URLs). The peer URL
	// stays plaintext: the cluster has one member.
	TLS bool
	// ClientCertAuth requires clients to present a certificate of the
	// server's CA (--client-cert-auth, --trusted-ca-file); with TLS only.
	ClientCertAuth bool
}

// Server is one etcd server of a test.
type Server struct {
	// IP is the loopback address it listens on; ClientURL is
	// http://IP:client-port, or https:// with TLS.
	IP, ClientURL string
	// Dir is the server's data directory.
	Dir string
	// With TLS: CAFile is the CA that signed the server's certificate
	// (for localhost and IP) and ClientCertFile with ClientKeyFile a
	// client certificate it signed; "" without TLS.
	CAFile, ClientCertFile, ClientKeyFile string

	t                    testing.TB
	bin                  string
	opts                 Options
	clientPort, peerPort int
	logPath              string
	certFile, keyFile    string // the server's certificate, with TLS

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a server on 127.0.0.1 (see StartAt).
func Start(t testing.TB) *Server {
	t.Helper()
	return StartAt(t, "127.0.0.1")
}

// StartAt starts a single-member etcd on the loopback address ip (any of
// 127.0.0.0/8 on Linux: tests that need several hosts give each its own),
// waits until it is healthy, and stops it when the test ends. It fails the
// test if the binary is missing (skips it with -short), ip is not a
// loopback address, or the server does not start within a minute. Its log
// is kept in the test's temporary directory and shown if the test fails.
func StartAt(t testing.TB, ip string) *Server {
	t.Helper()
	return StartWith(t, Options{IP: ip})
}

// StartWith starts a server as StartAt does, configured by o.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	ip := o.IP
	if a := net.ParseIP(ip); a == nil || a.To4() == nil || !a.IsLoopback() {
		t.Fatalf("etcdtest: %q is not an IPv4 loopback address", ip)
	}
	if o.ClientCertAuth && !o.TLS {
		t.Fatal("etcdtest: ClientCertAuth needs TLS")
	}
	bin, err := Binary()
	if err != nil {
		if testing.Short() {
			t.Skip("etcd tests need an etcd server: " + err.Error())
		}
		t.Fatal(err)
	}
	base := t.TempDir()
	s := &Server{
		IP: ip, Dir: filepath.Join(base, "data"),
		t: t, bin: bin, opts: o, logPath: filepath.Join(base, "etcd.log"),
		clientPort: testtool.FreePort(t, ip), peerPort: testtool.FreePort(t, ip),
	}
	s.ClientURL = "http://" + net.JoinHostPort(ip, strconv.Itoa(s.clientPort))
	if o.TLS {
		s.ClientURL = "https://" + net.JoinHostPort(ip, strconv.Itoa(s.clientPort))
		ca := securitytest.NewCA(t, "etcdtest CA")
		dir := filepath.Join(base, "tls")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s.CAFile = ca.Write(t, dir, "ca.crt")
		s.certFile, s.keyFile = ca.Issue(t, securitytest.CertOptions{
			CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP(ip)},
		}).Write(t, dir, "server")
		s.ClientCertFile, s.ClientKeyFile = ca.Issue(t, securitytest.CertOptions{CommonName: "weir"}).Write(t, dir, "client")
	}
	t.Cleanup(func() {
		if t.Failed() { // before its shutdown fills the end of the log
			t.Logf("etcd at %s, the end of its log:\n%s", s.ClientURL, testtool.Tail(s.Log(), 4096))
		}
		s.terminate()
	})
	s.start()
	return s
}

// Endpoints returns the client endpoints (host:port), as
// high-availability.etcd.endpoints and clientv3.Config take them.
func (s *Server) Endpoints() []string {
	return []string{net.JoinHostPort(s.IP, strconv.Itoa(s.clientPort))}
}

// Client returns a client of the server, closed when the test ends, for a
// test to look at or change keys behind the code under test's back (with
// the client certificate, over TLS).
func (s *Server) Client() *clientv3.Client {
	s.t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.ClientURL}, TLS: s.ClientTLS(), DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.t.Fatalf("etcd client of %s: %v", s.ClientURL, err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// ClientTLS is the client side of the server's TLS, with the client
// certificate; nil without TLS.
func (s *Server) ClientTLS() *tls.Config {
	if !s.opts.TLS {
		return nil
	}
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(s.ClientCertFile, s.ClientKeyFile)
	if err != nil {
		s.t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// Log returns what the server has written to its log so far (every run).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Kill kills the server (SIGKILL) and waits until it has exited, as a
// crash of its machine would leave it (nothing is lost: see the package
// doc). Killing a dead server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server if it runs and starts it again on the same
// ports with the same data, and waits until it is healthy. Its leases
// survive, their time to live renewed, as after any etcd restart.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Stop pauses the server (SIGSTOP) without closing its connections:
// requests and keepalives hang rather than fail, as with an etcd that is
// overloaded or cut off. Cont continues it.
func (s *Server) Stop() { s.signal(syscall.SIGSTOP) }

// Cont continues a server paused by Stop (SIGCONT).
func (s *Server) Cont() { s.signal(syscall.SIGCONT) }

// PID returns the server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// start starts the process and waits until it is healthy.
func (s *Server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	peerURL := "http://" + net.JoinHostPort(s.IP, strconv.Itoa(s.peerPort))
	// The member's initial-* flags are ignored on a restart: its data
	// directory holds the cluster. Short heartbeat and election timeouts
	// make a single member lead at once after a (re)start.
	args := []string{
		"--name", "weir-test", "--data-dir", s.Dir,
		"--listen-client-urls", s.ClientURL, "--advertise-client-urls", s.ClientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "weir-test=" + peerURL, "--initial-cluster-state", "new",
		"--heartbeat-interval", "10", "--election-timeout", "100",
		"--unsafe-no-fsync", "--log-level", "info",
	}
	if s.opts.TLS {
		args = append(args, "--cert-file", s.certFile, "--key-file", s.keyFile)
	}
	if s.opts.ClientCertAuth {
		args = append(args, "--client-cert-auth", "--trusted-ca-file", s.CAFile)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = filepath.Dir(s.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a signal to the test's group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		s.t.Fatalf("start etcd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitHealthy(done); err != nil {
		s.Kill()
		s.t.Fatalf("etcd at %s: %v\nits log:\n%s", s.ClientURL, err, testtool.Tail(s.Log(), 4096))
	}
}

// waitHealthy polls /health until etcd says it is healthy (it has a raft
// leader and serves linearizable reads), the process exits, or
// startTimeout passes.
func (s *Server) waitHealthy(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	// No keep-alive: no idle connection outlives the start.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: s.ClientTLS()}}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the server exited while starting")
		default:
		}
		last = health(hc, s.ClientURL+"/health")
		if last == nil {
			return nil
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("not healthy within %s: %v", startTimeout, last)
}

func health(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("health: HTTP %d %q", resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusOK || h.Health != "true" {
		return fmt.Errorf("health: HTTP %d, health %q, reason %q", resp.StatusCode, h.Health, h.Reason)
	}
	return nil
}

// terminate stops the server for good at the end of the test: SIGTERM
// (after SIGCONT, in case it was stopped), then SIGKILL after 10 s.
func (s *Server) terminate() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
