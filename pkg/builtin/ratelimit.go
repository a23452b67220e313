package builtin

import (
	"math"
	"time"
)

// rateLimiter releases records at a fixed rate (records per second) without
// reading the clock per record: its caller reads a monotonic clock once per
// batch and asks how many records are due (take). It is pure arithmetic on
// the times it is given, so tests drive it with an injected clock.
//
// Record i (0-based, counted from the first take) is due i/rate seconds
// after the first take. Two refinements keep the cost per record low and
// the output smooth:
//   - chunking: records are released in chunks of about one millisecond's
//     worth (at least 1, at most the caller's batch size), so that at high
//     rates a caller wakes up at most ~1000 times a second instead of once
//     per record; the average rate is unchanged.
//   - bounded catch-up: after a stall (backpressure, a slow sink) at most
//     one second's worth (or one chunk, if larger) of the backlog is
//     released at once; the rest of the backlog is forgiven, as a token
//     bucket would.
type rateLimiter struct {
	perSec float64 // 0 = unlimited
	chunk  int64
	burst  int64

	started bool
	baseAt  time.Duration // when record baseN was due
	baseN   int64
	issued  int64 // records released so far
}

// newRateLimiter returns a limiter for perSec records per second (0, or
// more than 1e9, means unlimited) whose callers take at most maxBatch
// records at once.
func newRateLimiter(perSec float64, maxBatch int) rateLimiter {
	// Above one record per nanosecond a limit means nothing, and the
	// arithmetic below would overflow int64.
	if perSec <= 0 || perSec > 1e9 {
		return rateLimiter{}
	}
	chunk := int64(math.Ceil(perSec / 1000))
	chunk = max(1, min(chunk, int64(maxBatch)))
	burst := int64(perSec) // one second's worth
	return rateLimiter{perSec: perSec, chunk: chunk, burst: max(burst, chunk)}
}

// take returns how many records, at most maxN, may be emitted at monotonic
// time now, and counts them as released. When none may, it returns 0 and
// how long until the next chunk is due (always > 0).
func (l *rateLimiter) take(now time.Duration, maxN int) (int, time.Duration) {
	if l.perSec == 0 {
		return maxN, 0
	}
	if !l.started {
		l.started, l.baseAt, l.baseN = true, now, 0
	}
	// Multiply before dividing: exact for whole nanoseconds and rates.
	due := l.baseN + int64(float64(now-l.baseAt)*l.perSec/1e9) + 1
	avail := due - l.issued
	if avail > l.burst {
		// Rebase so that exactly burst records are due now.
		l.baseAt = now
		l.baseN = l.issued + l.burst - 1
		avail = l.burst
	}
	if avail < l.chunk {
		// The chunk is complete when record issued+chunk-1 is due.
		idx := l.issued + l.chunk - 1
		at := l.baseAt + time.Duration(math.Ceil(float64(idx-l.baseN)*1e9/l.perSec))
		wait := at - now
		if wait <= 0 {
			// Float rounding put the due time a hair before now; ask again
			// at once rather than report a record as due that take does
			// not count as due.
			wait = time.Nanosecond
		}
		return 0, wait
	}
	n := min(avail, int64(maxN))
	l.issued += n
	return int(n), 0
}

// rateWait is how a rate-limited operator waits for its next chunk: a
// timer raced against the task's cancellation (operator.Context.Done), so
// that a low rate never delays a cancel. A source needs none: it returns
// NothingAvailable and the task waits, watching for cancellation itself.
// The timer is reused: one allocation per operator, not per wait.
type rateWait struct {
	timer *time.Timer
	done  <-chan struct{}
}

// wait sleeps for d and reports true, or reports false as soon as the task
// is canceled.
func (w *rateWait) wait(d time.Duration) bool {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		// Since Go 1.23 Reset leaves no stale tick in the channel.
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return true
	case <-w.done:
		w.timer.Stop()
		return false
	}
}
