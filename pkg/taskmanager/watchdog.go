package taskmanager

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/taskexec"
)

// The cancellation watchdog (Flink's TaskCancelerWatchDog and
// TaskInterrupter).
//
// A goroutine cannot be stopped from outside. A task that does not stop
// after Cancel (an operator that ignores Context.Done, a read that never
// returns) keeps its slot, and it may go on writing output (a file-sink's
// part files, say) after the JobManager started a new attempt of its
// subtask elsewhere: two writers where exactly-once allows one. So, as in
// Flink, a canceled task still running task.cancellation.timeout later is
// a fatal error: the TaskManager logs the task (job, task, subtask,
// attempt) with its goroutine's stack and exits with ExitCodeFatal. Its
// service manager (systemd Restart=on-failure) restarts it; the
// JobManager sees it gone at once (its connections close) and fails over
// what ran there, freeing the job's slots.
//
// Every task.cancellation.interval before that, a warning with the stack
// shows where the task is stuck.

// ExitCodeFatal is the exit code of a TaskManager that exits because a
// canceled task did not stop (EX_SOFTWARE of sysexits.h).
const ExitCodeFatal = 70

// cancelWatch is the pure core of the watchdog of one canceled attempt: it
// is given the time and says what to do.
type cancelWatch struct {
	canceledAt time.Time
	interval   time.Duration // between two warnings, > 0
	timeout    time.Duration // 0: never fatal
	warned     int           // intervals warned about so far
}

type watchAction int

const (
	watchWait  watchAction = iota // nothing to do now
	watchWarn                     // log that the task has not stopped, with its stack
	watchFatal                    // log the task with its stack and exit
)

func (a watchAction) String() string {
	switch a {
	case watchWarn:
		return "warn"
	case watchFatal:
		return "fatal"
	}
	return "wait"
}

// step returns what to do at now (the task has not stopped) and when to
// call step again.
func (w *cancelWatch) step(now time.Time) (watchAction, time.Time) {
	elapsed := now.Sub(w.canceledAt)
	if w.timeout > 0 && elapsed >= w.timeout {
		return watchFatal, time.Time{}
	}
	act := watchWait
	if due := int(elapsed / w.interval); due > w.warned {
		// Intervals passed while the process was not scheduled get one
		// warning, not one each.
		w.warned = due
		act = watchWarn
	}
	next := w.canceledAt.Add(time.Duration(w.warned+1) * w.interval)
	if w.timeout > 0 {
		if deadline := w.canceledAt.Add(w.timeout); deadline.Before(next) {
			next = deadline
		}
	}
	return act, next
}

// cancelTask cancels an attempt and, the first time, starts its watchdog. Every
// cancellation of the TaskManager goes through here.
func (tm *TaskManager) cancelTask(e *taskEntry) {
	e.cancelOnce.Do(func() {
		tm.mu.Lock()
		if st := e.status; st.state == "" || st.state == taskexec.Running {
			st.canceling = true
		}
		tm.mu.Unlock()
		e.task.Cancel()
		tm.wgWatch.Add(1)
		go tm.watch(e, time.Now())
	})
}

// watch is the watchdog goroutine of one canceled attempt; it ends with the
// attempt's Run, or exits the process.
func (tm *TaskManager) watch(e *taskEntry, canceledAt time.Time) {
	defer tm.wgWatch.Done()
	w := cancelWatch{canceledAt: canceledAt, interval: tm.cancelInterval, timeout: tm.cancelTimeout}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		act, next := w.step(now)
		switch act {
		case watchWarn:
			logStack(e.log, zapcore.WarnLevel, "canceled task has not stopped", e.task.Stack(),
				zap.Duration("canceled_for", now.Sub(canceledAt).Round(time.Millisecond)),
				zap.Duration(config.TaskCancellationTimeout.Key, tm.cancelTimeout))
		case watchFatal:
			tm.fatal(e, now.Sub(canceledAt))
			return
		}
		timer.Reset(next.Sub(now))
		select {
		case <-e.done:
			return
		case <-timer.C:
		}
	}
}

// fatal exits the process (Options.Exit) because a canceled task did not
// stop; once, whatever the number of stuck tasks.
func (tm *TaskManager) fatal(e *taskEntry, canceledFor time.Duration) {
	tm.fatalOnce.Do(func() {
		logStack(e.log, zapcore.ErrorLevel,
			"canceled task did not stop within "+config.TaskCancellationTimeout.Key+": exiting the TaskManager, "+
				"so that the task cannot write output after a new attempt started; its service manager restarts it",
			e.task.Stack(),
			zap.Duration("canceled_for", canceledFor.Round(time.Millisecond)),
			zap.Duration(config.TaskCancellationTimeout.Key, tm.cancelTimeout),
			zap.Int("exit_code", ExitCodeFatal))
		_ = tm.log.Sync()
		tm.exit(ExitCodeFatal)
	})
}

// logStack logs msg with the stack of another goroutine as the entry's
// stack trace (zap prints it on its own lines in the console format). Rare:
// the logger it derives for the caller's line is not worth keeping.
func logStack(log *zap.Logger, lvl zapcore.Level, msg, stack string, fields ...zap.Field) {
	if ce := log.WithOptions(zap.AddCallerSkip(1)).Check(lvl, msg); ce != nil {
		ce.Stack = stack
		ce.Write(fields...)
	}
}
