package metrics

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServeScrapeClose(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_test_records_total", Help: "Records."})
	reg.MustRegister(c)
	c.Add(3)

	s, err := Serve(zap.NewNop(), "127.0.0.1", 0, 0, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, "http://"+s.Addr()+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "\nweir_test_records_total 3\n") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	for _, want := range []string{"go_goroutines ", "process_start_time_seconds "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = get(t, "http://"+s.Addr()+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Error("server still accepts connections after Close")
	}
}

func TestServeSkipsBusyPorts(t *testing.T) {
	// Occupy a port, then offer a range starting at it: the server takes a
	// later one. Ports are probed, so find two consecutive free ones.
	var busy net.Listener
	var port int
	for i := 0; i < 20 && busy == nil; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if p < 65535 {
			if probe, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
				probe.Close()
				busy, port = ln, p
				continue
			}
		}
		ln.Close()
	}
	if busy == nil {
		t.Skip("no two consecutive free ports")
	}
	defer busy.Close()

	s, err := Serve(zap.NewNop(), "127.0.0.1", port, port+1, prometheus.NewRegistry(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := "127.0.0.1:" + strconv.Itoa(port+1); s.Addr() != want {
		t.Errorf("Addr = %s, want %s", s.Addr(), want)
	}

	// All ports busy: an error naming the range.
	_, err = Serve(zap.NewNop(), "127.0.0.1", port, port, prometheus.NewRegistry(), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "metrics: listen on 127.0.0.1 ports "+strconv.Itoa(port)+"-"+strconv.Itoa(port)+": ") {
		t.Errorf("err = %v", err)
	}
}

func TestServeInvalidRange(t *testing.T) {
	_, err := Serve(zap.NewNop(), "127.0.0.1", 10, 5, prometheus.NewRegistry(), Options{})
	if err == nil || err.Error() != "metrics: invalid port range 10-5" {
		t.Errorf("err = %v", err)
	}
}

func TestPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(strconv.FormatBool(on), func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			s, err := Serve(zap.New(core), "127.0.0.1", 0, 0, NewRegistry(), Options{Pprof: on})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			base := "http://" + s.Addr()
			code, body := get(t, base+"/debug/pprof/")
			if !on {
				// Importing net/http/pprof registers on http.DefaultServeMux;
				// this proves the server does not serve that mux.
				if code != http.StatusNotFound {
					t.Errorf("off: /debug/pprof/: %d, want 404", code)
				}
				if code, _ := get(t, base+"/debug/pprof/heap"); code != http.StatusNotFound {
					t.Errorf("off: /debug/pprof/heap: %d, want 404", code)
				}
				if n := logs.Len(); n != 0 {
					t.Errorf("off: %d warnings logged: %v", n, logs.All())
				}
				return
			}
			if code != http.StatusOK || !strings.Contains(body, "heap") {
				t.Errorf("on: /debug/pprof/: %d\n%s", code, body)
			}
			code, body = get(t, base+"/debug/pprof/heap")
			if code != http.StatusOK {
				t.Fatalf("on: /debug/pprof/heap: %d\n%s", code, body)
			}
			// A profile is a gzipped protocol buffer (profile.proto) whose
			// string table names the heap sample types.
			zr, err := gzip.NewReader(strings.NewReader(body))
			if err != nil {
				t.Fatalf("on: /debug/pprof/heap is not gzipped: %v", err)
			}
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("on: /debug/pprof/heap: %v", err)
			}
			for _, want := range []string{"alloc_objects", "inuse_space"} {
				if !strings.Contains(string(raw), want) {
					t.Errorf("on: heap profile lacks sample type %q", want)
				}
			}
			code, body = get(t, base+"/debug/pprof/cmdline")
			if code != http.StatusOK || body == "" {
				t.Errorf("on: /debug/pprof/cmdline: %d %q", code, body)
			}
			if w := logs.FilterMessageSnippet("/debug/pprof/").All(); len(w) != 1 || w[0].ContextMap()["addr"] != s.Addr() {
				t.Errorf("on: want one warning naming %s, got %v", s.Addr(), logs.All())
			}
		})
	}
}
