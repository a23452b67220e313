package security_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/security/securitytest"
)

// TestPort runs every combination of the two TLS settings of a shared port
// against every kind of client, calling an internal and an API method, and
// checks how the connection was classified and what was refused.
func TestPort(t *testing.T) {
	dir := t.TempDir()
	internalCA := securitytest.NewCA(t, "Internal CA")
	apiCA := securitytest.NewCA(t, "API CA")
	jmFiles := node(t, dir, internalCA, "jobmanager")
	tmFiles := node(t, dir, internalCA, "taskmanager-1")
	apiCert, apiKey := apiCA.Issue(t, securitytest.CertOptions{CommonName: "api"}).Write(t, dir, "api")
	apiCAPath := apiCA.Write(t, dir, "api-ca.crt")
	aliceCert, aliceKey := apiCA.Issue(t, securitytest.CertOptions{CommonName: "alice"}).Write(t, dir, "alice")

	internal := mustInternal(t, jmFiles, nil)
	api, err := security.NewAPIServer(apiFiles(apiCert, apiKey, apiCAPath), true, security.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tmTLS := mustInternal(t, tmFiles, nil)
	alice, err := security.NewAPIClient(apiFiles(aliceCert, aliceKey, apiCAPath), security.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]credentials.TransportCredentials{
		"plaintext": insecure.NewCredentials(),
		"daemon":    tmTLS.ClientCredentials(),
		"cli":       alice.ClientCredentials(),
	}

	// kind and outcome per client and method: "ok", or the start of the
	// refusal ("refused" = the connection, before any call).
	type want struct{ kind, internalCall, apiCall string }
	tests := []struct {
		name          string
		internal, api bool
		want          map[string]want
	}{
		{"both off", false, false, map[string]want{
			"plaintext": {"plaintext", "ok", "ok"},
			"daemon":    {"", "refused", "refused"}, // a TLS client to a plaintext port
			"cli":       {"", "refused", "refused"},
		}},
		{"internal only", true, false, map[string]want{
			"plaintext": {"plaintext", "PermissionDenied: Call is a call between weir daemons and needs internal TLS (security.ssl.internal.enabled): refused over plaintext", "ok"},
			"daemon":    {"internal TLS", "ok", "ok"},
			"cli":       {"", "refused", "refused"}, // no certificate of the internal CA
		}},
		{"API only", false, true, map[string]want{
			"plaintext": {"plaintext", "ok", "PermissionDenied: Call needs TLS (security.ssl.api.enabled): refused over plaintext"},
			"daemon":    {"", "refused", "refused"}, // its certificate is not of the API CA
			"cli":       {"job API TLS", "ok", "ok"},
		}},
		{"both on", true, true, map[string]want{
			"plaintext": {"", "refused", "refused"},
			"daemon":    {"internal TLS", "ok", "ok"},
			"cli":       {"job API TLS", "PermissionDenied: Call is a call between weir daemons and needs internal TLS (security.ssl.internal.enabled): refused over job API TLS", "ok"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in, ap *security.TLS
			if tt.internal {
				in = internal
			}
			if tt.api {
				ap = api
			}
			port := security.NewPort(in, ap, nil)
			kinds := make(chan string, 1)
			srv := grpc.NewServer(grpc.Creds(port.Credentials()),
				grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					p, _ := peer.FromContext(ctx)
					k := port.Kind(p)
					select {
					case kinds <- k.String():
					default:
					}
					md, _ := metadata.FromIncomingContext(ctx)
					if _, err := port.Authorize(k, len(md.Get("internal")) > 0, "Call"); err != nil {
						return nil, err
					}
					return h(ctx, req)
				}))
			healthpb.RegisterHealthServer(srv, health.NewServer())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			defer func() { srv.Stop(); <-served }()

			for name, creds := range clients {
				w := tt.want[name]
				conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
				if err != nil {
					t.Fatal(err)
				}
				for _, call := range []struct {
					internal bool
					want     string
				}{{true, w.internalCall}, {false, w.apiCall}} {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if call.internal {
						ctx = metadata.AppendToOutgoingContext(ctx, "internal", "1")
					}
					_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
					cancel()
					got := "ok"
					if err != nil {
						s := status.Convert(err)
						got = fmt.Sprintf("%s: %s", s.Code(), s.Message())
						if s.Code().String() == "Unavailable" || s.Code().String() == "DeadlineExceeded" {
							got = "refused"
						}
					}
					if !strings.HasPrefix(got, call.want) {
						t.Errorf("%s, internal call %v:\n got %s\nwant %s", name, call.internal, got, call.want)
					}
				}
				_ = conn.Close()
				var kind string
				select {
				case kind = <-kinds:
				default:
				}
				if kind != w.kind {
					t.Errorf("%s: connection classified %q, want %q", name, kind, w.kind)
				}
			}
		})
	}
}

// TestPortSilentPeer: a peer that connects and sends nothing does not hold
// the server: gRPC's connection timeout bounds the first-byte read, and the
// server stops with the connection open.
func TestPortSilentPeer(t *testing.T) {
	dir := t.TempDir()
	ca := securitytest.NewCA(t, "Internal CA")
	port := security.NewPort(mustInternal(t, node(t, dir, ca, "jobmanager"), nil), nil, nil)
	srv := grpc.NewServer(grpc.Creds(port.Credentials()), grpc.ConnectionTimeout(200*time.Millisecond))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil {
		t.Fatal("a silent peer got bytes")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent connection open past its connection timeout")
	}
	srv.Stop()
	<-served
}
