// Package metrics serves a daemon's Prometheus metrics over HTTP. It owns the
// /metrics, /healthz and /readyz endpoints, the optional /debug/pprof/ endpoints
// (metrics.pprof.enabled) and the registry constructor; the metrics
// themselves are defined by the packages that update them, registered on the
// *prometheus.Registry the daemon passes down (never on the global default
// registry, so that tests and several daemons in one process do not collide).
//
// Invariant: a Server owns exactly one goroutine (the HTTP serve loop), and
// Close stops it and waits for it before returning.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// NewRegistry returns a registry with the Go runtime and process collectors,
// as the default Prometheus registry has them.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Server is a running metrics HTTP server.
type Server struct {
	log       *zap.Logger
	srv       *http.Server
	addr      string
	done      chan struct{} // closed when the serve goroutine has returned
	closeOnce sync.Once
	closeErr  error
}

// shutdownTimeout bounds how long Close waits for in-flight scrapes.
const shutdownTimeout = 5 * time.Second

// Options are the optional endpoints of a metrics server.
type Options struct {
	// Pprof serves net/http/pprof's profiles under /debug/pprof/
	// (metrics.pprof.enabled).
	Pprof bool
	// Ready answers /readyz (health.go); nil: always ready.
	Ready Readiness
}

// Serve listens on host and the first free port of lo..hi (the
// metrics.reporter.prom.port option; lo = hi = 0 takes any free port) and
// serves reg on /metrics, the probes /healthz and /readyz and, if opts.Pprof,
// the runtime profiles on /debug/pprof/. A port in use is skipped; any other
// listen error fails at once.
func Serve(log *zap.Logger, host string, lo, hi int, reg *prometheus.Registry, opts Options) (*Server, error) {
	if lo < 0 || hi < lo || hi > 65535 {
		return nil, fmt.Errorf("metrics: invalid port range %d-%d", lo, hi)
	}
	var (
		ln  net.Listener
		err error
	)
	for p := lo; p <= hi; p++ {
		ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s ports %d-%d: %w", host, lo, hi, err)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(log),
		// Report failed collections in the scrape rather than dropping it,
		// so that one broken collector does not hide all metrics.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mountHealth(mux, opts.Ready)
	if opts.Pprof {
		// Registered on this mux, never served from http.DefaultServeMux (on
		// which importing net/http/pprof also registers them): the profiles
		// exist only where the operator turned them on.
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, block, mutex, threadcreate
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s := &Server{
		log:  log,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.String("addr", s.addr), zap.Error(err))
		}
	}()
	log.Info("serving metrics", zap.String("addr", s.addr))
	if opts.Pprof {
		log.Warn("serving Go runtime profiles on /debug/pprof/ (metrics.pprof.enabled): they reveal the daemon's internals and a CPU profile costs CPU; firewall this port from all but operators",
			zap.String("addr", s.addr))
	}
	return s, nil
}

// Addr returns the address the server listens on, host:port.
func (s *Server) Addr() string { return s.addr }

// Close stops accepting scrapes, waits (bounded) for those in flight, and
// returns once the serve goroutine has stopped. It is safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("metrics: shut down server on %s: %w", s.addr, err)
			_ = s.srv.Close() // in-flight scrapes overran the timeout: cut them
		}
		<-s.done
	})
	return s.closeErr
}
