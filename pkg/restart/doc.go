// Package restart owns weir's restart strategies: the rules that decide,
// when a job fails, whether it may restart and after what delay. They are
// Apache Flink's RestartBackoffTimeStrategy family, with Flink's option names
// and semantics (Flink 1.19+), written as pure state machines.
//
// # Life cycle
//
// The JobManager's scheduler builds one Strategy per job when the job is
// submitted (FromConfig, on the cluster's configuration with the job's
// config: section applied on top) and keeps it for the life of that job, so
// that failures are counted across restarts. On every failure it calls
//
//	restart, delay := s.NotifyFailure(now)
//	if !restart {
//		// fail the job: "restart strategy exhausted" / Flink's "Recovery is suppressed by <s>"
//	}
//	// otherwise restart the job after delay
//
// A Strategy does no I/O, starts no goroutine, reads no clock and draws
// randomness only from the *rand.Rand it was given: the caller passes the
// time of each failure, so every rule below is a table test. A Strategy is
// not safe for concurrent use; the scheduler calls it from its one
// goroutine.
//
// # Choosing a strategy (Flink's RestartBackoffTimeStrategyFactoryLoader)
//
// restart-strategy.type (older name: restart-strategy) selects it:
//
//   - none, off, disable: NoRestartBackoffTimeStrategy. Never restart.
//   - fixed-delay, failure-rate, exponential-delay: as below, with their
//     restart-strategy.<type>.* options. The options of the other types are
//     ignored.
//   - unset: exponential-delay with the defaults of its options when
//     checkpointing is enabled, none when it is not. As in Flink, the
//     restart-strategy.exponential-delay.* options take effect only when
//     restart-strategy.type is exponential-delay; without it the defaults
//     apply even if those keys are set.
//
// Flink picks the type from the job's configuration, else from the
// cluster's, and reads the strategy's options from the same one. weir reads
// everything from one merged *config.Config in which the job's keys win key
// by key, so the type is chosen the same way, but a job that sets only
// restart-strategy.type: fixed-delay uses the cluster's fixed-delay.attempts,
// where Flink reads the options from the job's configuration alone.
//
// # fixed-delay (FixedDelayRestartBackoffTimeStrategy)
//
// Every failure counts one restart attempt. Failures 1 to
// restart-strategy.fixed-delay.attempts restart after
// restart-strategy.fixed-delay.delay; the next failure gives up. attempts 0
// never restarts. Failures are never forgotten: attempts bounds the restarts
// of the job's whole life.
//
// # failure-rate (FailureRateRestartBackoffTimeStrategy)
//
// The strategy keeps the times of the last max-failures-per-interval + 1
// failures. It gives up on a failure at now when that many failures,
// including this one, all lie within failure-rate-interval of now (the oldest
// of them at or after now - failure-rate-interval); otherwise it restarts
// after restart-strategy.failure-rate.delay. The window slides: once old
// failures are more than the interval in the past, new failures are allowed
// again. With max-failures-per-interval 1 and interval 1 min, a second
// failure within a minute of the first gives up; one a minute and 1 ns after
// it restarts.
//
// # exponential-delay (ExponentialDelayRestartBackoffTimeStrategy)
//
// The strategy counts restart attempts since the backoff was last reset and
// remembers when the pending (or last) restart is due, restartAt:
//
//   - A failure at or before restartAt is merged into the attempt already
//     pending: it is not counted, and its delay is what remains until
//     restartAt. (Flink merges the failures of tasks that fail while a
//     restart is already scheduled.) A caller that already has a restart
//     scheduled should keep it.
//   - Otherwise, if now - restartAt >= reset-backoff-threshold, that is the job
//     has run at least reset-backoff-threshold since it was last restarted
//     (so since its last failure plus that failure's delay), the attempt
//     count is reset to 0. The first failure always starts from 0.
//   - The delay of attempt n (counted from 0) is
//     initial-backoff * backoff-multiplier^n, plus a jitter drawn uniformly
//     from the whole nanoseconds in [-j, +j] where
//     j = jitter-factor * (initial-backoff * backoff-multiplier^n), and the
//     result is clamped to [initial-backoff, max-backoff]. Because of the
//     lower clamp the first delay is never shorter than initial-backoff:
//     jitter only lengthens it. jitter-factor 0 draws nothing from the
//     random source.
//   - The attempt is counted and restartAt becomes now + delay; the job
//     restarts as long as the count is at most attempts-before-reset-backoff.
//     So that many restarts are allowed between two resets of the backoff,
//     and the next failure without a reset gives up (a refused attempt still
//     moves restartAt, as in Flink). attempts-before-reset-backoff 2147483647
//     (the default, Flink's "infinite") never gives up.
//
// weir computes in nanoseconds where Flink computes in milliseconds, and
// rounds the un-jittered backoff to the nearest nanosecond (1 s * 1.4^3 is
// 2.744 s, not Flink's 2743 ms).
//
// # Invariants
//
//   - NotifyFailure never panics and never returns a negative delay; a
//     restart=false result always carries delay 0.
//   - Given the same configuration, the same seed and the same failure
//     times, a Strategy returns the same decisions.
//   - FromConfig rejects every combination Flink's constructors reject
//     (initial-backoff > max-backoff, backoff-multiplier 1, a zero
//     initial-backoff, ...) with an error naming the keys, so that a job is
//     refused at submission rather than failing when it first fails.
package restart
