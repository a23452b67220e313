package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"500ms", 500 * time.Millisecond},
		{"500 ms", 500 * time.Millisecond},
		{"10 s", 10 * time.Second},
		{"10s", 10 * time.Second},
		{"10 S", 10 * time.Second},
		{"10 sec", 10 * time.Second},
		{"10 secs", 10 * time.Second},
		{"1 second", time.Second},
		{"2 seconds", 2 * time.Second},
		{"2 min", 2 * time.Minute},
		{"2min", 2 * time.Minute},
		{"2 m", 2 * time.Minute},
		{"1 minute", time.Minute},
		{"5 minutes", 5 * time.Minute},
		{"1h", time.Hour},
		{"1 h", time.Hour},
		{"2 hours", 2 * time.Hour},
		{"3 d", 72 * time.Hour},
		{"1 day", 24 * time.Hour},
		{"100 milliseconds", 100 * time.Millisecond},
		{"1 milli", time.Millisecond},
		{"7 µs", 7 * time.Microsecond},
		{"7us", 7 * time.Microsecond},
		{"9 ns", 9 * time.Nanosecond},
		{"9 nanos", 9 * time.Nanosecond},
		{"1m30s", 90 * time.Second},
		{"1.5h", 90 * time.Minute},
		{"1h2m3s", time.Hour + 2*time.Minute + 3*time.Second},
		{"250", 250 * time.Millisecond}, // bare number = milliseconds, as in Flink
		{"0", 0},
		{"  42 s  ", 42 * time.Second},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "abc", "-1s", "-5", "10 parsecs", "ms", "1.5", "s10", "99999999999999999999 ms", "9999999999 d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want error", in, got)
		}
	}
}

func TestParseMemorySize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"32kb", 32 << 10},
		{"32 KiB", 32 << 10},
		{"32k", 32 << 10},
		{"32 kibibytes", 32 << 10},
		{"32 KB", 32 << 10},
		{"1mb", 1 << 20},
		{"1 m", 1 << 20},
		{"1 MiB", 1 << 20},
		{"1 gb", 1 << 30},
		{"2g", 2 << 30},
		{"1 tb", 1 << 40},
		{"100", 100},
		{"100 b", 100},
		{"100 bytes", 100},
		{"0", 0},
	}
	for _, tt := range tests {
		got, err := ParseMemorySize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseMemorySize(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "kb", "-1kb", "1.5mb", "12 parsecs", "99999999999 tb", "1e3"} {
		if got, err := ParseMemorySize(in); err == nil {
			t.Errorf("ParseMemorySize(%q) = %v, want error", in, got)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
	}{
		{"0", 0, 0},
		{"6123", 6123, 6123},
		{"9249-9260", 9249, 9260},
		{" 9249 - 9260 ", 9249, 9260},
		{"65535", 65535, 65535},
		{"80-80", 80, 80},
	}
	for _, tt := range tests {
		lo, hi, err := ParsePortRange(tt.in)
		if err != nil || lo != tt.lo || hi != tt.hi {
			t.Errorf("ParsePortRange(%q) = %d, %d, %v; want %d, %d", tt.in, lo, hi, err, tt.lo, tt.hi)
		}
	}
	for _, in := range []string{"", "abc", "65536", "-1", "9260-9249", "0-10", "1-", "1,2", "+5", "80-90-100"} {
		if lo, hi, err := ParsePortRange(in); err == nil {
			t.Errorf("ParsePortRange(%q) = %d, %d, want error", in, lo, hi)
		}
	}
}
