package security_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

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
		c, err := s.ServerConfig().GetCertificate(nil)
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
