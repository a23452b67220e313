package jobmanager

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"crypto/tls"
	"crypto/x509"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/pkg/security/securitytest"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/proto/weirpb"
)

// dialFrom returns a gateway client whose connections come from local IP
// ip (any 127.0.0.0/8 address is the loopback on Linux), and the local
// address of its connection once a call was made.
func dialFrom(t *testing.T, jmAddr, ip string) (weirpb.JobManagerGatewayClient, func() string) {
	t.Helper()
	var local string
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := grpc.NewClient("passthrough:///"+jmAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				local = c.LocalAddr().String()
			}
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return weirpb.NewJobManagerGatewayClient(conn), func() string { return local }
}

func wantRejected(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || status.Convert(err).Message() != msg {
		t.Fatalf("%s = %v, want %v %q", what, err, code, msg)
	}
}

// Task state reports, acknowledgements, declines and heartbeats that name
// a TaskManager are refused from another host than the one it registered
// from, counted, and change nothing; its own calls pass.
func TestForgedCallsFromAnotherHostRejected(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c, a, id, tdds := cpCluster(t, zap.New(core), `  execution.checkpointing.interval: 1h`)
	forger, local := dialFrom(t, c.jm.Addr(), "127.0.0.2")
	exec := tdds["1/0#0"].Execution

	_, err := forger.UpdateTaskExecutionState(context.Background(), &weirpb.TaskExecutionState{
		TaskmanagerId: "tm-a", Execution: exec, State: "FAILED", Failure: "forged",
	})
	wantRejected(t, "forged FAILED report", err, codes.PermissionDenied, fmt.Sprintf(
		`task state report (FAILED) of %s/1/0#0 names TaskManager "tm-a", registered from 127.0.0.1: refused for the caller at %s`, id, local()))

	b, _ := snapshot.EncodeTaskState(&snapshot.TaskState{})
	_, err = forger.AcknowledgeCheckpoint(context.Background(), &weirpb.AcknowledgeCheckpointRequest{Execution: exec, CheckpointId: 1, State: b})
	wantRejected(t, "forged acknowledgement", err, codes.PermissionDenied, fmt.Sprintf(
		`acknowledgement of checkpoint 1 by %s/1/0#0 names TaskManager "tm-a", registered from 127.0.0.1: refused for the caller at %s`, id, local()))
	_, err = forger.DeclineCheckpoint(context.Background(), &weirpb.DeclineCheckpointRequest{Execution: exec, CheckpointId: 1, ReasonCode: weirpb.DeclineReason_DECLINE_REASON_DECLINED, Message: "forged"})
	wantRejected(t, "forged decline", err, codes.PermissionDenied, fmt.Sprintf(
		`decline of checkpoint 1 by %s/1/0#0 names TaskManager "tm-a", registered from 127.0.0.1: refused for the caller at %s`, id, local()))

	stream, err := forger.Heartbeat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&weirpb.TaskManagerHeartbeat{TaskmanagerId: "tm-a"}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantRejected(t, "forged heartbeat", err, codes.PermissionDenied, fmt.Sprintf(
		`heartbeat names TaskManager "tm-a", registered from 127.0.0.1: refused for the caller at %s`, local()))

	for _, m := range []string{"UpdateTaskExecutionState", "AcknowledgeCheckpoint", "DeclineCheckpoint", "Heartbeat"} {
		if got := c.metric("weir_jobmanager_rejected_calls_total", map[string]string{"method": m, "reason": "foreign_peer"}); got != 1 {
			t.Errorf("rejected_calls_total{%s,foreign_peer} = %v, want 1", m, got)
		}
	}
	// The first refusal is logged (the later ones may be suppressed,
	// see TestLogLimiter).
	if lines := logs.FilterMessage("refused a call that names a TaskManager").All(); len(lines) == 0 {
		t.Errorf("no log line of refused calls: %v", logs.All())
	} else if f := lines[0].ContextMap(); f["method"] != "UpdateTaskExecutionState" || f["reason"] != "foreign_peer" || f["taskmanager"] != "tm-a" || f["caller"] != local() {
		t.Errorf("log line of the first refused call: %v", f)
	}

	// Nothing changed: the job runs, no task was canceled, and the real
	// TaskManager's own calls pass.
	if d := c.job(id); d.State != "RUNNING" {
		t.Fatalf("job after forged calls: %s %q", d.State, d.StatusMessage)
	}
	select {
	case s := <-a.canceled:
		t.Fatalf("task %s canceled after forged calls", s)
	default:
	}
	a.report(exec, "RUNNING", "")
	if got := c.metric("weir_jobmanager_rejected_calls_total", map[string]string{"method": "UpdateTaskExecutionState", "reason": "foreign_peer"}); got != 1 {
		t.Errorf("rejected_calls_total{UpdateTaskExecutionState,foreign_peer} after the real report = %v, want 1", got)
	}
	a.mu.Lock()
	unknown := a.unknown
	a.mu.Unlock()
	if unknown {
		t.Fatal("the real TaskManager's heartbeats are answered unknown_taskmanager")
	}
}

// A registration under the id of a live TaskManager from another host is
// refused and leaves the real one registered with its tasks; once the real
// one is lost, the id is free.
func TestReRegistrationFromAnotherHostRefused(t *testing.T) {
	c, a, id, tdds := cpCluster(t, nil, `  execution.checkpointing.interval: 1h`)
	forger, local := dialFrom(t, c.jm.Addr(), "127.0.0.2")
	req := &weirpb.RegisterTaskManagerRequest{TaskmanagerId: "tm-a", RpcAddress: "127.0.0.2:1", DataAddress: "127.0.0.2:2", NumSlots: 8, CallToken: "t"}
	_, err := forger.RegisterTaskManager(context.Background(), req)
	wantRejected(t, "registration under tm-a from 127.0.0.2", err, codes.PermissionDenied, fmt.Sprintf(
		"register TaskManager tm-a: it is registered from 127.0.0.1, and that registration is not lost: refused for the caller at %s", local()))
	if got := c.metric("weir_jobmanager_rejected_calls_total", map[string]string{"method": "RegisterTaskManager", "reason": "foreign_peer"}); got != 1 {
		t.Errorf("rejected_calls_total{RegisterTaskManager,foreign_peer} = %v, want 1", got)
	}

	tms, err := c.api.ListTaskManagers(context.Background(), &weirpb.ListTaskManagersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tms.Taskmanagers) != 1 || tms.Taskmanagers[0].DataAddress != a.dataAddr || tms.Taskmanagers[0].SlotsTotal != 3 {
		t.Fatalf("taskmanagers after the refused registration: %v", tms.Taskmanagers)
	}
	if d := c.job(id); d.State != "RUNNING" {
		t.Fatalf("job after the refused registration: %s %q", d.State, d.StatusMessage)
	}
	select {
	case s := <-a.canceled:
		t.Fatalf("task %s canceled after the refused registration", s)
	default:
	}
	a.report(tdds["0/0#0"].Execution, "RUNNING", "")

	// The real TaskManager dies: its heartbeat stream closes, the
	// registration is lost, and the id may register from anywhere.
	a.killHeartbeats()
	eventually(t, func() string {
		if _, err := forger.RegisterTaskManager(context.Background(), req); err != nil {
			return err.Error()
		}
		return ""
	})
}

// One line per interval; the next says how many it suppressed.
func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	var got []string
	for _, at := range []time.Duration{0, 10 * time.Millisecond, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second} {
		n, ok := l.allow(t0.Add(at))
		got = append(got, fmt.Sprintf("%v:%v/%d", at, ok, n))
	}
	want := "[0s:true/0 10ms:false/0 999ms:false/0 1s:true/2 1.5s:false/0 2s:true/1]"
	if fmt.Sprint(got) != want {
		t.Fatalf("allow: %v, want %s", got, want)
	}
}

// The identity is the remote IP without TLS (ports differ per connection),
// and the certificate's subject and issuer over TLS, wherever it connects
// from.
func TestPeerIdentity(t *testing.T) {
	cert := securitytest.NewCA(t, "weir CA").Issue(t, securitytest.CertOptions{CommonName: "tm-1"}).Cert
	overTLS := credentials.TLSInfo{State: tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}}
	for _, tc := range []struct {
		peer           *peer.Peer
		identity, addr string
	}{
		{nil, "", "unknown address"},
		{&peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 4000}}, "10.0.0.5", "10.0.0.5:4000"},
		{&peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.5"), Port: 4001}}, "10.0.0.5", "10.0.0.5:4001"},
		{&peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 4002}}, "fd00::1", "[fd00::1]:4002"},
		{&peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.9"), Port: 4003}, AuthInfo: overTLS}, `certificate "CN=tm-1,O=weir test" issued by "CN=weir CA,O=weir test"`, "10.0.0.9:4003"},
	} {
		ctx := context.Background()
		if tc.peer != nil {
			ctx = peer.NewContext(ctx, tc.peer)
		}
		if id, addr := peerIdentity(ctx); id != tc.identity || addr != tc.addr {
			t.Errorf("peerIdentity(%v) = %q, %q, want %q, %q", tc.peer, id, addr, tc.identity, tc.addr)
		}
	}
}
