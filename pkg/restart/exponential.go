package restart

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/weirstream/weir/pkg/config"
)

// UnlimitedAttempts as attempts-before-reset-backoff means the
// exponential-delay strategy never gives up (Flink documents its default,
// Integer.MAX_VALUE, as "infinite").
const UnlimitedAttempts = math.MaxInt32

// ExponentialDelayConfig holds the restart-strategy.exponential-delay.*
// options.
type ExponentialDelayConfig struct {
	InitialBackoff             time.Duration // > 0, <= MaxBackoff
	MaxBackoff                 time.Duration // > 0
	BackoffMultiplier          float64       // > 1
	ResetBackoffThreshold      time.Duration // > 0
	JitterFactor               float64       // in [0, 1]
	AttemptsBeforeResetBackoff int           // >= 1; UnlimitedAttempts never gives up
}

// ExponentialDelay restarts with a backoff that grows after each failure and
// returns to its initial value once the job has run long enough (Flink's
// ExponentialDelayRestartBackoffTimeStrategy). The rules are in the package
// documentation.
type ExponentialDelay struct {
	cfg ExponentialDelayConfig
	rnd *rand.Rand

	started   bool      // a failure has been notified; restartAt is valid
	attempt   int       // restart attempts since the backoff was last reset
	restartAt time.Time // when the pending, or last, restart is due
}

// maxBase bounds the un-jittered backoff before it is converted to an
// integer, so that neither the conversion nor base+jitter can overflow. It
// is about 73 years: far beyond any max-backoff that matters, so the clamp to
// MaxBackoff gives the same result as Flink's unbounded arithmetic.
const maxBase = math.MaxInt64 / 4

// NewExponentialDelay validates c and returns the strategy. rnd supplies the
// jitter; nil means a source seeded at random.
func NewExponentialDelay(c ExponentialDelayConfig, rnd *rand.Rand) (*ExponentialDelay, error) {
	// The checks and their order are those of Flink's constructor.
	switch {
	case c.InitialBackoff <= 0:
		return nil, fmt.Errorf("%s must be greater than 0, got %v", config.ExponentialDelayInitialBackoff.Key, c.InitialBackoff)
	case c.MaxBackoff <= 0:
		return nil, fmt.Errorf("%s must be greater than 0, got %v", config.ExponentialDelayMaxBackoff.Key, c.MaxBackoff)
	case c.InitialBackoff > c.MaxBackoff:
		return nil, fmt.Errorf("%s (%v) must not be greater than %s (%v)",
			config.ExponentialDelayInitialBackoff.Key, c.InitialBackoff, config.ExponentialDelayMaxBackoff.Key, c.MaxBackoff)
	case !(c.BackoffMultiplier > 1) || math.IsInf(c.BackoffMultiplier, 1):
		return nil, fmt.Errorf("%s must be greater than 1, got %v", config.ExponentialDelayBackoffMultiplier.Key, c.BackoffMultiplier)
	case c.ResetBackoffThreshold <= 0:
		return nil, fmt.Errorf("%s must be greater than 0, got %v", config.ExponentialDelayResetBackoffThreshold.Key, c.ResetBackoffThreshold)
	case !(c.JitterFactor >= 0 && c.JitterFactor <= 1):
		return nil, fmt.Errorf("%s must be between 0 and 1, got %v", config.ExponentialDelayJitterFactor.Key, c.JitterFactor)
	case c.AttemptsBeforeResetBackoff < 1:
		return nil, fmt.Errorf("%s must be at least 1, got %d", config.ExponentialDelayAttemptsBeforeResetBackoff.Key, c.AttemptsBeforeResetBackoff)
	}
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &ExponentialDelay{cfg: c, rnd: rnd}, nil
}

// NotifyFailure merges the failure into a pending restart, or resets the
// backoff after a quiet period, then counts an attempt and computes its
// delay.
func (s *ExponentialDelay) NotifyFailure(now time.Time) (bool, time.Duration) {
	if s.started && !now.After(s.restartAt) {
		// Merged into the pending attempt: not counted, same restart time.
		if !s.canRestart() {
			return false, 0
		}
		return true, s.restartAt.Sub(now)
	}
	if !s.started || now.Sub(s.restartAt) >= s.cfg.ResetBackoffThreshold {
		s.attempt = 0
	}
	s.started = true
	delay := s.backoff()
	s.restartAt = now.Add(delay)
	if s.attempt <= s.cfg.AttemptsBeforeResetBackoff {
		s.attempt++ // saturates one past the bound: further counting changes nothing
	}
	if !s.canRestart() {
		return false, 0
	}
	return true, delay
}

func (s *ExponentialDelay) canRestart() bool {
	return s.cfg.AttemptsBeforeResetBackoff == UnlimitedAttempts || s.attempt <= s.cfg.AttemptsBeforeResetBackoff
}

// backoff is the delay of the current attempt: initial * multiplier^attempt,
// jittered, clamped to [initial, max].
func (s *ExponentialDelay) backoff() time.Duration {
	f := float64(s.cfg.InitialBackoff) * math.Pow(s.cfg.BackoffMultiplier, float64(s.attempt))
	base := int64(maxBase)
	if f < maxBase {
		base = int64(math.Round(f))
	}
	d := base
	if s.cfg.JitterFactor > 0 {
		// Flink: offset = (long) (backoff * jitterFactor), jitter uniform in
		// [-offset, offset].
		offset := int64(float64(base) * s.cfg.JitterFactor)
		d += s.rnd.Int64N(2*offset+1) - offset
	}
	return max(s.cfg.InitialBackoff, min(time.Duration(d), s.cfg.MaxBackoff))
}

func (s *ExponentialDelay) String() string {
	attempts := "unlimited"
	if s.cfg.AttemptsBeforeResetBackoff != UnlimitedAttempts {
		attempts = strconv.Itoa(s.cfg.AttemptsBeforeResetBackoff)
	}
	return fmt.Sprintf("%s (initial-backoff %v, max-backoff %v, backoff-multiplier %v, reset-backoff-threshold %v, jitter-factor %v, attempts-before-reset-backoff %s)",
		TypeExponentialDelay, s.cfg.InitialBackoff, s.cfg.MaxBackoff, s.cfg.BackoffMultiplier,
		s.cfg.ResetBackoffThreshold, s.cfg.JitterFactor, attempts)
}
