package security_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func internalFiles(cert, key, ca string) security.Files {
	return security.Files{Cert: cert, Key: key, CA: ca,
		CertKey: "security.ssl.internal.cert", KeyKey: "security.ssl.internal.key", CAKey: "security.ssl.internal.ca"}
}

func apiFiles(cert, key, ca string) security.Files {
	return security.Files{Cert: cert, Key: key, CA: ca,
		CertKey: "security.ssl.api.cert", KeyKey: "security.ssl.api.key", CAKey: "security.ssl.api.ca"}
}

// node writes a CA and a certificate it issued under dir and returns the
// internal Files.
func node(t *testing.T, dir string, ca *securitytest.CA, cn string) security.Files {
	t.Helper()
	cert, key := ca.Issue(t, securitytest.CertOptions{CommonName: cn}).Write(t, dir, cn)
	return internalFiles(cert, key, ca.Write(t, dir, "ca.crt"))
}

func mustInternal(t *testing.T, f security.Files, log *zap.Logger) *security.TLS {
	t.Helper()
	s, err := security.NewInternal(f, security.Options{CheckInterval: 0, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Test CA")
	good := ca.Issue(t, securitytest.CertOptions{CommonName: "tm-1"})
	other := ca.Issue(t, securitytest.CertOptions{CommonName: "tm-2"})
	expired := ca.Issue(t, securitytest.CertOptions{CommonName: "old",
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)})
	cert, key := good.Write(t, dir, "good")
	caPath := ca.Write(t, dir, "ca.crt")
	_, otherKey := other.Write(t, dir, "other")
	expCert, expKey := expired.Write(t, dir, "expired")
	garbage := filepath.Join(dir, "garbage.pem")
	securitytest.WriteFile(t, garbage, []byte("hello, not PEM\n"))
	big := filepath.Join(dir, "big.pem")
	securitytest.WriteFile(t, big, make([]byte, 1<<20+1))
	encKey := filepath.Join(dir, "enc.key")
	securitytest.WriteFile(t, encKey, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		f    security.Files
		want string
	}{
		{"unset", internalFiles("", key, caPath), "security.ssl.internal.cert is not set: internal TLS needs a certificate, its key and the CA"},
		{"missing", internalFiles(missing, key, caPath), "security.ssl.internal.cert: " + missing + " does not exist"},
		{"not PEM", internalFiles(garbage, key, caPath), "security.ssl.internal.cert: " + garbage + " is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)"},
		{"too large", internalFiles(cert, key, big), "security.ssl.internal.ca: " + big + " is larger than 1048576 bytes: not a PEM certificate or key"},
		{"key is a cert", internalFiles(cert, cert, caPath), "security.ssl.internal.key: " + cert + " holds a certificate, want the private key"},
		{"cert is a key", internalFiles(key, key, caPath), "security.ssl.internal.cert: " + key + ` holds a private key (PEM "PRIVATE KEY"), want certificates`},
		{"key not PEM", internalFiles(cert, garbage, caPath), "security.ssl.internal.key: " + garbage + " is not a PEM private key file (no -----BEGIN ... PRIVATE KEY----- block)"},
		{"encrypted key", internalFiles(cert, encKey, caPath), "security.ssl.internal.key: " + encKey + " is an encrypted private key: weir needs it unencrypted (protect it with file permissions)"},
		{"mismatch", internalFiles(cert, otherKey, caPath), "security.ssl.internal.key: " + otherKey + ` does not match the certificate "CN=tm-1,O=weir test" in ` + cert + " (security.ssl.internal.cert)"},
		{"expired", internalFiles(expCert, expKey, caPath), "security.ssl.internal.cert: " + expCert + `: certificate "CN=old,O=weir test" expired at 2021-01-01T00:00:00Z`},
		{"CA not PEM", internalFiles(cert, key, garbage), "security.ssl.internal.ca: " + garbage + " is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := security.NewInternal(tt.f, security.Options{})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
			// Never key material: no line of any key file's base64 body.
			for _, k := range [][]byte{good.KeyPEM, other.KeyPEM} {
				for _, line := range strings.Split(string(k), "\n")[1:3] {
					if strings.Contains(err.Error(), line) {
						t.Fatalf("error %q contains key material", err)
					}
				}
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		p := filepath.Join(dir, "unreadable.crt")
		securitytest.WriteFile(t, p, good.CertPEM)
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		_, err := security.NewInternal(internalFiles(p, key, caPath), security.Options{})
		if want := "security.ssl.internal.cert: cannot read " + p + ": permission denied"; err == nil || err.Error() != want {
			t.Fatalf("error\n got: %v\nwant: %s", err, want)
		}
	})

	t.Run("api", func(t *testing.T) {
		_, err := security.NewAPIServer(apiFiles(cert, "", ""), false, security.Options{})
		if want := "security.ssl.api.key is not set: the job API's TLS needs a certificate and its key"; err == nil || err.Error() != want {
			t.Fatalf("error\n got: %v\nwant: %s", err, want)
		}
		_, err = security.NewAPIServer(apiFiles(cert, key, ""), true, security.Options{})
		if want := "security.ssl.api.ca is not set: client authentication on the job API needs the CA of the clients' certificates"; err == nil || err.Error() != want {
			t.Fatalf("error\n got: %v\nwant: %s", err, want)
		}
		_, err = security.NewAPIClient(apiFiles(cert, "", caPath), security.Options{})
		if want := "security.ssl.api.cert is set but security.ssl.api.key is not: both are needed"; err == nil || err.Error() != want {
			t.Fatalf("error\n got: %v\nwant: %s", err, want)
		}
	})
}

// server accepts one connection on a TLS listener, handshakes, writes "ok"
// and reports the handshake's result: the peer's identity or the error.
type server struct {
	addr string
	done chan result
}

type result struct {
	id  security.Identity
	err error
}

func serve(t *testing.T, s *security.TLS) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{addr: ln.Addr().String(), done: make(chan result, 1)}
	tl := s.Listener(ln)
	t.Cleanup(func() { _ = tl.Close() })
	go func() {
		c, err := tl.Accept()
		if err != nil {
			srv.done <- result{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tc, err := s.ServerHandshake(ctx, c)
		if err != nil {
			srv.done <- result{err: err}
			return
		}
		defer tc.Close()
		var r result
		r.id, r.err = security.ConnIdentity(tc.ConnectionState())
		_, _ = tc.Write([]byte("ok"))
		// Wait for the client to close, so that it reads "ok" or the alert.
		_, _ = tc.Read(make([]byte, 1))
		srv.done <- r
	}()
	return srv
}

func (s *server) result(t *testing.T) result {
	t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("server handshake did not finish")
		return result{}
	}
}

// dial handshakes with cfg, reads the server's "ok" and returns the server's
// certificate's common name, or the client's error.
func dial(addr string, cfg *tls.Config) (string, error) {
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	// TLS 1.3: the server checks the client's certificate after the client's
	// handshake returns; its refusal arrives as the first read's error.
	if _, err := tc.Read(make([]byte, 2)); err != nil {
		return "", err
	}
	return tc.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestInternalMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Test CA")
	jm := mustInternal(t, node(t, dir, ca, "jobmanager"), nil)
	tm := mustInternal(t, node(t, dir, ca, "taskmanager-1"), nil)

	srv := serve(t, jm)
	cn, err := dial(srv.addr, tm.ClientConfig())
	if err != nil || cn != "jobmanager" {
		t.Fatalf("client: cn %q, err %v", cn, err)
	}
	r := srv.result(t)
	if r.err != nil || r.id.CommonName != "taskmanager-1" || r.id.Subject != "CN=taskmanager-1,O=weir test" ||
		r.id.Issuer != "CN=Test CA,O=weir test" || len(r.id.IPs) != 1 || !r.id.IPs[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("server: %+v (%v)", r, r.err)
	}

	// The same through Dial, which reports a refusal as its own error.
	srv = serve(t, jm)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tm.Dial(ctx, "tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	srv.result(t)
}

func TestInternalRefusals(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Test CA")
	rogueCA := securitytest.NewCA(t, "Other CA")
	core, logs := observer.New(zap.InfoLevel)
	jmFiles := node(t, dir, ca, "jobmanager")
	jm := mustInternal(t, jmFiles, zap.New(core))
	rogue := rogueCA.Issue(t, securitytest.CertOptions{CommonName: "rogue"})
	roguePair, err := tls.X509KeyPair(rogue.CertPEM, rogue.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	addrRE := `127\.0\.0\.1:\d+`

	tests := []struct {
		name   string
		client *tls.Config
		want   string // the server's error, a regexp
	}{
		{"no certificate", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
			`^TLS handshake with ` + addrRE + `: tls: client didn't provide a certificate$`},
		// GetClientCertificate: crypto/tls's own choice among Certificates
		// would withhold a certificate the server's CA hint excludes.
		{"another CA", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &roguePair, nil }},
			`^TLS handshake with ` + addrRE + `: peer certificate "CN=rogue,O=weir test" \(issuer "CN=Other CA,O=weir test"\) refused by security\.ssl\.internal\.ca \(` +
				regexp.QuoteMeta(jmFiles.CA) + `\): x509: certificate signed by unknown authority$`},
		{"TLS 1.2", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
			`^TLS handshake with ` + addrRE + `: tls: client offered only unsupported versions: \[303\]$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, jm)
			if _, err := dial(srv.addr, tt.client); err == nil {
				t.Fatal("client: handshake succeeded")
			}
			r := srv.result(t)
			if r.err == nil || !regexp.MustCompile(tt.want).MatchString(r.err.Error()) {
				t.Fatalf("server error\n got: %v\nwant: %s", r.err, tt.want)
			}
		})
	}
	if n := logs.FilterMessage("TLS handshake refused").Len(); n != len(tests) {
		t.Errorf("%d refusals logged, want %d", n, len(tests))
	}

	t.Run("server from another CA", func(t *testing.T) {
		rogueSrv := mustInternal(t, node(t, t.TempDir(), rogueCA, "rogue"), nil)
		srv := serve(t, rogueSrv)
		_, err := dial(srv.addr, jm.ClientConfig())
		want := `peer certificate "CN=rogue,O=weir test" (issuer "CN=Other CA,O=weir test") refused by security.ssl.internal.ca (` +
			jmFiles.CA + `): x509: certificate signed by unknown authority`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("client error\n got: %v\nwant: %s", err, want)
		}
		srv.result(t)
	})

	t.Run("weir client with a certificate of another CA", func(t *testing.T) {
		d := t.TempDir()
		cert, key := rogue.Write(t, d, "rogue")
		c := mustInternal(t, internalFiles(cert, key, jmFiles.CA), nil)
		srv := serve(t, jm)
		_, err := dial(srv.addr, c.ClientConfig())
		want := `the server accepts client certificates of other CAs only: security.ssl.internal.cert (` + cert +
			`, issuer "CN=Other CA,O=weir test") would be refused`
		if err == nil || err.Error() != want {
			t.Fatalf("client error\n got: %v\nwant: %s", err, want)
		}
		srv.result(t)
	})

	t.Run("plain TCP", func(t *testing.T) {
		srv := serve(t, jm)
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		r := srv.result(t)
		_ = c.Close()
		if r.err == nil || !strings.Contains(r.err.Error(), "first record does not look like a TLS handshake") {
			t.Fatalf("server error: %v", r.err)
		}
	})
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Test CA")
	core, logs := observer.New(zap.InfoLevel)
	f := node(t, dir, ca, "jobmanager")
	jm := mustInternal(t, f, zap.New(core))
	tm := mustInternal(t, node(t, dir, ca, "taskmanager-1"), nil)

	serial := func() string {
		t.Helper()
		srv := serve(t, jm)
		d := tls.Dialer{Config: tm.ClientConfig()}
		c, err := d.DialContext(context.Background(), "tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		s := c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
		_ = c.Close()
		srv.result(t)
		return s
	}
	s1 := serial()

	// Half-way through a rotation: the new certificate with the old key.
	next := ca.Issue(t, securitytest.CertOptions{CommonName: "jobmanager"})
	securitytest.WriteFile(t, f.Cert, next.CertPEM)
	if s := serial(); s != s1 {
		t.Fatalf("half-rotated files: presented serial %s, want the previous %s", s, s1)
	}
	if e := logs.FilterMessage("TLS files changed but cannot be loaded; keeping the previous certificate").All(); len(e) != 1 ||
		!strings.Contains(fmt.Sprint(e[0].ContextMap()["error"]), "does not match the certificate") {
		t.Fatalf("half rotation logged %v", e)
	}
	serial() // the same failure is not logged twice
	if n := logs.FilterMessage("TLS files changed but cannot be loaded; keeping the previous certificate").Len(); n != 1 {
		t.Fatalf("failure logged %d times", n)
	}

	securitytest.WriteFile(t, f.Key, next.KeyPEM)
	s2 := serial()
	if s2 != next.Cert.SerialNumber.String() {
		t.Fatalf("after rotation: presented serial %s, want %s", s2, next.Cert.SerialNumber)
	}
	if logs.FilterMessage("TLS certificate reloaded").Len() != 1 {
		t.Fatalf("reload not logged: %v", logs.All())
	}

	// A corrupt file keeps the rotated certificate.
	securitytest.WriteFile(t, f.Cert, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	if s := serial(); s != s2 {
		t.Fatalf("corrupt file: presented serial %s, want %s", s, s2)
	}
	if err := os.Remove(f.Cert); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != s2 {
		t.Fatalf("missing file: presented serial %s, want %s", s, s2)
	}

	// The CA rotates too: a bundle of old and new, then a TaskManager of the
	// new CA is accepted without a restart.
	securitytest.WriteFile(t, f.Cert, next.CertPEM)
	newCA := securitytest.NewCA(t, "New CA")
	securitytest.WriteFile(t, f.CA, append(append([]byte{}, ca.CertPEM...), newCA.CertPEM...))
	tm2 := mustInternal(t, node(t, t.TempDir(), newCA, "taskmanager-2"), nil)
	srv := serve(t, jm)
	if _, err := dial(srv.addr, &tls.Config{InsecureSkipVerify: true, GetClientCertificate: tm2.ClientConfig().GetClientCertificate}); err != nil {
		t.Fatalf("client of the new CA: %v", err)
	}
	if r := srv.result(t); r.err != nil || r.id.CommonName != "taskmanager-2" {
		t.Fatalf("server: %+v (%v)", r, r.err)
	}
}

func TestAPI(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "API CA")
	cert, key := ca.Issue(t, securitytest.CertOptions{CommonName: "jobmanager"}).Write(t, dir, "server")
	caPath := ca.Write(t, dir, "ca.crt")
	ccert, ckey := ca.Issue(t, securitytest.CertOptions{CommonName: "alice"}).Write(t, dir, "alice")
	anon, err := security.NewAPIClient(apiFiles("", "", caPath), security.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := security.NewAPIClient(apiFiles(ccert, ckey, caPath), security.Options{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("without authentication", func(t *testing.T) {
		s, err := security.NewAPIServer(apiFiles(cert, key, ""), false, security.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv := serve(t, s)
		if cn, err := dial(srv.addr, anon.ClientConfig()); err != nil || cn != "jobmanager" {
			t.Fatalf("client: %q %v", cn, err)
		}
		if r := srv.result(t); r.err == nil || r.err.Error() != "peer presented no certificate" {
			t.Fatalf("server: want an anonymous peer, got %+v", r)
		}
		// The host name is checked: the certificate names 127.0.0.1 and
		// localhost only.
		srv = serve(t, s)
		cfg := anon.ClientConfig()
		cfg.ServerName = "jobmanager.example"
		_, err = dial(srv.addr, cfg)
		if want := "tls: failed to verify certificate: x509: certificate is valid for localhost, not jobmanager.example"; err == nil || err.Error() != want {
			t.Fatalf("client error\n got: %v\nwant: %s", err, want)
		}
		srv.result(t)
	})

	t.Run("with authentication", func(t *testing.T) {
		s, err := security.NewAPIServer(apiFiles(cert, key, caPath), true, security.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv := serve(t, s)
		_, err = dial(srv.addr, anon.ClientConfig())
		if want := "the server requires a client certificate and security.ssl.api.cert is not set"; err == nil || err.Error() != want {
			t.Fatalf("anonymous client error\n got: %v\nwant: %s", err, want)
		}
		// The client gave up in its handshake: the server sees it hang up
		// (EOF or a reset), nothing served.
		if r := srv.result(t); r.err == nil || !strings.HasPrefix(r.err.Error(), "TLS handshake with 127.0.0.1:") {
			t.Fatalf("server: %+v (%v)", r, r.err)
		}
		srv = serve(t, s)
		if cn, err := dial(srv.addr, alice.ClientConfig()); err != nil || cn != "jobmanager" {
			t.Fatalf("client: %q %v", cn, err)
		}
		if r := srv.result(t); r.err != nil || r.id.CommonName != "alice" {
			t.Fatalf("server: %+v (%v)", r, r.err)
		}
	})
}
