// Package fuzzcheck holds the checks that weir's fuzz targets share beyond "no panic". It is imported by tests only.
package fuzzcheck

import (
	"runtime/metrics"
	"testing"
)

const heapAllocs = "/gc/heap/allocs:bytes"

// AllocatedBytes returns the bytes f allocated on the heap (approximately: allocations of other goroutines running
// meanwhile count too, which is why fuzz targets call it with nothing else running). Reading runtime/metrics does
// not stop the world, so it is cheap enough to call on every fuzz input.
func AllocatedBytes(f func()) uint64 {
	s := []metrics.Sample{{Name: heapAllocs}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// BoundedAlloc runs f, which decodes an input of inputLen bytes, and fails t if it allocated more than
// base+perByte*inputLen bytes. A decoder must allocate in proportion to what it was given, never to a length or
// count read from it: "length says 2 GB" in a 10-byte input must be an error, not a 2 GB allocation. The runtime
// counts small allocations a whole span (8 to 80 KiB) at a time, and the fuzzing engine's goroutines allocate too,
// so base must be generous: 1 MiB at least.
func BoundedAlloc(t testing.TB, what string, inputLen int, base, perByte uint64, f func()) {
	t.Helper()
	limit := base + perByte*uint64(inputLen)
	if n := AllocatedBytes(f); n > limit {
		t.Fatalf("%s of a %d-byte input allocated %d bytes, more than the bound %d (%d + %d per input byte)",
			what, inputLen, n, limit, base, perByte)
	}
}
