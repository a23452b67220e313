package s3_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/miniotest"
	"github.com/weirstream/weir/pkg/security/securitytest"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/snapshot/s3"
)

// tlsConfig is the driver's configuration for srv from its keys, as a
// daemon reads them, with s3.ssl.ca set to ca ("" for none).
func tlsConfig(t *testing.T, srv *miniotest.Server, ca string) s3.Config {
	t.Helper()
	keys := srv.Config()
	delete(keys, "s3.ssl.ca")
	if ca != "" {
		keys["s3.ssl.ca"] = ca
	}
	cfg, _, err := config.FromMap(keys)
	if err != nil {
		t.Fatal(err)
	}
	c := s3.ConfigFrom(cfg)
	c.MinBackoff, c.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	return c
}

// A checkpoint is written to and read from an https endpoint whose
// certificate a private CA signed, with s3.ssl.ca. Without it, or with
// another CA, the first request fails at once (an untrusted certificate
// is not retried) naming s3.endpoint and s3.ssl.ca.
func TestHTTPSWithCustomCA(t *testing.T) {
	srv := miniotest.StartWith(t, miniotest.Options{TLS: true})
	register(t, tlsConfig(t, srv, srv.CAFile))
	loc, _ := open(t, "s3://"+srv.Bucket+"/cp").CheckpointLocation("job1", 1)
	h := write(t, loc, "op", "state over TLS")
	if _, err := loc.WriteMetadata(t.Context(), metadata("job1", 1, false, h)); err != nil {
		t.Fatal(err)
	}
	m, err := snapshot.LoadMetadata(t.Context(), loc.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m.Dir, m.Operators[0].Subtasks[0].State[0].StateHandle); got != "state over TLS" {
		t.Fatalf("read %q", got)
	}

	other := securitytest.NewCA(t, "other CA").Write(t, t.TempDir(), "other.crt")
	cause := "tls: failed to verify certificate: x509: certificate signed by unknown authority (endpoint " + srv.Endpoint + "); " +
		"the certificate of s3.endpoint " + srv.Endpoint + ` ("CN=minio,O=weir test", issuer "CN=miniotest CA,O=weir test") is not signed by `
	for _, tc := range []struct{ ca, want string }{
		{"", cause + "a CA of the system roots: set s3.ssl.ca to the PEM file of its CA"},
		{other, cause + "s3.ssl.ca " + other},
	} {
		register(t, tlsConfig(t, srv, tc.ca))
		_, err := snapshot.LoadMetadata(t.Context(), loc.Path())
		meta := "s3://" + srv.Bucket + "/cp/job1/chk-1/_metadata"
		want := "load metadata " + meta + ": s3 get " + meta + ": " + tc.want
		if err == nil || err.Error() != want {
			t.Errorf("s3.ssl.ca %q: %v\nwant %s", tc.ca, err, want)
		}
	}
}

// s3.ssl.ca is read by New: a file that is missing or not PEM, or a CA
// for a plaintext endpoint, is an error naming the key.
func TestCAConfiguration(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := securitytest.NewCA(t, "ca").Write(t, dir, "ca.crt")
	for _, c := range []struct {
		c    s3.Config
		want string
	}{
		{s3.Config{Endpoint: "https://127.0.0.1:9000", CAFile: filepath.Join(dir, "missing.crt")}, "s3: s3.ssl.ca: " + filepath.Join(dir, "missing.crt") + " does not exist"},
		{s3.Config{Endpoint: "127.0.0.1:9000", CAFile: notPEM}, "s3: s3.ssl.ca: " + notPEM + " is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)"},
		{s3.Config{Endpoint: "http://127.0.0.1:9000", CAFile: ca}, "s3: s3.ssl.ca is set but s3.endpoint http://127.0.0.1:9000 is plaintext: use https://, or unset s3.ssl.ca"},
	} {
		if _, err := s3.New(c.c); err == nil || err.Error() != c.want {
			t.Errorf("New(%+v) = %v\nwant %s", c.c, err, c.want)
		}
	}
	if _, err := s3.New(s3.Config{Endpoint: "https://127.0.0.1:9000", CAFile: ca}); err != nil {
		t.Fatal(err)
	}
}
