// Package hatest gives tests outside pkg/ (the end-to-end tests in test/e2e,
// which Go's internal rule keeps from importing pkg/internal/etcdtest) the
// real etcd servers of package etcdtest. It adds nothing: see etcdtest for
// how a server is built, started, killed, restarted, stopped and continued.
package hatest

import (
	"testing"

	"github.com/weirstream/weir/pkg/internal/etcdtest"
)

// Server is an etcd server of a test (etcdtest.Server).
type Server = etcdtest.Server

// Start starts a single-member etcd on 127.0.0.1 and stops it when the
// test ends (etcdtest.Start).
func Start(t testing.TB) *Server {
	t.Helper()
	return etcdtest.Start(t)
}

// StartAt starts it on another loopback address, such as 127.0.0.11
// (etcdtest.StartAt).
func StartAt(t testing.TB, ip string) *Server {
	t.Helper()
	return etcdtest.StartAt(t, ip)
}
