package metrics

import (
	"net/http"
	"strings"
)

// Health probes on the metrics port, for load balancers, service managers
// and Kubernetes probes (docs/deployment.md):
//
//   - /healthz (liveness) answers 200 "ok" while the process serves HTTP at
//     all: restarting a process whose /healthz fails is the cure.
//   - /readyz (readiness) answers 200 with a one-line status when the
//     daemon does its part of the cluster's work, else 503 with a one-line
//     reason. A daemon that is not ready is not broken: a TaskManager
//     waiting for its JobManager, a standby waiting for a leader. Nothing
//     should restart it for that; it should get no traffic, and a rolling
//     restart should wait for it before touching the next one.
//
// Both are cheap (an atomic load or two in the daemon's Readiness) and
// never block on the daemon's locks or on etcd: a probe that hangs when the
// daemon is busy would turn load into restarts.

// Readiness tells whether a daemon is ready and, in one line, what it is
// doing (ready) or why it is not. It is called for every /readyz request,
// from the HTTP server's goroutines: it must be safe for concurrent use,
// fast, and must not block.
type Readiness func() (ready bool, status string)

// mountHealth registers /healthz and /readyz on mux. A nil ready (a daemon
// that has no notion of readiness) is always ready.
func mountHealth(mux *http.ServeMux, ready Readiness) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		probe(w, r, http.StatusOK, "ok")
	})
	mux.Handle("/readyz", ReadyHandler(ready))
}

// ReadyHandler answers /readyz from ready: 200 and "ok: STATUS", or 503
// and "not ready: REASON", one line each (without the colon when the
// status is empty).
func ReadyHandler(ready Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready == nil {
			probe(w, r, http.StatusOK, "ok")
			return
		}
		ok, status := ready()
		line, code := "ok", http.StatusOK
		if !ok {
			line, code = "not ready", http.StatusServiceUnavailable
		}
		if status = oneLine(status); status != "" {
			line += ": " + status
		}
		probe(w, r, code, line)
	})
}

// maxStatusLen bounds a status line: it may quote an address or an
// error, and a probe's answer should stay one short line.
const maxStatusLen = 300

// oneLine keeps a status to one short line, whatever an error it quotes
// contains.
func oneLine(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ")
	if len(s) > maxStatusLen {
		cut := maxStatusLen
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not in the middle of a UTF-8 character
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// probe writes a probe's answer. Probes read state, so only GET and HEAD
// are served; HEAD gets the status without the body.
func probe(w http.ResponseWriter, r *http.Request, code int, line string) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method "+r.Method+" not allowed: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	// A cached readiness is a wrong readiness.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte(line + "\n"))
	}
}
