package taskexec

import (
	"runtime"
	"sync/atomic"
	"time"
)

// timeState is what a task goroutine is doing, as Flink's busyTimeMsPerSecond,
// idleTimeMsPerSecond and backPressuredTimeMsPerSecond divide a task's time.
type timeState int32

const (
	stateBusy          timeState = iota // processing: everything but the two waits below
	stateIdle                           // waiting for input (an empty gate, a source with nothing available) or the mailbox
	stateBackPressured                  // waiting for an output buffer
	numTimeStates
)

// clockBase makes monotonic readings comparable as int64 nanoseconds.
var clockBase = time.Now()

func monoNow() int64 { return int64(time.Since(clockBase)) }

// taskTime accounts a task's wall time into busy, idle and backpressured.
//
// Cost: the task goroutine switches state only where it starts and ends a
// wait (an empty input gate, an idle source, a full output, the mailbox
// waits) and around an emit while its output partition is unavailable, never
// per record otherwise. A switch is a monotonic clock read and a few atomic
// stores: no lock, no syscall (the clock is read through the vDSO).
//
// Readers (scrapes) use a sequence lock: the task goroutine, the only
// writer, makes seq odd while it updates, and a reader retries a read that
// overlapped an update. The reader takes its clock before it checks seq
// again, so every reading lies between two consistent states and the
// totals it reports never decrease (Prometheus would take a decrease of a
// counter for a restart).
type taskTime struct {
	seq   atomic.Uint64
	state atomic.Int32
	since atomic.Int64 // monoNow when state began
	total [numTimeStates]atomic.Int64
}

// start begins the accounting, busy, now.
func (a *taskTime) start() {
	a.seq.Add(1)
	a.since.Store(monoNow())
	a.state.Store(int32(stateBusy))
	a.seq.Add(1)
}

// switchTo ends the current state and begins s. Task goroutine only.
func (a *taskTime) switchTo(s timeState) {
	if timeState(a.state.Load()) == s {
		return
	}
	a.seq.Add(1)
	now := monoNow()
	prev := a.state.Load()
	a.total[prev].Add(now - a.since.Load())
	a.since.Store(now)
	a.state.Store(int32(s))
	a.seq.Add(1)
}

// read returns the time spent in each state so far, the current one
// included. Safe from any goroutine.
func (a *taskTime) read() (out [numTimeStates]time.Duration) {
	for {
		s1 := a.seq.Load()
		if s1&1 == 0 {
			for i := range out {
				out[i] = time.Duration(a.total[i].Load())
			}
			st, since := a.state.Load(), a.since.Load()
			now := monoNow()
			if a.seq.Load() == s1 {
				if since != 0 && now > since {
					out[st] += time.Duration(now - since)
				}
				return out
			}
		}
		runtime.Gosched()
	}
}
