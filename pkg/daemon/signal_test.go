package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
)

// helperEnv makes the test binary a daemon (Main) whose stop behaves as
// its value says, instead of running the tests.
const helperEnv = "WEIR_DAEMON_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		Main("testd", helperStart(mode))
	}
	os.Exit(m.Run())
}

// helperStart prints "ready" once started; its stop returns at once
// ("clean"), fails ("fails"), gives up at its context's end ("gives-up", as
// a TaskManager with a stuck task), or never returns ("hangs").
func helperStart(mode string) Start {
	return func(*config.Config, *zap.Logger) (func(context.Context) error, error) {
		os.Stdout.WriteString("ready\n")
		return func(ctx context.Context) error {
			switch mode {
			case "clean":
				return nil
			case "fails":
				return errors.New("could not flush")
			case "gives-up":
				<-ctx.Done()
				return errors.New("1 task(s) did not stop after cancel: job/v0[0]#0")
			}
			select {} // hangs, ignoring ctx
		}, nil
	}
}

// TestSignalShutdown runs the daemon as a child process, sends it SIGTERM
// (twice for "second signal"), and checks that it exits, with which code
// and why. None of these waits on a duration it asserts: the deadline only
// catches a daemon that never exits.
func TestSignalShutdown(t *testing.T) {
	cases := []struct {
		name    string
		mode    string
		timeout string // cluster.services.shutdown-timeout
		signals int
		code    int
		log     string
	}{
		{"clean stop", "clean", "10 s", 1, 0, "stopped"},
		{"failed stop", "fails", "10 s", 1, 1, `the testd did not stop cleanly; exiting	{"error": "could not flush"}`},
		{"stop gives up at the bound", "gives-up", "100ms", 1, 1, "did not stop cleanly; exiting\t" + `{"error": "1 task(s) did not stop after cancel: job/v0[0]#0"}`},
		{"stop hangs past the bound", "hangs", "100ms", 1, 1, `the testd did not stop within cluster.services.shutdown-timeout; exiting	{"cluster.services.shutdown-timeout": "100ms"}`},
		{"second signal", "hangs", "1 h", 2, 1, `second signal during shutdown; exiting at once	{"signal": "terminated"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-D", "cluster.services.shutdown-timeout="+tc.timeout)
			cmd.Env = append(os.Environ(), helperEnv+"="+tc.mode)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan string, 1)
			exited := make(chan error, 1)
			go func() {
				br := bufio.NewReader(stdout)
				line, _ := br.ReadString('\n')
				ready <- line
				// Wait only after the pipe has been read to the end.
				_, _ = io.Copy(io.Discard, br)
				exited <- cmd.Wait()
			}()
			defer func() {
				_ = cmd.Process.Kill()
				<-exited
			}()
			select {
			case line := <-ready:
				if line != "ready\n" {
					t.Fatalf("helper said %q, want ready; stderr:\n%s", line, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("helper not ready after 30 s; stderr:\n%s", stderr.String())
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if tc.signals == 2 {
				waitFor(t, stderr, "shutting down")
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			var werr error
			select {
			case werr = <-exited:
				exited <- werr // for the deferred wait
			case <-time.After(30 * time.Second):
				t.Fatalf("daemon still running 30 s after SIGTERM; stderr:\n%s", stderr.String())
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(werr, &ee) {
				code = ee.ExitCode()
			} else if werr != nil {
				t.Fatal(werr)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.log) {
				t.Errorf("exit code %d, want %d; stderr (want %q):\n%s", code, tc.code, tc.log, stderr.String())
			}
			if !strings.Contains(stderr.String(), `shutting down	{"signal": "terminated"`) {
				t.Errorf("no log line of the signal:\n%s", stderr.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that the test reads while exec writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls the helper's stderr until it contains s.
func waitFor(t *testing.T, stderr *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("helper never logged %q", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
