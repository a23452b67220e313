// Package s3test gives tests outside pkg/ (the end-to-end tests in test/e2e,
// which Go's internal rule keeps from importing pkg/internal/miniotest) the
// real MinIO servers of package miniotest. It adds nothing: see miniotest
// for how a server is built, started, stopped and restarted.
package s3test

import (
	"testing"

	"github.com/weirstream/weir/pkg/internal/miniotest"
)

// Server is a MinIO server of a test (miniotest.Server).
type Server = miniotest.Server

// Start starts a MinIO server on loopback with a fresh bucket and stops it
// when the test ends (miniotest.Start).
func Start(t testing.TB) *Server {
	t.Helper()
	return miniotest.Start(t)
}

// StartAt starts it on another loopback address, such as 127.0.0.13
// (miniotest.StartWith with Options.IP).
func StartAt(t testing.TB, ip string) *Server {
	t.Helper()
	return miniotest.StartWith(t, miniotest.Options{IP: ip})
}
