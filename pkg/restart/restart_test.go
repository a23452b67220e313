package restart

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/config"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one failure, at t0+at, and the decision expected for it.
type step struct {
	at      time.Duration
	restart bool
	delay   time.Duration
}

func run(t *testing.T, s Strategy, steps []step) {
	t.Helper()
	for i, st := range steps {
		restart, delay := s.NotifyFailure(t0.Add(st.at))
		if restart != st.restart || delay != st.delay {
			t.Fatalf("failure %d at +%v: got (%v, %v), want (%v, %v)", i+1, st.at, restart, delay, st.restart, st.delay)
		}
	}
}

func mustConfig(t *testing.T, m map[string]string) *config.Config {
	t.Helper()
	cfg, _, err := config.FromMap(m)
	if err != nil {
		t.Fatalf("config.FromMap(%v): %v", m, err)
	}
	return cfg
}

const defaultExponential = "exponential-delay (initial-backoff 1s, max-backoff 2m0s, backoff-multiplier 1.4, " +
	"reset-backoff-threshold 10m0s, jitter-factor 0.1, attempts-before-reset-backoff unlimited)"

func TestFromConfig(t *testing.T) {
	tests := []struct {
		name          string
		cfg           map[string]string
		checkpointing bool
		want          string // String() of the strategy
		wantErr       string
	}{
		{name: "unset, no checkpointing", want: "none"},
		{name: "unset, checkpointing", checkpointing: true, want: defaultExponential},
		{
			// Flink's getDefaultRestartStrategyFactory uses the options'
			// defaults: exponential-delay.* apply only with the type set.
			name:          "unset, checkpointing, exponential options set",
			cfg:           map[string]string{"restart-strategy.exponential-delay.max-backoff": "5 s", "restart-strategy.exponential-delay.initial-backoff": "10 s"},
			checkpointing: true, want: defaultExponential,
		},
		{
			name: "unset, no checkpointing, fixed-delay options set",
			cfg:  map[string]string{"restart-strategy.fixed-delay.attempts": "5"},
			want: "none",
		},
		{name: "none", cfg: map[string]string{"restart-strategy.type": "none"}, checkpointing: true, want: "none"},
		{name: "off", cfg: map[string]string{"restart-strategy.type": "off"}, checkpointing: true, want: "none"},
		{name: "disable, any case", cfg: map[string]string{"restart-strategy.type": "DISABLE"}, checkpointing: true, want: "none"},
		{name: "fixed-delay defaults", cfg: map[string]string{"restart-strategy.type": "fixed-delay"}, want: "fixed-delay (attempts 1, delay 1s)"},
		{
			name: "fixed-delay set, older type key",
			cfg: map[string]string{"restart-strategy": "fixed-delay",
				"restart-strategy.fixed-delay.attempts": "3", "restart-strategy.fixed-delay.delay": "10 s"},
			want: "fixed-delay (attempts 3, delay 10s)",
		},
		{
			name: "fixed-delay attempts 0 and delay 0",
			cfg: map[string]string{"restart-strategy.type": "fixed-delay",
				"restart-strategy.fixed-delay.attempts": "0", "restart-strategy.fixed-delay.delay": "0"},
			want: "fixed-delay (attempts 0, delay 0s)",
		},
		{
			name: "fixed-delay ignores invalid exponential-delay options",
			cfg: map[string]string{"restart-strategy.type": "fixed-delay",
				"restart-strategy.exponential-delay.initial-backoff": "1 h", "restart-strategy.exponential-delay.backoff-multiplier": "1"},
			want: "fixed-delay (attempts 1, delay 1s)",
		},
		{
			name: "failure-rate defaults", cfg: map[string]string{"restart-strategy.type": "failure-rate"},
			want: "failure-rate (max-failures-per-interval 1, failure-rate-interval 1m0s, delay 1s)",
		},
		{
			name: "failure-rate set",
			cfg: map[string]string{"restart-strategy.type": "failure-rate",
				"restart-strategy.failure-rate.max-failures-per-interval": "3",
				"restart-strategy.failure-rate.failure-rate-interval":     "5 min",
				"restart-strategy.failure-rate.delay":                     "500ms"},
			want: "failure-rate (max-failures-per-interval 3, failure-rate-interval 5m0s, delay 500ms)",
		},
		{
			name: "exponential-delay defaults, without checkpointing",
			cfg:  map[string]string{"restart-strategy.type": "exponential-delay"},
			want: defaultExponential,
		},
		{
			name: "exponential-delay set",
			cfg: map[string]string{"restart-strategy.type": "exponential-delay",
				"restart-strategy.exponential-delay.initial-backoff":               "100ms",
				"restart-strategy.exponential-delay.max-backoff":                   "30 s",
				"restart-strategy.exponential-delay.backoff-multiplier":            "2",
				"restart-strategy.exponential-delay.reset-backoff-threshold":       "1 h",
				"restart-strategy.exponential-delay.jitter-factor":                 "0",
				"restart-strategy.exponential-delay.attempts-before-reset-backoff": "10"},
			want: "exponential-delay (initial-backoff 100ms, max-backoff 30s, backoff-multiplier 2, " +
				"reset-backoff-threshold 1h0m0s, jitter-factor 0, attempts-before-reset-backoff 10)",
		},
		{
			name: "exponential-delay initial equals max",
			cfg: map[string]string{"restart-strategy.type": "exponential-delay",
				"restart-strategy.exponential-delay.initial-backoff": "5 s", "restart-strategy.exponential-delay.max-backoff": "5 s"},
			want: "exponential-delay (initial-backoff 5s, max-backoff 5s, backoff-multiplier 1.4, " +
				"reset-backoff-threshold 10m0s, jitter-factor 0.1, attempts-before-reset-backoff unlimited)",
		},
		{
			name: "exponential-delay initial above max",
			cfg: map[string]string{"restart-strategy.type": "exponential-delay",
				"restart-strategy.exponential-delay.initial-backoff": "5 min"},
			wantErr: "restart strategy exponential-delay: restart-strategy.exponential-delay.initial-backoff (5m0s) " +
				"must not be greater than restart-strategy.exponential-delay.max-backoff (2m0s)",
		},
		{
			name: "exponential-delay initial 0",
			cfg: map[string]string{"restart-strategy.type": "exponential-delay",
				"restart-strategy.exponential-delay.initial-backoff": "0"},
			wantErr: "restart strategy exponential-delay: restart-strategy.exponential-delay.initial-backoff must be greater than 0, got 0s",
		},
		{
			name: "exponential-delay max 0",
			cfg: map[string]string{"restart-strategy.type": "exponential-delay",
				"restart-strategy.exponential-delay.max-backoff": "0 s"},
			wantErr: "restart strategy exponential-delay: restart-strategy.exponential-delay.max-backoff must be greater than 0, got 0s",
		},
		{
			name: "exponential-delay multiplier 1",
			cfg: map[string]string{"restart-strategy.type": "exponential-delay",
				"restart-strategy.exponential-delay.backoff-multiplier": "1"},
			wantErr: "restart strategy exponential-delay: restart-strategy.exponential-delay.backoff-multiplier must be greater than 1, got 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromConfig(mustConfig(t, tt.cfg), tt.checkpointing, rand.New(rand.NewPCG(1, 2)))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("FromConfig: got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromConfig: %v", err)
			}
			if got := s.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromConfigNilConfigAndRand(t *testing.T) {
	s, err := FromConfig(nil, true, nil)
	if err != nil {
		t.Fatalf("FromConfig: %v", err)
	}
	if got := s.String(); got != defaultExponential {
		t.Fatalf("String() = %q, want %q", got, defaultExponential)
	}
	// The first delay is initial-backoff 1 s plus up to 10% jitter, never less.
	restart, delay := s.NotifyFailure(t0)
	if !restart || delay < time.Second || delay > 1100*time.Millisecond {
		t.Fatalf("NotifyFailure = (%v, %v), want (true, [1s, 1.1s])", restart, delay)
	}
	s, err = FromConfig(nil, false, nil)
	if err != nil || s.String() != "none" {
		t.Fatalf("FromConfig(nil, false) = %v, %v; want none", s, err)
	}
}

func TestNoRestart(t *testing.T) {
	run(t, NoRestart{}, []step{{at: 0}, {at: time.Hour}, {at: 1000 * time.Hour}})
}

func TestFixedDelay(t *testing.T) {
	tests := []struct {
		name     string
		attempts int
		delay    time.Duration
		steps    []step
	}{
		{name: "attempts 0 never restarts", attempts: 0, delay: time.Second, steps: []step{{at: 0}, {at: time.Hour}}},
		{
			name: "attempts 1", attempts: 1, delay: time.Second,
			steps: []step{{0, true, time.Second}, {2 * time.Second, false, 0}, {time.Hour, false, 0}},
		},
		{
			name: "attempts 3, delay 0", attempts: 3, delay: 0,
			steps: []step{{0, true, 0}, {1, true, 0}, {2, true, 0}, {3, false, 0}, {4, false, 0}},
		},
		{
			// Unlike failure-rate and exponential-delay, fixed-delay never
			// forgets a failure: attempts bounds the job's whole life.
			name: "no reset after a quiet period", attempts: 2, delay: 10 * time.Second,
			steps: []step{{0, true, 10 * time.Second}, {240 * time.Hour, true, 10 * time.Second}, {480 * time.Hour, false, 0}},
		},
		{
			name: "same instant", attempts: 2, delay: time.Second,
			steps: []step{{0, true, time.Second}, {0, true, time.Second}, {0, false, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewFixedDelay(tt.attempts, tt.delay)
			if err != nil {
				t.Fatalf("NewFixedDelay: %v", err)
			}
			run(t, s, tt.steps)
		})
	}
}

func TestFixedDelayManyFailures(t *testing.T) {
	s, err := NewFixedDelay(1000, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if restart, delay := s.NotifyFailure(t0.Add(time.Duration(i) * time.Hour)); !restart || delay != time.Millisecond {
			t.Fatalf("failure %d: got (%v, %v), want (true, 1ms)", i+1, restart, delay)
		}
	}
	for i := range 3 {
		if restart, delay := s.NotifyFailure(t0); restart || delay != 0 {
			t.Fatalf("failure %d: got (%v, %v), want (false, 0s)", 1001+i, restart, delay)
		}
	}
}

func TestFailureRate(t *testing.T) {
	const d = 5 * time.Second
	tests := []struct {
		name     string
		max      int
		interval time.Duration
		steps    []step
	}{
		{
			name: "second failure within the interval", max: 1, interval: time.Minute,
			steps: []step{{0, true, d}, {30 * time.Second, false, 0}},
		},
		{
			// now - oldest == interval is still within the window (Flink:
			// restart only when now - earliest > interval).
			name: "second failure exactly one interval later", max: 1, interval: time.Minute,
			steps: []step{{0, true, d}, {time.Minute, false, 0}},
		},
		{
			name: "second failure just after the interval", max: 1, interval: time.Minute,
			steps: []step{{0, true, d}, {time.Minute + 1, true, d}, {2*time.Minute + 2, true, d}, {2*time.Minute + 3, false, 0}},
		},
		{
			name: "max 3: the fourth within the interval gives up", max: 3, interval: time.Minute,
			steps: []step{{0, true, d}, {10 * time.Second, true, d}, {20 * time.Second, true, d}, {59 * time.Second, false, 0}},
		},
		{
			name: "same instant", max: 2, interval: time.Second,
			steps: []step{{0, true, d}, {0, true, d}, {0, false, 0}},
		},
		{
			// Failures that leave the window allow new ones; failures that
			// were refused still count, as in Flink (the job has failed by
			// then, but the strategy stays consistent).
			name: "window slides", max: 2, interval: time.Minute,
			steps: []step{
				{0, true, d},
				{50 * time.Second, true, d},
				{61 * time.Second, true, d},   // the failure at 0 has left the window
				{100 * time.Second, false, 0}, // 50 s, 61 s, 100 s within one minute
				{112 * time.Second, false, 0}, // 61 s, 100 s, 112 s
				{200 * time.Second, true, d},  // 100 s, 112 s, 200 s span 100 s
				{230 * time.Second, true, d},  // 112 s, 200 s, 230 s span 118 s
				{250 * time.Second, false, 0}, // 200 s, 230 s, 250 s
				{320 * time.Second, true, d},  // 230 s, 250 s, 320 s span 90 s
			},
		},
		{
			name: "regular failures below the rate never give up", max: 2, interval: time.Minute,
			steps: []step{
				{0, true, d}, {31 * time.Second, true, d}, {62 * time.Second, true, d},
				{93 * time.Second, true, d}, {124 * time.Second, true, d}, {155 * time.Second, true, d},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewFailureRate(tt.max, tt.interval, d)
			if err != nil {
				t.Fatalf("NewFailureRate: %v", err)
			}
			run(t, s, tt.steps)
		})
	}
}

func TestFailureRateKeepsBoundedHistory(t *testing.T) {
	s, err := NewFailureRate(3, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		s.NotifyFailure(t0.Add(time.Duration(i) * time.Hour))
		if len(s.failures) > 4 || cap(s.failures) > 8 {
			t.Fatalf("after %d failures: len %d cap %d, want len <= 4, cap <= 8", i+1, len(s.failures), cap(s.failures))
		}
	}
}

// noJitter is an exponential-delay configuration whose delays are exact.
func noJitter(initial, maxBackoff time.Duration, multiplier float64, threshold time.Duration, attempts int) ExponentialDelayConfig {
	return ExponentialDelayConfig{
		InitialBackoff: initial, MaxBackoff: maxBackoff, BackoffMultiplier: multiplier,
		ResetBackoffThreshold: threshold, JitterFactor: 0, AttemptsBeforeResetBackoff: attempts,
	}
}

func TestExponentialDelay(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		cfg   ExponentialDelayConfig
		steps []step
	}{
		{
			name: "grows by the multiplier up to max-backoff, resets after a quiet period",
			cfg:  noJitter(s, 10*s, 2, time.Minute, UnlimitedAttempts),
			steps: []step{
				{0, true, s},           // attempt 0: 1 s; restart at 1 s
				{2 * s, true, 2 * s},   // ran 1 s: 2 s; restart at 4 s
				{5 * s, true, 4 * s},   // restart at 9 s
				{10 * s, true, 8 * s},  // restart at 18 s
				{19 * s, true, 10 * s}, // 16 s clamped to max-backoff; restart at 29 s
				{30 * s, true, 10 * s}, // restart at 40 s
				{100 * s, true, s},     // ran 60 s >= reset-backoff-threshold: back to 1 s; restart at 101 s
			},
		},
		{
			name: "threshold measured from the restart, inclusive",
			cfg:  noJitter(s, time.Minute, 2, time.Minute, UnlimitedAttempts),
			steps: []step{
				{0, true, s},             // restart at 1 s
				{61*s - 1, true, 2 * s},  // ran 60 s - 1 ns: no reset; restart at 63 s - 1 ns
				{123*s - 1, true, s},     // ran exactly 60 s: reset; restart at 124 s - 1 ns
				{124 * s, true, 2 * s},   // restart at 126 s
				{186*s - 1, true, 4 * s}, // ran 60 s - 1 ns: no reset; restart at 190 s - 1 ns
				{250*s - 1, true, s},     // ran exactly 60 s: reset; restart at 251 s - 1 ns
				{251*s - 1, true, 0},     // merged: the restart is due at this instant
				{251 * s, true, 2 * s},   // attempt 1 after the reset
			},
		},
		{
			name: "failures before the pending restart are merged, not counted",
			cfg:  noJitter(s, time.Minute, 2, time.Minute, 2),
			steps: []step{
				{0, true, s}, // attempt 1; restart at 1 s
				{500 * time.Millisecond, true, 500 * time.Millisecond}, // merged
				{s, true, 0},         // merged: at the restart instant
				{s + 1, true, 2 * s}, // attempt 2; restart at 3 s + 1 ns
				{2 * s, true, s + 1}, // merged
				{4 * s, false, 0},    // attempt 3 > 2: give up
				{5 * s, false, 0},    // merged into the refused attempt
			},
		},
		{
			name:  "attempts-before-reset-backoff 1",
			cfg:   noJitter(s, time.Minute, 2, time.Minute, 1),
			steps: []step{{0, true, s}, {2 * s, false, 0}, {time.Hour, true, s}, {time.Hour + 2*s, false, 0}},
		},
		{
			name: "attempts-before-reset-backoff counts since the last reset",
			cfg:  noJitter(s, time.Minute, 2, time.Minute, 2),
			steps: []step{
				{0, true, s},          // attempt 1; restart at 1 s
				{2 * s, true, 2 * s},  // attempt 2; restart at 4 s
				{64 * s, true, s},     // ran 60 s: reset, attempt 1; restart at 65 s
				{66 * s, true, 2 * s}, // attempt 2; restart at 68 s
				{69 * s, false, 0},    // attempt 3: give up; the restart would be at 73 s
				{74 * s, false, 0},    // no reset; a refused attempt also moves the restart time, to 82 s
				{142 * s, true, s},    // 60 s after 82 s: reset
			},
		},
		{
			name:  "initial equals max",
			cfg:   noJitter(3*s, 3*s, 1.5, time.Minute, UnlimitedAttempts),
			steps: []step{{0, true, 3 * s}, {4 * s, true, 3 * s}, {8 * s, true, 3 * s}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := NewExponentialDelay(tt.cfg, nil)
			if err != nil {
				t.Fatalf("NewExponentialDelay: %v", err)
			}
			run(t, st, tt.steps)
		})
	}
}

// failRightAfterRestarts fails n times, each 1 ms after the restart the
// previous failure asked for (so no failure is merged and none resets the
// backoff while the delays stay below the threshold), and returns the delays.
func failRightAfterRestarts(t *testing.T, s Strategy, n int) []time.Duration {
	t.Helper()
	now := t0
	var delays []time.Duration
	for i := range n {
		restart, delay := s.NotifyFailure(now)
		if !restart {
			t.Fatalf("failure %d at %v: no restart", i+1, now.Sub(t0))
		}
		delays = append(delays, delay)
		now = now.Add(delay + time.Millisecond)
	}
	return delays
}

func TestExponentialDelayWeirDefaultsWithoutJitter(t *testing.T) {
	c := exponentialDelayFrom(config.New())
	c.JitterFactor = 0
	s, err := NewExponentialDelay(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 1 s * 1.4^n, rounded to the nanosecond, up to max-backoff 2 min.
	want := []time.Duration{
		1 * time.Second,
		1400 * time.Millisecond,
		1960 * time.Millisecond,
		2744 * time.Millisecond,
		3841600 * time.Microsecond,
		5378240 * time.Microsecond,
		7529536 * time.Microsecond,
		10541350400,
		14757890560,
		20661046784,
		28925465498, // 28925465497.6
		40495651697, // 40495651696.64
		56693912375, // 56693912375.296
		79371477325, // 79371477325.4144
		111120068256,
		2 * time.Minute,
		2 * time.Minute,
	}
	got := failRightAfterRestarts(t, s, len(want))
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delay %d = %v (%d ns), want %v (%d ns)", i+1, got[i], int64(got[i]), want[i], int64(want[i]))
		}
	}
}

func TestExponentialDelayJitterBounds(t *testing.T) {
	s := time.Second
	tests := []struct {
		name   string
		jitter float64
		// lo, hi bound the delay of each attempt (attempt = index), both
		// reachable: initial 1 s, multiplier 2, max 10 s.
		lo, hi []time.Duration
	}{
		{
			name: "jitter 0.5", jitter: 0.5,
			// base 1, 2, 4, 8, 16, 32 s, +-50%, clamped to [1 s, 10 s]
			lo: []time.Duration{s, s, 2 * s, 4 * s, 8 * s, 10 * s},
			hi: []time.Duration{1500 * time.Millisecond, 3 * s, 6 * s, 10 * s, 10 * s, 10 * s},
		},
		{
			name: "jitter 1", jitter: 1,
			lo: []time.Duration{s, s, s, s, s, s},
			hi: []time.Duration{2 * s, 4 * s, 8 * s, 10 * s, 10 * s, 10 * s},
		},
		{
			name: "jitter 0.1 (weir default)", jitter: 0.1,
			lo: []time.Duration{s, 1800 * time.Millisecond, 3600 * time.Millisecond, 7200 * time.Millisecond, 10 * s, 10 * s},
			hi: []time.Duration{1100 * time.Millisecond, 2200 * time.Millisecond, 4400 * time.Millisecond, 8800 * time.Millisecond, 10 * s, 10 * s},
		},
	}
	const seeds = 2000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.lo)
			minSeen := make([]time.Duration, n)
			maxSeen := make([]time.Duration, n)
			for i := range n {
				minSeen[i], maxSeen[i] = math.MaxInt64, 0
			}
			for seed := range uint64(seeds) {
				c := noJitter(s, 10*s, 2, time.Hour, UnlimitedAttempts)
				c.JitterFactor = tt.jitter
				st, err := NewExponentialDelay(c, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range failRightAfterRestarts(t, st, n) {
					if d < tt.lo[i] || d > tt.hi[i] {
						t.Fatalf("seed %d attempt %d: delay %v outside [%v, %v]", seed, i, d, tt.lo[i], tt.hi[i])
					}
					minSeen[i], maxSeen[i] = min(minSeen[i], d), max(maxSeen[i], d)
				}
			}
			// The whole range is used: with 2000 seeds both ends are hit
			// exactly where the clamp piles up probability, and within 1% of
			// the range elsewhere. Deterministic, since the seeds are fixed.
			for i := range n {
				slack := (tt.hi[i] - tt.lo[i]) / 100
				if minSeen[i] > tt.lo[i]+slack || maxSeen[i] < tt.hi[i]-slack {
					t.Errorf("attempt %d: delays seen in [%v, %v], want close to [%v, %v]", i, minSeen[i], maxSeen[i], tt.lo[i], tt.hi[i])
				}
			}
		})
	}
}

func TestExponentialDelayDeterministicPerSeed(t *testing.T) {
	delays := func(seed uint64) []time.Duration {
		s, err := FromConfig(mustConfig(t, map[string]string{"restart-strategy.type": "exponential-delay"}), false, rand.New(rand.NewPCG(seed, 7)))
		if err != nil {
			t.Fatal(err)
		}
		return failRightAfterRestarts(t, s, 20)
	}
	a, b, c := delays(42), delays(42), delays(43)
	differ := false
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 42, delay %d: %v then %v", i+1, a[i], b[i])
		}
		differ = differ || a[i] != c[i]
	}
	if !differ {
		t.Errorf("seeds 42 and 43 gave the same 20 delays %v", a)
	}
}

func TestExponentialDelayNoOverflow(t *testing.T) {
	tests := []ExponentialDelayConfig{
		{InitialBackoff: 1, MaxBackoff: math.MaxInt64, BackoffMultiplier: 1e9, ResetBackoffThreshold: math.MaxInt64, JitterFactor: 1, AttemptsBeforeResetBackoff: UnlimitedAttempts},
		{InitialBackoff: time.Second, MaxBackoff: math.MaxInt64, BackoffMultiplier: math.MaxFloat64, ResetBackoffThreshold: time.Hour, JitterFactor: 0, AttemptsBeforeResetBackoff: UnlimitedAttempts},
		{InitialBackoff: time.Second, MaxBackoff: time.Minute, BackoffMultiplier: 10, ResetBackoffThreshold: time.Hour, JitterFactor: 0.5, AttemptsBeforeResetBackoff: UnlimitedAttempts},
	}
	for i, c := range tests {
		s, err := NewExponentialDelay(c, rand.New(rand.NewPCG(uint64(i), 1)))
		if err != nil {
			t.Fatal(err)
		}
		for n := range 100 {
			// Failures 1 ns apart after the first: each is merged or counted,
			// and the counted ones push the base far past any duration.
			now := t0.Add(time.Duration(n))
			restart, delay := s.NotifyFailure(now)
			if !restart || delay < 0 || delay > c.MaxBackoff {
				t.Fatalf("config %d failure %d: got (%v, %v)", i, n+1, restart, delay)
			}
		}
	}
}

func TestExponentialDelayUnlimitedAttempts(t *testing.T) {
	s, err := NewExponentialDelay(noJitter(time.Millisecond, time.Millisecond*4, 2, time.Hour, UnlimitedAttempts), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Drive the count past any small bound; it must never give up.
	s.attempt = UnlimitedAttempts - 2
	s.started, s.restartAt = true, t0
	for i := range 10 {
		if restart, delay := s.NotifyFailure(t0.Add(time.Duration(i+1) * time.Second)); !restart || delay != 4*time.Millisecond {
			t.Fatalf("failure %d: got (%v, %v), want (true, 4ms)", i+1, restart, delay)
		}
	}
}

func TestConstructorsReject(t *testing.T) {
	valid := noJitter(time.Second, time.Minute, 2, time.Hour, 3)
	with := func(f func(*ExponentialDelayConfig)) ExponentialDelayConfig { c := valid; f(&c); return c }
	tests := []struct {
		name string
		new  func() error
		want string
	}{
		{"fixed-delay attempts -1", func() error { _, err := NewFixedDelay(-1, 0); return err },
			"restart-strategy.fixed-delay.attempts must be at least 0, got -1"},
		{"fixed-delay delay -1ns", func() error { _, err := NewFixedDelay(1, -1); return err },
			"restart-strategy.fixed-delay.delay must be at least 0, got -1ns"},
		{"failure-rate max 0", func() error { _, err := NewFailureRate(0, time.Minute, 0); return err },
			"restart-strategy.failure-rate.max-failures-per-interval must be at least 1, got 0"},
		{"failure-rate interval 0", func() error { _, err := NewFailureRate(1, 0, 0); return err },
			"restart-strategy.failure-rate.failure-rate-interval must be greater than 0, got 0s"},
		{"failure-rate delay -1s", func() error { _, err := NewFailureRate(1, time.Minute, -time.Second); return err },
			"restart-strategy.failure-rate.delay must be at least 0, got -1s"},
		{"exponential initial 0", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.InitialBackoff = 0 }), nil)
			return err
		}, "restart-strategy.exponential-delay.initial-backoff must be greater than 0, got 0s"},
		{"exponential max negative", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.MaxBackoff = -time.Second }), nil)
			return err
		}, "restart-strategy.exponential-delay.max-backoff must be greater than 0, got -1s"},
		{"exponential initial above max", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.InitialBackoff = time.Minute + 1 }), nil)
			return err
		}, "restart-strategy.exponential-delay.initial-backoff (1m0.000000001s) must not be greater than restart-strategy.exponential-delay.max-backoff (1m0s)"},
		{"exponential multiplier 1", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.BackoffMultiplier = 1 }), nil)
			return err
		}, "restart-strategy.exponential-delay.backoff-multiplier must be greater than 1, got 1"},
		{"exponential multiplier NaN", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.BackoffMultiplier = math.NaN() }), nil)
			return err
		}, "restart-strategy.exponential-delay.backoff-multiplier must be greater than 1, got NaN"},
		{"exponential multiplier +Inf", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.BackoffMultiplier = math.Inf(1) }), nil)
			return err
		}, "restart-strategy.exponential-delay.backoff-multiplier must be greater than 1, got +Inf"},
		{"exponential threshold 0", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.ResetBackoffThreshold = 0 }), nil)
			return err
		}, "restart-strategy.exponential-delay.reset-backoff-threshold must be greater than 0, got 0s"},
		{"exponential jitter -0.1", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.JitterFactor = -0.1 }), nil)
			return err
		}, "restart-strategy.exponential-delay.jitter-factor must be between 0 and 1, got -0.1"},
		{"exponential jitter 1.5", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.JitterFactor = 1.5 }), nil)
			return err
		}, "restart-strategy.exponential-delay.jitter-factor must be between 0 and 1, got 1.5"},
		{"exponential attempts 0", func() error {
			_, err := NewExponentialDelay(with(func(c *ExponentialDelayConfig) { c.AttemptsBeforeResetBackoff = 0 }), nil)
			return err
		}, "restart-strategy.exponential-delay.attempts-before-reset-backoff must be at least 1, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.new()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
		})
	}
}
