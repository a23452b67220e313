package security_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

func TestGRPC(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Test CA")
	core, logs := observer.New(zap.InfoLevel)
	jm := mustInternal(t, node(t, dir, ca, "jobmanager"), zap.New(core))
	tm := mustInternal(t, node(t, dir, ca, "taskmanager-1"), nil)

	var mu sync.Mutex
	var seen security.Identity
	srv := grpc.NewServer(grpc.Creds(jm.ServerCredentials()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			p, _ := peer.FromContext(ctx)
			id, err := security.PeerIdentity(p)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			seen = id
			mu.Unlock()
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		<-served
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(tm.ClientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	_ = conn.Close()
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
	mu.Lock()
	if seen.Subject != "CN=taskmanager-1,O=weir test" {
		t.Errorf("peer identity %+v", seen)
	}
	mu.Unlock()

	// A plaintext call is refused before any request is served.
	conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	_, err = healthpb.NewHealthClient(conn).Check(short, &healthpb.HealthCheckRequest{})
	cancel2()
	_ = conn.Close()
	if err == nil {
		t.Fatal("plaintext Check succeeded")
	}
	// The refusal is logged with the peer's address and the reason.
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := logs.FilterMessage("TLS handshake refused").All()
		if len(e) > 0 {
			m := e[0].ContextMap()
			if !strings.HasPrefix(m["peer"].(string), "127.0.0.1:") ||
				!strings.Contains(m["error"].(string), "first record does not look like a TLS handshake") {
				t.Fatalf("logged %v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refused handshake not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if seen.Subject != "CN=taskmanager-1,O=weir test" {
		t.Errorf("a plaintext call reached the handler: %+v", seen)
	}
	mu.Unlock()
}

func TestCheckInterval(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Test CA")
	f := node(t, dir, ca, "jobmanager")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := security.NewInternal(f, security.Options{CheckInterval: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	cert := func() string {
		c, err := s.ClientConfig().GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return string(c.Certificate[0])
	}
	before := cert()
	next := ca.Issue(t, securitytest.CertOptions{CommonName: "jobmanager"})
	securitytest.WriteFile(t, f.Cert, next.CertPEM)
	securitytest.WriteFile(t, f.Key, next.KeyPEM)
	if cert() != before {
		t.Fatal("files re-read before the check interval passed")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if cert() != string(next.Cert.Raw) {
		t.Fatal("files not re-read after the check interval")
	}
}

func TestExplainAPIError(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "API CA")
	other := securitytest.NewCA(t, "Other CA")
	cert, key := ca.Issue(t, securitytest.CertOptions{CommonName: "jobmanager"}).Write(t, dir, "server")
	caPath := ca.Write(t, dir, "ca.crt")
	otherPath := other.Write(t, dir, "other.crt")
	mc, mk := other.Issue(t, securitytest.CertOptions{CommonName: "mallory"}).Write(t, dir, "mallory")
	ac, ak := ca.Issue(t, securitytest.CertOptions{CommonName: "alice"}).Write(t, dir, "alice")
	server, err := security.NewAPIServer(apiFiles(cert, key, caPath), true, security.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := func(c credentials.TransportCredentials) string {
		s := grpc.NewServer(grpc.Creds(c))
		healthpb.RegisterHealthServer(s, health.NewServer())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		t.Cleanup(func() { s.Stop(); <-served })
		return ln.Addr().String()
	}
	tlsAddr, plainAddr := start(server.ServerCredentials()), start(insecure.NewCredentials())
	client := func(cert, key, ca string) *security.TLS {
		c, err := security.NewAPIClient(apiFiles(cert, key, ca), security.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	anon, alice := client("", "", caPath), client(ac, ak, caPath)
	tests := []struct {
		name, addr, authority string
		c                     *security.TLS
		want                  string // the leading sentence; "" = the call succeeds
	}{
		{"ok", tlsAddr, "", alice, ""},
		{"TLS to plaintext", plainAddr, "", anon, "the job API does not use TLS, but security.ssl.api.enabled is true here"},
		{"plaintext to TLS", tlsAddr, "", nil, "the job API closed the connection before answering: if it uses TLS, set security.ssl.api.enabled (and security.ssl.api.ca)"},
		{"no client certificate", tlsAddr, "", anon, "the job API requires a client certificate (security.ssl.api.authentication-enabled on the server): set security.ssl.api.cert and security.ssl.api.key"},
		{"client of another CA", tlsAddr, "", client(mc, mk, caPath), "the job API refused this client's certificate (security.ssl.api.cert): it must be signed by the server's security.ssl.api.ca"},
		{"server of another CA", tlsAddr, "", client("", "", otherPath), "the job API's certificate is not signed by security.ssl.api.ca (" + otherPath + ")"},
		{"host name", tlsAddr, "jobmanager.example:8081", alice, "the job API's certificate does not name the address dialled: connect by a name or IP in its subject alternative names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := insecure.NewCredentials()
			if tt.c != nil {
				creds = tt.c.ClientCredentials()
			}
			opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
			if tt.authority != "" {
				opts = append(opts, grpc.WithAuthority(tt.authority))
			}
			conn, err := grpc.NewClient(tt.addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			err = security.ExplainAPIError(err, tt.c)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want+": rpc error: code = Unavailable") {
				t.Fatalf("error\n got: %v\nwant: %s: rpc error: ...", err, tt.want)
			}
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("the gRPC status does not read through: %v", status.Code(err))
			}
		})
	}
}
