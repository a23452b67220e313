package builtin

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	type step struct {
		now  time.Duration
		max  int
		n    int
		wait time.Duration
	}
	ms := time.Millisecond
	tests := []struct {
		name  string
		rate  float64
		batch int
		steps []step
	}{
		{"unlimited", 0, 512, []step{{0, 512, 512, 0}, {0, 7, 7, 0}}},
		{"beyond one per nanosecond is unlimited", 1e300, 512, []step{{0, 512, 512, 0}, {0, 512, 512, 0}}},
		{"10 per second", 10, 512, []step{
			{0, 512, 1, 0},            // record 0 is due at once
			{0, 512, 0, 100 * ms},     // record 1 at 100ms
			{99 * ms, 512, 0, 1 * ms}, // not yet
			{100 * ms, 512, 1, 0},
			{350 * ms, 512, 2, 0}, // records 2 and 3 (200ms, 300ms)
			{350 * ms, 512, 0, 50 * ms},
			{1000 * ms, 3, 3, 0}, // 7 due (4..10), at most max
			{1000 * ms, 512, 4, 0},
			{1000 * ms, 512, 0, 100 * ms},
		}},
		{"stall forgives all but one second", 10, 512, []step{
			{0, 512, 1, 0},
			{60 * time.Second, 512, 10, 0}, // 600 due, 10 (one second's worth) released
			{60 * time.Second, 512, 0, 100 * ms},
			{60*time.Second + 100*ms, 512, 1, 0},
		}},
		{"chunks of a millisecond", 1e6, 512, []step{
			// 1000 per ms, capped at the batch: chunks of 512.
			{0, 512, 0, 511 * time.Microsecond},
			{511 * time.Microsecond, 512, 512, 0},
			{600 * time.Microsecond, 512, 0, 423 * time.Microsecond}, // record 1023 at 1023µs
			{2 * ms, 512, 512, 0},
			{2 * ms, 512, 512, 0}, // 2001 due, 1024 issued before
			{2 * ms, 512, 0, 47 * time.Microsecond},
		}},
		{"chunk of 3 at 2500 per second", 2500, 512, []step{
			{0, 512, 0, 800 * time.Microsecond}, // record 2 at 0.8ms
			{ms, 512, 3, 0},                     // 3 due (0, 0.4, 0.8ms)
			{ms, 512, 0, ms},                    // record 5 at 2ms
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newRateLimiter(tt.rate, tt.batch)
			for i, s := range tt.steps {
				n, wait := l.take(s.now, s.max)
				if n != s.n || wait != s.wait {
					t.Fatalf("step %d take(%v, %d) = %d, %v; want %d, %v", i, s.now, s.max, n, wait, s.n, s.wait)
				}
			}
		})
	}
}
