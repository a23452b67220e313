package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

func TestReadyHandler(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes: cut on a character boundary
	cases := []struct {
		name   string
		ready  Readiness
		method string
		code   int
		body   string
		allow  string
	}{
		{"no readiness is always ready", nil, "GET", 200, "ok\n", ""},
		{"ready with a status", func() (bool, string) { return true, "leader (epoch 7)" }, "GET", 200, "ok: leader (epoch 7)\n", ""},
		{"ready without a status", func() (bool, string) { return true, "" }, "GET", 200, "ok\n", ""},
		{"not ready", func() (bool, string) { return false, "not registered with a JobManager" }, "GET", 503,
			"not ready: not registered with a JobManager\n", ""},
		{"a reason of several lines stays one", func() (bool, string) { return false, "dial:\nrefused\r\n" }, "GET", 503,
			"not ready: dial: refused\n", ""},
		{"a long reason is cut", func() (bool, string) { return false, long }, "GET", 503,
			"not ready: " + strings.Repeat("é", 150) + "...\n", ""},
		{"HEAD has the status, no body", func() (bool, string) { return false, "standby" }, "HEAD", 503, "", ""},
		{"POST is refused", func() (bool, string) { return true, "" }, "POST", 405,
			"method POST not allowed: use GET or HEAD\n", "GET, HEAD"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ReadyHandler(tc.ready).ServeHTTP(rec, httptest.NewRequest(tc.method, "/readyz", nil))
			if rec.Code != tc.code || rec.Body.String() != tc.body {
				t.Errorf("%s /readyz = %d %q, want %d %q", tc.method, rec.Code, rec.Body.String(), tc.code, tc.body)
			}
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if tc.code != 405 {
				if got := rec.Header().Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
			}
		})
	}
}

// TestServeProbes checks the probes as Serve mounts them: /healthz stays
// 200 whatever the readiness says, and /readyz follows the readiness from
// one request to the next.
func TestServeProbes(t *testing.T) {
	var ready atomic.Bool
	s, err := Serve(zap.NewNop(), "127.0.0.1", 0, 0, NewRegistry(), Options{Ready: func() (bool, string) {
		if ready.Load() {
			return true, "registered with the JobManager at 10.0.0.1:6123"
		}
		return false, "registering with the JobManager at 10.0.0.1:6123"
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	want := func(path string, code int, body string) {
		t.Helper()
		if c, b := get(t, base+path); c != code || b != body {
			t.Errorf("GET %s = %d %q, want %d %q", path, c, b, code, body)
		}
	}
	want("/healthz", 200, "ok\n")
	want("/readyz", 503, "not ready: registering with the JobManager at 10.0.0.1:6123\n")
	ready.Store(true)
	want("/readyz", 200, "ok: registered with the JobManager at 10.0.0.1:6123\n")
	want("/healthz", 200, "ok\n")

	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Head(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 0 {
		t.Errorf("HEAD /healthz = %d %q, want 200 and no body", resp.StatusCode, b)
	}
}
