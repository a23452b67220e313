package ha

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/etcdtest"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

// etcdFromConfig opens a store as a daemon does: from configuration keys.
func etcdFromConfig(t *testing.T, keys map[string]string, address string) (*Etcd, error) {
	t.Helper()
	return etcdFromConfigLog(t, keys, address, zap.NewNop())
}

func etcdFromConfigLog(t *testing.T, keys map[string]string, address string, log *zap.Logger) (*Etcd, error) {
	t.Helper()
	cfg, _, err := config.FromMap(keys)
	if err != nil {
		t.Fatal(err)
	}
	ecfg, err := EtcdConfigFrom(cfg, address, log)
	if err != nil {
		return nil, err
	}
	e, err := NewEtcd(ecfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, nil
}

func tlsKeys(endpoint, cert, key, ca string) map[string]string {
	m := map[string]string{"high-availability.type": "etcd", "high-availability.etcd.endpoints": endpoint, "high-availability.cluster-id": "tls"}
	for k, v := range map[string]string{"high-availability.etcd.tls.cert": cert, "high-availability.etcd.tls.key": key, "high-availability.etcd.tls.ca": ca} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// A JobManager campaigns, leads and writes over TLS to an etcd that
// requires client certificates (host:port endpoints with
// high-availability.etcd.tls.enabled), and an observer finds it through an
// https:// endpoint, which turns TLS on by itself. Without a client
// certificate, or with the wrong CA or a client certificate of another
// CA, requests fail saying why the handshake failed and which key to
// look at, not only that they timed out.
func TestEtcdTLS(t *testing.T) {
	srv := etcdtest.StartWith(t, etcdtest.Options{TLS: true, ClientCertAuth: true})
	ep := srv.Endpoints()[0]

	keys := tlsKeys(ep, srv.ClientCertFile, srv.ClientKeyFile, srv.CAFile)
	keys["high-availability.etcd.tls.enabled"] = "true"
	keys["high-availability.storageDir"] = t.TempDir()
	jm, err := etcdFromConfig(t, keys, "10.0.0.1:6123")
	if err != nil {
		t.Fatal(err)
	}
	epoch, _ := lead(t, jm)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := jm.PutJobGraph(ctx, JobGraphRecord{JobID: "j1", Name: "tls", FileName: "job.yaml", Spec: []byte("name: tls\n")}); err != nil {
		t.Fatal(err)
	}

	obs, err := etcdFromConfig(t, tlsKeys(srv.ClientURL, srv.ClientCertFile, srv.ClientKeyFile, srv.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := obs.Leader(ctx); err != nil || l.Address != "10.0.0.1:6123" || l.Epoch != epoch {
		t.Fatalf("Leader = %+v, %v; want 10.0.0.1:6123 at epoch %d", l, err, epoch)
	}

	dir := t.TempDir()
	other := securitytest.NewCA(t, "other CA")
	otherCA := other.Write(t, dir, "other-ca.crt")
	otherCert, otherKey := other.Issue(t, securitytest.CertOptions{CommonName: "weir"}).Write(t, dir, "other")
	const timedOut = "ha: read the leader: etcd: context deadline exceeded; TLS handshake with etcd at " // then the endpoint
	for _, tc := range []struct {
		name, cert, key, ca, want string
	}{
		{"no client certificate", "", "", srv.CAFile,
			"the server requires a client certificate and high-availability.etcd.tls.cert is not set"},
		{"wrong CA", srv.ClientCertFile, srv.ClientKeyFile, otherCA,
			`tls: failed to verify certificate: x509: certificate signed by unknown authority (etcd's certificate "CN=etcd,O=weir test", ` +
				`issuer "CN=etcdtest CA,O=weir test", is not signed by high-availability.etcd.tls.ca ` + otherCA + `)`},
		{"system roots", srv.ClientCertFile, srv.ClientKeyFile, "",
			`tls: failed to verify certificate: x509: certificate signed by unknown authority (etcd's certificate "CN=etcd,O=weir test", ` +
				`issuer "CN=etcdtest CA,O=weir test", is not signed by a CA of the system roots: set high-availability.etcd.tls.ca)`},
		{"client certificate of another CA", otherCert, otherKey, srv.CAFile,
			`the server accepts client certificates of other CAs only: high-availability.etcd.tls.cert (` + otherCert +
				`, issuer "CN=other CA,O=weir test") would be refused`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			e, err := etcdFromConfigLog(t, tlsKeys("https://"+ep, tc.cert, tc.key, tc.ca), "", zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			// However many handshakes fail alike, the failure is logged
			// once, with the reason and without key material.
			defer func() {
				entries := logs.FilterMessage("TLS handshake with etcd failed").AllUntimed()
				if len(entries) != 1 {
					t.Fatalf("logged %d handshake failures, want 1: %+v", len(entries), entries)
				}
				if f := entries[0].ContextMap(); f["endpoint"] != ep || f["reason"] != tc.want {
					t.Fatalf("logged %v, want endpoint %s, reason %s", f, ep, tc.want)
				}
			}()
			// The first attempts may end before the first handshake
			// does, on a busy machine.
			want := timedOut + ep + " failed: " + tc.want
			deadline := time.Now().Add(30 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				_, err = e.Leader(ctx)
				cancel()
				if err != nil && err.Error() == want && errors.Is(err, context.DeadlineExceeded) {
					return
				}
				if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
					t.Fatalf("Leader: %v\nwant %s", err, want)
				}
			}
		})
	}
}

// TLS to an etcd that serves plaintext says so.
func TestEtcdTLSToPlaintextEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	ep := srv.Endpoints()[0]
	keys := tlsKeys(ep, "", "", "")
	keys["high-availability.etcd.tls.enabled"] = "true"
	e, err := etcdFromConfig(t, keys, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "ha: read the leader: etcd: context deadline exceeded; TLS handshake with etcd at " + ep +
		" failed: EOF (does etcd serve TLS there? It needs --cert-file, --key-file and https:// in --listen-client-urls)"
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err = e.Leader(ctx)
		cancel()
		if err != nil && err.Error() == want {
			return
		}
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
			t.Fatalf("Leader: %v\nwant %s", err, want)
		}
	}
}

// A broken TLS configuration stops EtcdConfigFrom, so a daemon or the CLI
// does not start, with an error naming the key and the file.
func TestEtcdTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "ca")
	caFile := ca.Write(t, dir, "ca.crt")
	cert, key := ca.Issue(t, securitytest.CertOptions{CommonName: "a"}).Write(t, dir, "a")
	_, otherKey := ca.Issue(t, securitytest.CertOptions{CommonName: "b"}).Write(t, dir, "b")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	on := func(m map[string]string) map[string]string {
		m["high-availability.etcd.tls.enabled"] = "true"
		return m
	}
	for _, tc := range []struct {
		keys map[string]string
		want string
	}{
		{on(tlsKeys("h:2379", "", "", missing)), "high-availability.etcd.tls.ca: " + missing + " does not exist"},
		{on(tlsKeys("h:2379", "", "", notPEM)), "high-availability.etcd.tls.ca: " + notPEM + " is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)"},
		{on(tlsKeys("h:2379", cert, "", caFile)), "high-availability.etcd.tls.cert is set but high-availability.etcd.tls.key is not: both are needed"},
		{tlsKeys("https://h:2379", notPEM, key, caFile), "high-availability.etcd.tls.cert: " + notPEM + " is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)"},
		{tlsKeys("https://h:2379", cert, notPEM, caFile), "high-availability.etcd.tls.key: " + notPEM + " is not a PEM private key file (no -----BEGIN ... PRIVATE KEY----- block)"},
		{tlsKeys("https://h:2379", cert, otherKey, caFile), "high-availability.etcd.tls.key: " + otherKey + ` does not match the certificate "CN=a,O=weir test" in ` + cert + " (high-availability.etcd.tls.cert)"},
		{tlsKeys("h:2379", "", "", caFile), "high-availability.etcd.tls.ca is set but TLS to etcd is off: set high-availability.etcd.tls.enabled: true or use https:// endpoints in high-availability.etcd.endpoints"},
		{tlsKeys("https://h1:2379,http://h2:2379", "", "", caFile), "ha: etcd: high-availability.etcd.endpoints mixes http:// and https:// endpoints (http://h2:2379, https://h1:2379): use one or the other"},
		{on(tlsKeys("h1:2379,http://h2:2379", "", "", caFile)), "ha: etcd: high-availability.etcd.endpoints: http://h2:2379 is plaintext but high-availability.etcd.tls.enabled is true: use https:// or host:port"},
		{tlsKeys("unix:///run/etcd.sock", "", "", ""), `ha: etcd: high-availability.etcd.endpoints: "unix:///run/etcd.sock": want host:port, http://host:port or https://host:port`},
	} {
		if _, err := etcdFromConfig(t, tc.keys, ""); err == nil || err.Error() != tc.want {
			t.Errorf("%v:\n got %v\nwant %s", tc.keys, err, tc.want)
		}
	}
	// The key's bytes are never in an error.
	keyPEM, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = etcdFromConfig(t, tlsKeys("https://h:2379", cert, otherKey, caFile), "")
	if body := strings.Split(string(keyPEM), "\n")[1]; err == nil || strings.Contains(err.Error(), body) {
		t.Fatalf("key mismatch: %v", err)
	}
}
