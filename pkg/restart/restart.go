package restart

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/weirstream/weir/pkg/config"
)

// Strategy decides whether and when a failed job restarts (Flink's
// RestartBackoffTimeStrategy). It is not safe for concurrent use.
type Strategy interface {
	// NotifyFailure records a failure at now (Flink: notifyFailure(cause)); it
	// returns whether a restart may happen and after what delay.
	NotifyFailure(now time.Time) (restart bool, delay time.Duration)
	// String describes the strategy and its parameters for logs and status,
	// e.g. "fixed-delay (attempts 3, delay 1s)".
	String() string
}

// Strategy type names, as written in restart-strategy.type.
const (
	TypeNone             = "none"
	TypeFixedDelay       = "fixed-delay"
	TypeFailureRate      = "failure-rate"
	TypeExponentialDelay = "exponential-delay"
)

// FromConfig builds the restart strategy of a job from cfg, the cluster's
// configuration with the job's config: section applied on top (nil reads as
// all defaults). checkpointingEnabled chooses the default when
// restart-strategy.type is unset: exponential-delay if true, none if false.
// rnd is the only source of the exponential-delay jitter; nil means a source
// seeded at random (tests pass a seeded one).
func FromConfig(cfg *config.Config, checkpointingEnabled bool, rnd *rand.Rand) (Strategy, error) {
	typ := cfg.String(config.RestartStrategy)
	switch typ {
	case "":
		if !checkpointingEnabled {
			return NoRestart{}, nil
		}
		// Flink's getDefaultRestartStrategyFactory: the options' defaults,
		// not the values set for them, because the user chose no strategy.
		s, err := NewExponentialDelay(exponentialDelayFrom(config.New()), rnd)
		if err != nil {
			return nil, fmt.Errorf("default restart strategy: %w", err)
		}
		return s, nil
	case "none", "off", "disable":
		return NoRestart{}, nil
	case TypeFixedDelay:
		s, err := NewFixedDelay(cfg.Int(config.FixedDelayAttempts), cfg.Duration(config.FixedDelayDelay))
		if err != nil {
			return nil, fmt.Errorf("restart strategy %s: %w", typ, err)
		}
		return s, nil
	case TypeFailureRate:
		s, err := NewFailureRate(cfg.Int(config.FailureRateMaxFailuresPerInterval),
			cfg.Duration(config.FailureRateInterval), cfg.Duration(config.FailureRateDelay))
		if err != nil {
			return nil, fmt.Errorf("restart strategy %s: %w", typ, err)
		}
		return s, nil
	case TypeExponentialDelay:
		s, err := NewExponentialDelay(exponentialDelayFrom(cfg), rnd)
		if err != nil {
			return nil, fmt.Errorf("restart strategy %s: %w", typ, err)
		}
		return s, nil
	default:
		// Unreachable while config declares the enum's values; kept so that a
		// value added there without a strategy here is an error, not "none".
		return nil, fmt.Errorf("unknown restart strategy %q for key %q", typ, config.RestartStrategy.Key)
	}
}

func exponentialDelayFrom(cfg *config.Config) ExponentialDelayConfig {
	return ExponentialDelayConfig{
		InitialBackoff:             cfg.Duration(config.ExponentialDelayInitialBackoff),
		MaxBackoff:                 cfg.Duration(config.ExponentialDelayMaxBackoff),
		BackoffMultiplier:          cfg.Float(config.ExponentialDelayBackoffMultiplier),
		ResetBackoffThreshold:      cfg.Duration(config.ExponentialDelayResetBackoffThreshold),
		JitterFactor:               cfg.Float(config.ExponentialDelayJitterFactor),
		AttemptsBeforeResetBackoff: cfg.Int(config.ExponentialDelayAttemptsBeforeResetBackoff),
	}
}

// NoRestart never restarts (Flink's NoRestartBackoffTimeStrategy; types
// none, off and disable).
type NoRestart struct{}

// NotifyFailure always gives up.
func (NoRestart) NotifyFailure(time.Time) (bool, time.Duration) { return false, 0 }

func (NoRestart) String() string { return TypeNone }

// FixedDelay restarts a fixed number of times with a fixed delay (Flink's
// FixedDelayRestartBackoffTimeStrategy).
type FixedDelay struct {
	attempts int
	delay    time.Duration
	failures int // saturates at attempts+1: counting further changes nothing
}

// NewFixedDelay returns a strategy that allows attempts restarts (>= 0), each
// after delay (>= 0).
func NewFixedDelay(attempts int, delay time.Duration) (*FixedDelay, error) {
	if attempts < 0 {
		return nil, fmt.Errorf("%s must be at least 0, got %d", config.FixedDelayAttempts.Key, attempts)
	}
	if delay < 0 {
		return nil, fmt.Errorf("%s must be at least 0, got %v", config.FixedDelayDelay.Key, delay)
	}
	return &FixedDelay{attempts: attempts, delay: delay}, nil
}

// NotifyFailure counts the failure as a restart attempt.
func (s *FixedDelay) NotifyFailure(time.Time) (bool, time.Duration) {
	if s.failures <= s.attempts {
		s.failures++
	}
	if s.failures > s.attempts {
		return false, 0
	}
	return true, s.delay
}

func (s *FixedDelay) String() string {
	return fmt.Sprintf("%s (attempts %d, delay %v)", TypeFixedDelay, s.attempts, s.delay)
}

// FailureRate restarts unless too many failures fall within a sliding window
// (Flink's FailureRateRestartBackoffTimeStrategy).
type FailureRate struct {
	maxFailures int
	interval    time.Duration
	delay       time.Duration
	// failures holds the times of the last maxFailures+1 failures, oldest
	// first: all the history the rule needs.
	failures []time.Time
}

// NewFailureRate returns a strategy that gives up when more than
// maxFailuresPerInterval (>= 1) failures fall within interval (> 0), and
// otherwise restarts after delay (>= 0).
func NewFailureRate(maxFailuresPerInterval int, interval, delay time.Duration) (*FailureRate, error) {
	if maxFailuresPerInterval < 1 {
		return nil, fmt.Errorf("%s must be at least 1, got %d", config.FailureRateMaxFailuresPerInterval.Key, maxFailuresPerInterval)
	}
	if interval <= 0 {
		return nil, fmt.Errorf("%s must be greater than 0, got %v", config.FailureRateInterval.Key, interval)
	}
	if delay < 0 {
		return nil, fmt.Errorf("%s must be at least 0, got %v", config.FailureRateDelay.Key, delay)
	}
	return &FailureRate{maxFailures: maxFailuresPerInterval, interval: interval, delay: delay}, nil
}

// NotifyFailure records the failure and gives up if it is one too many for
// the window that ends at now.
func (s *FailureRate) NotifyFailure(now time.Time) (bool, time.Duration) {
	if len(s.failures) > s.maxFailures {
		// Drop the oldest in place so that the slice's capacity is reused
		// instead of creeping forward through ever new arrays.
		n := copy(s.failures, s.failures[1:])
		s.failures = s.failures[:n]
	}
	s.failures = append(s.failures, now)
	if len(s.failures) > s.maxFailures && now.Sub(s.failures[0]) <= s.interval {
		return false, 0
	}
	return true, s.delay
}

func (s *FailureRate) String() string {
	return fmt.Sprintf("%s (max-failures-per-interval %d, failure-rate-interval %v, delay %v)",
		TypeFailureRate, s.maxFailures, s.interval, s.delay)
}
