package network

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

// internalTLS makes a certificate for cn signed by ca and returns its internal TLS, trusting ca.
func internalTLS(t testing.TB, dir string, ca *securitytest.CA, cn string) *security.TLS {
	t.Helper()
	cert, key := ca.Issue(t, securitytest.CertOptions{CommonName: cn}).Write(t, dir, cn)
	s, err := security.NewInternal(security.Files{
		Cert: cert, Key: key, CA: ca.Write(t, dir, cn+"-ca.crt"),
		CertKey: "security.ssl.internal.cert", KeyKey: "security.ssl.internal.key", CAKey: "security.ssl.internal.ca",
	}, security.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tlsConfig(t testing.TB, s *security.TLS) Config {
	cfg := testConfig()
	cfg.TLS = s
	return cfg
}

// TestTLSDataPlane: records cross a mutually authenticated connection; a consumer whose certificate another CA
// signed, a consumer without TLS, and a plain TCP peer are refused before the server reads a partition request.
func TestTLSDataPlane(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Internal CA")
	core, logs := observer.New(zap.WarnLevel)
	cfg := tlsConfig(t, internalTLS(t, dir, ca, "producer"))
	pm, err := NewManager(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()

	// A member of the cluster gets the records.
	cm := newManager(t, tlsConfig(t, internalTLS(t, dir, ca, "consumer")))
	p, g := oneChannel(t, pm, cm)
	sendOneRecord(t, p, g)

	// A plain TCP peer that sends a partition request gets nothing back and is logged with the reason.
	conn, err := net.Dial("tcp", pm.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(encodePartitionRequest(1, "job/src/0/0/0", 0, 1)); err != nil {
		t.Fatal(err)
	}
	if got := awaitServerClose(t, conn); len(got) != 0 && !strings.HasPrefix(string(got), "\x15\x03") {
		// A TLS alert record (0x15 0x03 ...) is all a server may answer; never a frame.
		t.Fatalf("server sent %x to a plaintext peer", got)
	}
	e := logNaming(t, logs, "network: TLS handshake refused", conn.LocalAddr().String())
	if msg := e.ContextMap()["error"].(string); !strings.Contains(msg, "first record does not look like a TLS handshake") {
		t.Fatalf("logged reason %q", msg)
	}

	// A peer with a certificate of another CA completes no handshake. A weir client would not even send it (the
	// server's CA hint says it would be refused); a hostile one does.
	pair := securitytest.NewCA(t, "Other CA").Issue(t, securitytest.CertOptions{CommonName: "rogue"})
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := tls.Dial("tcp", pm.Addr(), &tls.Config{InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err == nil {
		// TLS 1.3: the client's handshake ends before the server has checked its certificate; the refusal
		// arrives on the first read.
		_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = rc.Read(make([]byte, 1))
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
		t.Fatalf("rogue peer: %v, want a refused handshake", err)
	}
	waitFor(t, "the rogue certificate logged", func() bool {
		for _, e := range logs.FilterMessage("network: TLS handshake refused").All() {
			if strings.Contains(e.ContextMap()["error"].(string), `peer certificate "CN=rogue,O=weir test" (issuer "CN=Other CA,O=weir test") refused`) {
				return true
			}
		}
		return false
	})
	if n := pm.requestMisses.Load(); n != 0 {
		t.Fatalf("%d partition requests read from refused peers", n)
	}
	waitFor(t, "no pending connection", func() bool { return pm.pendingConnections() == 0 })
}

// TestTLSConsumerRefusedByPlaintextServer: a TLS consumer of a plaintext producer (a cluster half configured) fails
// its channel after the partition request timeout, naming the producer.
func TestTLSConsumerRefusedByPlaintextServer(t *testing.T) {
	pm := newManager(t, testConfig())
	cfg := tlsConfig(t, internalTLS(t, t.TempDir(), securitytest.NewCA(t, "Internal CA"), "consumer"))
	cfg.PartitionRequestTimeout = 300 * time.Millisecond
	cm := newManager(t, cfg)
	_, g := oneChannel(t, pm, cm)
	_, err := readAll(t, g)
	if err == nil || !strings.Contains(err.Error(), pm.Addr()) || !strings.Contains(err.Error(), "TLS dial") {
		t.Fatalf("consumer error: %v", err)
	}
}

var _ TLS = (*security.TLS)(nil)

// The data plane with internal TLS, for docs/benchmarks.md: compare with BenchmarkThroughputRemote*.
func benchTLS(b *testing.B, size int) {
	dir := b.TempDir()
	ca := securitytest.NewCA(b, "Bench CA")
	cfg := DefaultConfig()
	cfg.TLS = internalTLS(b, dir, ca, "bench")
	benchPipelineWith(b, cfg, true, size)
}

func BenchmarkThroughputRemoteTLS(b *testing.B)      { benchTLS(b, 100) }
func BenchmarkThroughputRemoteTLS16B(b *testing.B)   { benchTLS(b, 16) }
func BenchmarkThroughputRemoteTLSLarge(b *testing.B) { benchTLS(b, 4096) }
