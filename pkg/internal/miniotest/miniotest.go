// Package miniotest starts real MinIO servers for tests, as net/http/httptest
// starts HTTP servers: on loopback, with their own credentials, data
// directory and bucket, stopped when the test ends.
//
//	srv := miniotest.Start(t)
//	// s3://<srv.Bucket>/... at srv.URL with srv.AccessKey / srv.SecretKey
//	srv.Stop()    // the store is down: requests are refused
//	srv.Restart() // back, same port, same data
//
// StartWith(t, Options{TLS: true}) serves HTTPS instead, with a certificate
// for its address and localhost from a CA of its own (Server.CAFile, for
// s3.ssl.ca), put in MinIO's --certs-dir as public.crt and private.key.
// Options{IP: "127.0.0.13"} puts it on another loopback address, for tests
// that give each host of a cluster its own.
//
// MinIO is a test tool, not a dependency: the server binary is built once by
// .ci/tools.sh (go install github.com/minio/minio@Version) into a cache
// outside the repository, and found through $WEIR_MINIO or that cache. A
// test that needs it fails, saying how to build it, when it is missing
// (with go test -short it is skipped).
package miniotest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
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

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/weirstream/weir/pkg/internal/testtool"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

// Version is the MinIO server the tests run: a module version of
// github.com/minio/minio, as .ci/tools.sh builds it.
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// EnvBinary names the environment variable that holds the path of the
// server binary (.ci/tools.sh exports it).
const EnvBinary = "WEIR_MINIO"

// startTimeout bounds a server's start (or restart) until it is live.
const startTimeout = 60 * time.Second

// tool is the server binary .ci/tools.sh builds.
var tool = testtool.Tool{Name: "minio", Version: Version, Env: EnvBinary, HowToBuild: "github.com/minio/minio@" + Version + ", about 10 minutes once"}

// CachePath is where .ci/tools.sh puts the binary:
// $XDG_CACHE_HOME/weir-tools/minio-<Version>/minio (~/.cache by default).
func CachePath() string { return tool.CachePath() }

// Binary returns the path of the server: $WEIR_MINIO if set, else
// CachePath. The error says how to build it.
func Binary() (string, error) { return tool.Binary() }

// Options configure a server.
type Options struct {
	// TLS serves HTTPS with a certificate of the server's own CA.
	TLS bool
	// IP is the loopback address it listens on; "" means 127.0.0.1.
	IP string
}

// Server is one MinIO server of a test.
type Server struct {
	// Endpoint is host:port; URL is http://Endpoint, or https:// with TLS.
	Endpoint, URL string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate, "" without TLS.
	CAFile string
	// AccessKey and SecretKey are the root credentials; the secret is
	// random, so that a test can look for it in logs.
	AccessKey, SecretKey string
	// Bucket is a fresh, empty bucket.
	Bucket string
	// Dir is the server's data directory.
	Dir string

	t                 testing.TB
	bin               string
	roots             *x509.CertPool // CAFile's, with TLS
	port, consolePort int
	logPath           string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a server on loopback, waits until it is live, creates
// Bucket, and stops the server when the test ends. It fails the test if
// the binary is missing (skips it with -short) or the server does not
// start within a minute.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a server as Start does, configured by o.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if testing.Short() {
			t.Skip("S3 tests need a MinIO server: " + err.Error())
		}
		t.Fatal(err)
	}
	ip := o.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	if a := net.ParseIP(ip); a == nil || a.To4() == nil || !a.IsLoopback() {
		t.Fatalf("miniotest: %q is not an IPv4 loopback address", ip)
	}
	base := t.TempDir()
	s := &Server{
		AccessKey: "weir-test", SecretKey: "weir-secret-" + randomHex(12),
		Bucket: "weir-test", Dir: filepath.Join(base, "data"),
		t: t, bin: bin, logPath: filepath.Join(base, "minio.log"),
		port: testtool.FreePort(t, ip), consolePort: testtool.FreePort(t, ip),
	}
	s.Endpoint = net.JoinHostPort(ip, strconv.Itoa(s.port))
	s.URL = "http://" + s.Endpoint
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if o.TLS {
		s.URL = "https://" + s.Endpoint
		ca := securitytest.NewCA(t, "miniotest CA")
		s.CAFile = ca.Write(t, base, "ca.crt")
		s.roots = x509.NewCertPool()
		s.roots.AddCert(ca.Cert)
		certs := filepath.Join(base, "certs")
		if err := os.Mkdir(certs, 0o700); err != nil {
			t.Fatal(err)
		}
		pair := ca.Issue(t, securitytest.CertOptions{CommonName: "minio", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP(ip)}})
		securitytest.WriteFile(t, filepath.Join(certs, "public.crt"), pair.CertPEM)
		securitytest.WriteFile(t, filepath.Join(certs, "private.key"), pair.KeyPEM)
	}
	t.Cleanup(s.Stop)
	s.start()
	s.Bucket = s.NewBucket()
	return s
}

// NewBucket creates another empty bucket and returns its name.
func (s *Server) NewBucket() string {
	s.t.Helper()
	name := "weir-" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client().MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		s.t.Fatalf("minio: create bucket %s: %v", name, err)
	}
	return name
}

// Client returns a client with the root credentials, for a test to look
// at or change the bucket behind weir's back.
func (s *Server) Client() *minio.Client {
	o := &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1"}
	if tr := s.transport(); tr != nil {
		o.Secure, o.Transport = true, tr
	}
	c, err := minio.New(s.Endpoint, o)
	if err != nil {
		s.t.Fatalf("minio client: %v", err)
	}
	return c
}

// transport trusts the server's CA; nil (minio-go's default) without TLS.
func (s *Server) transport() *http.Transport {
	if s.roots == nil {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
	return tr
}

// Config returns the cluster configuration of weir's s3 driver for this
// server, as the daemons' -D key=value flags would give it (with TLS,
// s3.ssl.ca too).
func (s *Server) Config() map[string]string {
	m := map[string]string{
		"s3.endpoint": s.URL, "s3.access-key": s.AccessKey, "s3.secret-key": s.SecretKey,
		"s3.path-style-access": "true", "s3.region": "us-east-1",
	}
	if s.CAFile != "" {
		m["s3.ssl.ca"] = s.CAFile
	}
	return m
}

// host is the address the server listens on.
func (s *Server) host() string {
	h, _, _ := net.SplitHostPort(s.Endpoint)
	return h
}

// Objects returns the keys in bucket under prefix, sorted.
func (s *Server) Objects(bucket, prefix string) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	for o := range s.Client().ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			s.t.Fatalf("minio: list s3://%s/%s: %v", bucket, prefix, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// Uploads returns the keys of the multipart uploads in progress in bucket
// under prefix.
func (s *Server) Uploads(bucket, prefix string) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := minio.Core{Client: s.Client()}.ListMultipartUploads(ctx, bucket, prefix, "", "", "", 1000)
	if err != nil {
		s.t.Fatalf("minio: list uploads in s3://%s/%s: %v", bucket, prefix, err)
	}
	var keys []string
	for _, u := range res.Uploads {
		keys = append(keys, u.Key)
	}
	return keys
}

// Log returns what the server has written to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// start starts the process and waits until it is live.
func (s *Server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "server", "--quiet",
		"--address", s.Endpoint, "--console-address", net.JoinHostPort(s.host(), strconv.Itoa(s.consolePort)),
		"--certs-dir", filepath.Join(filepath.Dir(s.Dir), "certs"), s.Dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+filepath.Dir(s.Dir))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a signal to the test's group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		s.t.Fatalf("start minio: %v", err)
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
	if err := s.waitLive(done); err != nil {
		s.Stop()
		s.t.Fatalf("minio at %s: %v\nits log:\n%s", s.Endpoint, err, testtool.Tail(s.Log(), 4096))
	}
}

// waitLive polls the liveness endpoint until it answers 200, the process
// exits, or startTimeout passes.
func (s *Server) waitLive(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	if tr := s.transport(); tr != nil {
		// No keep-alive: no idle connection outlives the start.
		tr.DisableKeepAlives = true
		hc.Transport = tr
	}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the server exited while starting")
		default:
		}
		resp, err := hc.Get(s.URL + "/minio/health/live")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s.waitReady(deadline)
			}
			err = fmt.Errorf("health: HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not live within %s: %v", startTimeout, last)
}

// waitReady waits until the server serves S3 requests (it answers health
// checks before its storage is initialized).
func (s *Server) waitReady(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c := s.Client()
	for {
		_, err := c.ListBuckets(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving S3 requests within %s: %v", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped server again, on the same port with the same
// data, and waits until it serves requests.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause stops the server's process without closing its connections
// (SIGSTOP): requests hang rather than fail, as with a store that is
// overloaded or cut off. Resume continues it.
func (s *Server) Pause()  { s.signal(syscall.SIGSTOP) }
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
