package security_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/security"
)

// The walk-through of docs/security.md, run: deploy/tls/make-certs.sh makes
// the certificates of its three-VM cluster, the daemons' and the CLI's
// configuration (the keys the page shows) load them, and real handshakes over
// loopback accept what the page says is accepted and refuse a certificate of
// another run (another CA), naming it.

const makeCerts = "../../deploy/tls/make-certs.sh"

// The page's command: vm1 runs the JobManager and a TaskManager, alice is
// the operator.
var walkArgs = []string{"--client", "alice", "OUT", "vm1=10.0.0.11", "vm2=10.0.0.12", "vm3=10.0.0.13"}

// makeCertsArgs is walkArgs with OUT replaced by out and extra in front.
func makeCertsArgs(out string, extra ...string) []string {
	args := append([]string{}, extra...)
	for _, a := range walkArgs {
		if a == "OUT" {
			a = out
		}
		args = append(args, a)
	}
	return args
}

func runMakeCerts(t *testing.T, args ...string) string {
	t.Helper()
	// sh, not the file's mode or shebang: the script must run in a POSIX
	// shell (dash where sh is dash).
	cmd := exec.Command("sh", append([]string{makeCerts}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("make-certs.sh %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("make-certs.sh %s wrote to stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String()
}

// walkConfig is a configuration of key, value pairs, built as a daemon
// builds its own (unknown keys would be warnings: none are expected).
func walkConfig(t *testing.T, kv ...string) *config.Config {
	t.Helper()
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	c, warnings, err := config.FromMap(m)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("config %v: %v %v", m, err, warnings)
	}
	return c
}

// vmKeys: security.ssl.internal.* of a VM whose files are in dir; on a
// JobManager VM also security.ssl.api.* with client authentication.
func vmKeys(dir string, jobmanager bool) []string {
	kv := []string{
		"security.ssl.internal.enabled", "true",
		"security.ssl.internal.cert", filepath.Join(dir, "internal.crt"),
		"security.ssl.internal.key", filepath.Join(dir, "internal.key"),
		"security.ssl.internal.ca", filepath.Join(dir, "internal-ca.crt"),
	}
	if jobmanager {
		kv = append(kv,
			"security.ssl.api.enabled", "true",
			"security.ssl.api.cert", filepath.Join(dir, "api.crt"),
			"security.ssl.api.key", filepath.Join(dir, "api.key"),
			"security.ssl.api.ca", filepath.Join(dir, "api-ca.crt"),
			"security.ssl.api.authentication-enabled", "true")
	}
	return kv
}

func cliKeys(dir string) []string {
	return []string{
		"security.ssl.api.enabled", "true",
		"security.ssl.api.ca", filepath.Join(dir, "api-ca.crt"),
		"security.ssl.api.cert", filepath.Join(dir, "client.crt"),
		"security.ssl.api.key", filepath.Join(dir, "client.key"),
	}
}

func vmConfig(t *testing.T, dir string, jobmanager bool) *config.Config {
	return walkConfig(t, vmKeys(dir, jobmanager)...)
}

func cliConfig(t *testing.T, dir string) *config.Config { return walkConfig(t, cliKeys(dir)...) }

// TestWalkthroughDocumented: docs/security.md shows the command and the
// configuration that TestWalkthrough runs, with the page's paths.
func TestWalkthroughDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if cmd := "deploy/tls/make-certs.sh " + strings.Join(makeCertsArgs("./weir-tls"), " "); !strings.Contains(page, cmd) {
		t.Errorf("docs/security.md does not show %q", cmd)
	}
	for _, kv := range [][]string{vmKeys("/etc/weir/tls", true), cliKeys("/home/alice/.weir/tls")} {
		for i := 0; i < len(kv); i += 2 {
			// A YAML line, maybe with a comment after the value.
			line := kv[i] + ": " + kv[i+1]
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `( +#.*)?$`).MatchString(page) {
				t.Errorf("docs/security.md does not show the line %q", line)
			}
		}
	}
}

// Re-read the files on every handshake, so that a rotation is seen at once.
var walkOpts = security.Options{CheckInterval: 0}

func internalTLS(t *testing.T, c *config.Config) *security.TLS {
	t.Helper()
	s, err := security.NewInternal(security.InternalFiles(c), walkOpts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apiServerTLS(t *testing.T, c *config.Config) *security.TLS {
	t.Helper()
	s, err := security.NewAPIServer(security.APIFiles(c), c.Bool(config.SSLAPIAuthentication), walkOpts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apiClientTLS(t *testing.T, c *config.Config) *security.TLS {
	t.Helper()
	s, err := security.NewAPIClient(security.APIFiles(c), walkOpts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// internalClient is a daemon's dialer: the server name "weir-internal"
// tells a JobManager's port that a daemon is calling.
func internalClient(s *security.TLS) *tls.Config {
	c := s.ClientConfig()
	c.ServerName = "weir-internal"
	return c
}

// apiClient is the CLI's dialer for a JobManager it reaches as host.
func apiClient(s *security.TLS, host string) *tls.Config {
	c := s.ClientConfig()
	c.ServerName = host
	return c
}

// rogue presents a certificate without any of weir's client-side checks, as
// a client that wants in would.
func rogue(t *testing.T, cert, key string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	// GetClientCertificate, not Certificates: crypto/tls would send nothing
	// when the server's CA list does not name the certificate's issuer.
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}
}

// handshakeResult is what one side of a handshake saw: the peer's
// certificate subject or the error.
type handshakeResult struct {
	peer, issuer, serial string
	serverName           string // server side: the SNI the client sent
	err                  string
}

// handshake accepts one connection on loopback with srv (ServerHandshake, as
// the data plane does) and dials it with client. The server answers "ok"
// after its handshake, which the client reads: in TLS 1.3 the client's
// handshake is over before the server has checked the client's certificate,
// so only that read tells whether the server accepted it.
func handshake(t *testing.T, srv *security.TLS, client *tls.Config) (server, cl handshakeResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan handshakeResult, 1)
	go func() {
		var r handshakeResult
		defer func() { done <- r }()
		conn, err := ln.Accept()
		if err != nil {
			r.err = "accept: " + err.Error()
			return
		}
		peer := conn.RemoteAddr().String()
		tc, err := srv.ServerHandshake(ctx, conn)
		if err != nil {
			r.err = strings.TrimPrefix(err.Error(), "TLS handshake with "+peer+": ")
			return
		}
		defer tc.Close()
		r = fromState(tc.ConnectionState())
		_ = tc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := tc.Write([]byte("ok")); err != nil {
			r.err = "write: " + err.Error()
		}
	}()

	d := tls.Dialer{Config: client}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		cl.err = err.Error()
		_ = ln.Close() // the server may not have been dialled at all
	} else {
		tc := c.(*tls.Conn)
		cl = fromState(tc.ConnectionState())
		_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(io.LimitReader(tc, 2))
		if err == nil && string(b) != "ok" {
			err = fmt.Errorf("read %q, want ok", b)
		}
		if err != nil {
			cl.err = "read: " + err.Error()
		}
		_ = tc.Close()
	}
	server = <-done
	return server, cl
}

func fromState(cs tls.ConnectionState) handshakeResult {
	r := handshakeResult{serverName: cs.ServerName}
	id, err := security.ConnIdentity(cs)
	if err != nil {
		r.peer = "(" + err.Error() + ")"
		return r
	}
	r.peer, r.issuer, r.serial = id.Subject, id.Issuer, id.Serial
	return r
}

// caSubject reads the subject of the first certificate of a CA file and
// checks that it is one make-certs.sh makes: "CN=<name> <8 hex digits>,O=weir".
func caSubject(t *testing.T, path, name string) string {
	t.Helper()
	c := readCert(t, path)
	if !regexp.MustCompile(`^CN=` + name + ` [0-9a-f]{8},O=weir$`).MatchString(c.Subject.String()) {
		t.Fatalf("%s: subject %q, want CN=%s <8 hex digits>,O=weir", path, c.Subject, name)
	}
	return c.Subject.String()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not on PATH (Debian/Ubuntu package openssl): the walk-through of docs/security.md needs it")
	}
	out := t.TempDir()
	stdout := runMakeCerts(t, makeCertsArgs(out)...)
	p := func(elem ...string) string { return filepath.Join(append([]string{out}, elem...)...) }

	internalCA := caSubject(t, p("ca", "internal-ca.crt"), "weir internal CA")
	apiCA := caSubject(t, p("ca", "api-ca.crt"), "weir API CA")
	wantOut := strings.Join([]string{
		"created " + p("ca", "internal-ca.key") + " (0600): keep it off the cluster's machines",
		"created " + p("ca", "internal-ca.crt") + ": " + internalCA,
		"created " + p("ca", "api-ca.key") + " (0600): keep it off the cluster's machines",
		"created " + p("ca", "api-ca.crt") + ": " + apiCA,
		"created " + p("vm1", "internal.crt") + ", internal.key (0600), internal-ca.crt: CN=vm1,O=weir DNS:vm1,IP:10.0.0.11",
		"created " + p("vm2", "internal.crt") + ", internal.key (0600), internal-ca.crt: CN=vm2,O=weir DNS:vm2,IP:10.0.0.12",
		"created " + p("vm3", "internal.crt") + ", internal.key (0600), internal-ca.crt: CN=vm3,O=weir DNS:vm3,IP:10.0.0.13",
		"created " + p("vm1", "api.crt") + ", api.key (0600), api-ca.crt: CN=vm1,O=weir DNS:vm1,IP:10.0.0.11",
		"created " + p("clients", "alice", "client.crt") + ", client.key (0600), api-ca.crt: CN=alice,O=weir",
		"valid for 365 days; copy each VM's directory to it (docs/security.md), keep " + out + "/ca to yourself",
		""}, "\n")
	if stdout != wantOut {
		t.Errorf("make-certs.sh printed\n%s\nwant\n%s", stdout, wantOut)
	}

	t.Run("files", func(t *testing.T) {
		want := map[string]os.FileMode{
			"ca/internal-ca.key": 0o600, "ca/internal-ca.crt": 0o644, "ca/api-ca.key": 0o600, "ca/api-ca.crt": 0o644,
			"vm1/internal.crt": 0o644, "vm1/internal.key": 0o600, "vm1/internal-ca.crt": 0o644,
			"vm1/api.crt": 0o644, "vm1/api.key": 0o600, "vm1/api-ca.crt": 0o644,
			"vm2/internal.crt": 0o644, "vm2/internal.key": 0o600, "vm2/internal-ca.crt": 0o644,
			"vm3/internal.crt": 0o644, "vm3/internal.key": 0o600, "vm3/internal-ca.crt": 0o644,
			"clients/alice/client.crt": 0o644, "clients/alice/client.key": 0o600, "clients/alice/api-ca.crt": 0o644,
		}
		got := map[string]os.FileMode{}
		err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(out, path)
			got[filepath.ToSlash(rel)] = fi.Mode().Perm()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("files and modes\n%v\nwant\n%v", got, want)
		}

		// What the page says of each certificate: the CA file next to a
		// certificate is its CA; the extended key usages of the role.
		for _, c := range []struct {
			cert, ca string
			usage    []x509.ExtKeyUsage
			dns, ip  string
		}{
			{"vm2/internal.crt", "vm2/internal-ca.crt", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "vm2", "10.0.0.12"},
			{"vm1/api.crt", "vm1/api-ca.crt", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "vm1", "10.0.0.11"},
			{"clients/alice/client.crt", "clients/alice/api-ca.crt", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "", ""},
		} {
			leaf, ca := readCert(t, p(c.cert)), readCert(t, p(c.ca))
			if err := leaf.CheckSignatureFrom(ca); err != nil {
				t.Errorf("%s is not signed by %s: %v", c.cert, c.ca, err)
			}
			if fmt.Sprint(leaf.ExtKeyUsage) != fmt.Sprint(c.usage) || leaf.IsCA {
				t.Errorf("%s: extended key usage %v (CA %v), want %v", c.cert, leaf.ExtKeyUsage, leaf.IsCA, c.usage)
			}
			var dns, ip string
			if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 {
				dns, ip = fmt.Sprint(leaf.DNSNames), fmt.Sprint(leaf.IPAddresses)
				if dns != "["+c.dns+"]" || ip != "["+c.ip+"]" {
					t.Errorf("%s: SANs %s %s, want DNS %s IP %s", c.cert, dns, ip, c.dns, c.ip)
				}
			} else if c.dns != "" {
				t.Errorf("%s has no SAN, want DNS %s IP %s", c.cert, c.dns, c.ip)
			}
		}
	})

	vm1 := vmConfig(t, p("vm1"), true)
	vm1Internal, vm1API := internalTLS(t, vm1), apiServerTLS(t, vm1)
	vm2Internal := internalTLS(t, vmConfig(t, p("vm2"), false))
	alice := apiClientTLS(t, cliConfig(t, p("clients", "alice")))

	// Another run: another cluster's CAs, with the same names.
	other := t.TempDir()
	runMakeCerts(t, makeCertsArgs(other)...)
	o := func(elem ...string) string { return filepath.Join(append([]string{other}, elem...)...) }
	otherInternalCA := caSubject(t, o("ca", "internal-ca.crt"), "weir internal CA")
	otherAPICA := caSubject(t, o("ca", "api-ca.crt"), "weir API CA")
	if otherInternalCA == internalCA || otherAPICA == apiCA {
		t.Fatalf("two runs made CAs of the same name: %s, %s", internalCA, apiCA)
	}

	t.Run("internal mutual TLS", func(t *testing.T) {
		srv, cl := handshake(t, vm1Internal, internalClient(vm2Internal))
		want := handshakeResult{peer: "CN=vm2,O=weir", issuer: internalCA, serverName: "weir-internal"}
		if srv.err != "" || srv.peer != want.peer || srv.issuer != want.issuer || srv.serverName != want.serverName {
			t.Errorf("vm1 (server) saw %+v, want %+v", srv, want)
		}
		if cl.err != "" || cl.peer != "CN=vm1,O=weir" || cl.issuer != internalCA {
			t.Errorf("vm2 (client) saw %+v, want CN=vm1,O=weir issued by %s", cl, internalCA)
		}
	})

	t.Run("API with client authentication", func(t *testing.T) {
		for _, host := range []string{"10.0.0.11", "vm1"} {
			srv, cl := handshake(t, vm1API, apiClient(alice, host))
			if srv.err != "" || srv.peer != "CN=alice,O=weir" || srv.issuer != apiCA {
				t.Errorf("dialling %s: the JobManager saw %+v, want CN=alice,O=weir issued by %s", host, srv, apiCA)
			}
			if cl.err != "" || cl.peer != "CN=vm1,O=weir" || cl.issuer != apiCA {
				t.Errorf("dialling %s: the CLI saw %+v, want CN=vm1,O=weir issued by %s", host, cl, apiCA)
			}
		}
		// The CLI checks the address it dialled against the SANs.
		_, cl := handshake(t, vm1API, apiClient(alice, "10.0.0.12"))
		if want := "tls: failed to verify certificate: x509: certificate is valid for 10.0.0.11, not 10.0.0.12"; cl.err != want {
			t.Errorf("dialling 10.0.0.12: %q, want %q", cl.err, want)
		}
		// An internal certificate is no API client certificate: the CAs
		// are separate.
		tmAsCLI := apiClientTLS(t, walkConfig(t, "security.ssl.api.enabled", "true",
			"security.ssl.api.cert", p("vm2", "internal.crt"), "security.ssl.api.key", p("vm2", "internal.key"),
			"security.ssl.api.ca", p("clients", "alice", "api-ca.crt")))
		_, cl = handshake(t, vm1API, apiClient(tmAsCLI, "10.0.0.11"))
		if want := fmt.Sprintf("the server accepts client certificates of other CAs only: security.ssl.api.cert (%s, issuer %q) would be refused",
			p("vm2", "internal.crt"), internalCA); cl.err != want {
			t.Errorf("internal certificate as the CLI's: %q, want %q", cl.err, want)
		}
	})

	t.Run("another CA is refused", func(t *testing.T) {
		unknown := "x509: certificate signed by unknown authority"
		otherVM1 := vmConfig(t, o("vm1"), true)

		// A TaskManager of the other cluster dials vm1: it does not take
		// vm1 for its JobManager...
		_, cl := handshake(t, vm1Internal, internalClient(internalTLS(t, vmConfig(t, o("vm2"), false))))
		if want := fmt.Sprintf("peer certificate %q (issuer %q) refused by security.ssl.internal.ca (%s): %s",
			"CN=vm1,O=weir", internalCA, o("vm2", "internal-ca.crt"), unknown); cl.err != want {
			t.Errorf("other vm2 -> vm1: client error %q, want %q", cl.err, want)
		}
		// ...and vm1 refuses its certificate whoever presents it.
		srv, _ := handshake(t, vm1Internal, rogue(t, o("vm2", "internal.crt"), o("vm2", "internal.key")))
		if want := fmt.Sprintf("peer certificate %q (issuer %q) refused by security.ssl.internal.ca (%s): %s",
			"CN=vm2,O=weir", otherInternalCA, p("vm1", "internal-ca.crt"), unknown); srv.err != want {
			t.Errorf("other vm2 -> vm1: vm1's error %q, want %q", srv.err, want)
		}
		// vm2 does not take the other cluster's vm1 for its JobManager.
		_, cl = handshake(t, internalTLS(t, otherVM1), internalClient(vm2Internal))
		if want := fmt.Sprintf("peer certificate %q (issuer %q) refused by security.ssl.internal.ca (%s): %s",
			"CN=vm1,O=weir", otherInternalCA, p("vm2", "internal-ca.crt"), unknown); cl.err != want {
			t.Errorf("vm2 -> other vm1: vm2's error %q, want %q", cl.err, want)
		}

		// The API: another CA's client certificate, and another CA's
		// JobManager.
		srv, _ = handshake(t, vm1API, rogue(t, o("clients", "alice", "client.crt"), o("clients", "alice", "client.key")))
		if want := fmt.Sprintf("peer certificate %q (issuer %q) refused by security.ssl.api.ca (%s): %s",
			"CN=alice,O=weir", otherAPICA, p("vm1", "api-ca.crt"), unknown); srv.err != want {
			t.Errorf("other alice -> vm1 API: %q, want %q", srv.err, want)
		}
		_, cl = handshake(t, apiServerTLS(t, otherVM1), apiClient(alice, "10.0.0.11"))
		if want := "tls: failed to verify certificate: " + unknown; cl.err != want {
			t.Errorf("alice -> other vm1 API: %q, want %q", cl.err, want)
		}
	})

	t.Run("openssl s_client as the page shows", func(t *testing.T) {
		// The page's verification commands, against the Go servers; the
		// address is loopback, the name or IP checked is the page's.
		for _, c := range []struct {
			name string
			srv  *security.TLS
			args []string
			peer string
		}{
			{"internal", vm1Internal, []string{"-servername", "weir-internal", "-CAfile", p("vm2", "internal-ca.crt"),
				"-cert", p("vm2", "internal.crt"), "-key", p("vm2", "internal.key")}, "CN=vm2,O=weir"},
			{"api", vm1API, []string{"-verify_ip", "10.0.0.11", "-CAfile", p("clients", "alice", "api-ca.crt"),
				"-cert", p("clients", "alice", "client.crt"), "-key", p("clients", "alice", "client.key")}, "CN=alice,O=weir"},
		} {
			srv, msg := sClient(t, c.srv, c.args)
			if srv.err != "" || srv.peer != c.peer {
				t.Errorf("%s: the server saw %+v, want %s", c.name, srv, c.peer)
			}
			if !strings.Contains(msg, "Verification: OK") || !strings.Contains(msg, "Protocol version: TLSv1.3") {
				t.Errorf("%s: openssl s_client said\n%s", c.name, msg)
			}
		}
	})

	t.Run("rerun reuses the CA; leaves rotate without a restart", func(t *testing.T) {
		caKey, err := os.ReadFile(p("ca", "internal-ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := handshake(t, vm1Internal, internalClient(vm2Internal))
		before := srv.serial
		again := runMakeCerts(t, makeCertsArgs(out)...)
		if !strings.HasPrefix(again, "reused  "+p("ca", "internal-ca.crt")+": "+internalCA+" (its key exists; --force makes a new CA)\n") {
			t.Errorf("second run printed\n%s", again)
		}
		if b, _ := os.ReadFile(p("ca", "internal-ca.key")); !bytes.Equal(b, caKey) {
			t.Errorf("a second run without --force replaced %s", p("ca", "internal-ca.key"))
		}
		// vm1 and vm2 keep their TLS values: both re-read the new files
		// by the next handshake.
		srv, cl := handshake(t, vm1Internal, internalClient(vm2Internal))
		if srv.err != "" || cl.err != "" || srv.peer != "CN=vm2,O=weir" || srv.serial == before {
			t.Errorf("after a rerun vm1 saw %+v (serial before %s), vm2 %+v", srv, before, cl)
		}
	})

	t.Run("CA rotation with --force", func(t *testing.T) {
		// vm2 keeps its certificate of the old CA until the end of the
		// rotation (it is copied aside, as if still on vm2).
		oldVM2 := t.TempDir()
		for _, f := range []string{"internal.crt", "internal.key"} {
			b, err := os.ReadFile(p("vm2", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(oldVM2, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		oldCA, err := os.ReadFile(p("ca", "internal-ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		runMakeCerts(t, makeCertsArgs(out, "--force")...)
		newCA := caSubject(t, p("ca", "internal-ca.crt"), "weir internal CA")
		newCAPEM, _ := os.ReadFile(p("ca", "internal-ca.crt"))
		if b, _ := os.ReadFile(p("ca", "internal-ca.previous.crt")); !bytes.Equal(b, oldCA) {
			t.Errorf("ca/internal-ca.previous.crt is not the replaced CA")
		}
		bundle, _ := os.ReadFile(p("ca", "internal-ca-bundle.crt"))
		if want := append(append([]byte{}, newCAPEM...), oldCA...); !bytes.Equal(bundle, want) {
			t.Errorf("ca/internal-ca-bundle.crt is not the new CA then the old one")
		}
		if b, _ := os.ReadFile(p("vm1", "internal-ca.crt")); !bytes.Equal(b, bundle) {
			t.Errorf("during the rotation vm1/internal-ca.crt is not the bundle")
		}
		// Mid-rotation: vm1 has its new certificate, vm2 its old one, both
		// trust the bundle.
		oldVM2Files := walkConfig(t, "security.ssl.internal.enabled", "true",
			"security.ssl.internal.cert", filepath.Join(oldVM2, "internal.crt"),
			"security.ssl.internal.key", filepath.Join(oldVM2, "internal.key"),
			"security.ssl.internal.ca", p("vm1", "internal-ca.crt"))
		srv, cl := handshake(t, vm1Internal, internalClient(internalTLS(t, oldVM2Files)))
		if srv.err != "" || srv.issuer != internalCA || cl.err != "" || cl.issuer != newCA {
			t.Errorf("mid-rotation: vm1 saw %+v (want issuer %s), vm2 %+v (want issuer %s)", srv, internalCA, cl, newCA)
		}
		// The end: the new CA alone refuses the old certificate.
		if err := os.WriteFile(p("vm1", "internal-ca.crt"), newCAPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		srv, _ = handshake(t, vm1Internal, rogue(t, filepath.Join(oldVM2, "internal.crt"), filepath.Join(oldVM2, "internal.key")))
		if want := fmt.Sprintf("peer certificate %q (issuer %q) refused by security.ssl.internal.ca (%s): x509: certificate signed by unknown authority",
			"CN=vm2,O=weir", internalCA, p("vm1", "internal-ca.crt")); srv.err != want {
			t.Errorf("after the rotation: %q, want %q", srv.err, want)
		}
	})
}

// sClient runs openssl s_client against srv and returns what the server saw
// and what openssl printed.
func sClient(t *testing.T, srv *security.TLS, args []string) (handshakeResult, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan handshakeResult, 1)
	go func() {
		var r handshakeResult
		defer func() { done <- r }()
		conn, err := ln.Accept()
		if err != nil {
			r.err = "accept: " + err.Error()
			return
		}
		tc, err := srv.ServerHandshake(ctx, conn)
		if err != nil {
			r.err = err.Error()
			return
		}
		defer tc.Close()
		r = fromState(tc.ConnectionState())
		// Until openssl hangs up (its stdin is empty).
		_ = tc.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, tc)
	}()
	cmd := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", ln.Addr().String(), "-brief", "-verify_return_error"}, args...)...)
	cmd.Stdin = strings.NewReader("")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		msg = append(msg, []byte("\n(exit: "+err.Error()+")")...)
	}
	_ = ln.Close()
	return <-done, string(msg)
}
