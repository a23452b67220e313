package etcdtest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weirstream/weir/pkg/internal/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBinaryMissingSaysHowToBuildIt(t *testing.T) {
	t.Setenv(etcdtest.EnvBinary, "/nonexistent/etcd")
	_, err := etcdtest.Binary()
	if err == nil {
		t.Fatal("a missing binary was accepted")
	}
	for _, want := range []string{"no etcd server at /nonexistent/etcd", "run .ci/tools.sh", "go.etcd.io/etcd/server/v3 " + etcdtest.Version, etcdtest.CachePath()[:len(etcdtest.CachePath())-len("/etcd")], "WEIR_ETCD"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A server keeps its data across Kill and Restart, on the same endpoint,
// and hangs requests while stopped.
func TestKillRestartStopCont(t *testing.T) {
	srv := etcdtest.StartAt(t, "127.0.0.11")
	if got := srv.Endpoints()[0]; !strings.HasPrefix(got, "127.0.0.11:") {
		t.Fatalf("Endpoints = %v, want 127.0.0.11:port", srv.Endpoints())
	}
	c := srv.Client()
	put := func(k, v string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	get := func(ctx context.Context, k string) (string, error) {
		resp, err := c.Get(ctx, k)
		if err != nil || len(resp.Kvs) == 0 {
			return "", err
		}
		return string(resp.Kvs[0].Value), nil
	}
	put("a", "1")

	pid := srv.PID()
	srv.Kill()
	if srv.PID() != 0 {
		t.Fatal("PID after Kill is not 0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := get(ctx, "a")
	cancel()
	if err == nil {
		t.Fatal("a killed server answered")
	}
	srv.Restart()
	if srv.PID() == 0 || srv.PID() == pid {
		t.Fatalf("PID after Restart = %d (before %d)", srv.PID(), pid)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	v, err := get(ctx, "a")
	cancel()
	if err != nil || v != "1" {
		t.Fatalf("after restart a = %q, %v; want 1", v, err)
	}

	srv.Stop()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = get(ctx, "a")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get from a stopped server: %v, want a deadline exceeded", err)
	}
	srv.Cont()
	put("b", "2")
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	v, err = get(ctx, "b")
	cancel()
	if err != nil || v != "2" {
		t.Fatalf("after Cont b = %q, %v; want 2", v, err)
	}
	if !strings.Contains(srv.Log(), `"msg":"starting an etcd server"`) {
		t.Fatalf("log does not show the start:\n%s", srv.Log())
	}
}

func TestStartAtRefusesNonLoopback(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		etcdtest.StartAt(ft, "10.0.0.1")
	}()
	<-done
	if !strings.Contains(ft.msg, `"10.0.0.1" is not an IPv4 loopback address`) {
		t.Fatalf("StartAt(10.0.0.1) failed with %q", ft.msg)
	}
}

// fatalRecorder records a Fatalf and ends its goroutine, as testing does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
