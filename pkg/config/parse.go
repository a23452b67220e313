package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationUnits are Flink's TimeUtils unit labels (singular and plural),
// plus "us" and "mins" which Go and humans write too.
var durationUnits = map[string]time.Duration{
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"ms": time.Millisecond, "milli": time.Millisecond, "millis": time.Millisecond,
	"millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"µs": time.Microsecond, "us": time.Microsecond, "micro": time.Microsecond, "micros": time.Microsecond,
	"microsecond": time.Microsecond, "microseconds": time.Microsecond,
	"ns": time.Nanosecond, "nano": time.Nanosecond, "nanos": time.Nanosecond,
	"nanosecond": time.Nanosecond, "nanoseconds": time.Nanosecond,
}

// ParseDuration parses a duration written the Flink way — a non-negative
// integer, optional spaces, and a unit (500ms, 10 s, 2 min, 1 h, 3 d,
// 100 milliseconds, 1 minute; units are case-insensitive) — or the Go way
// (1m30s, 1.5h). A bare number is milliseconds, as in Flink. Negative
// durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	digits := leadingDigits(t)
	if digits > 0 {
		unit := strings.ToLower(strings.TrimSpace(t[digits:]))
		mult := time.Millisecond
		if unit != "" {
			m, ok := durationUnits[unit]
			if !ok {
				return goDuration(s, t)
			}
			mult = m
		}
		n, err := strconv.ParseInt(t[:digits], 10, 64)
		if err != nil || n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("duration %q overflows", s)
		}
		return time.Duration(n) * mult, nil
	}
	return goDuration(s, t)
}

// goDuration accepts Go's composite forms (1m30s, 1.5h) that Flink's syntax
// does not cover.
func goDuration(orig, t string) (time.Duration, error) {
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: want a duration like 500ms, 10 s or 2 min", orig)
	}
	return d, nil
}

// memoryUnits are Flink's MemorySize unit labels (k = kb = kibibytes =
// 1024) plus the IEC spellings KiB, MiB, GiB and TiB.
var memoryUnits = map[string]int64{
	"b": 1, "byte": 1, "bytes": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "kibibytes": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "mebibytes": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "gibibytes": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40, "tebibytes": 1 << 40,
}

// ParseMemorySize parses a memory size the Flink way: a non-negative integer,
// optional spaces and a case-insensitive unit (32kb, 32 KiB, 32k, 1mb, 1 gb).
// Units are binary (k = 1024, as in Flink's MemorySize); a bare number is bytes.
func ParseMemorySize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	digits := leadingDigits(t)
	bad := fmt.Errorf("invalid memory size %q: want a memory size like 32kb, 64 mb or 1 gb", s)
	if digits == 0 {
		return 0, bad
	}
	mult := int64(1)
	if unit := strings.ToLower(strings.TrimSpace(t[digits:])); unit != "" {
		m, ok := memoryUnits[unit]
		if !ok {
			return 0, bad
		}
		mult = m
	}
	n, err := strconv.ParseInt(t[:digits], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory size %q overflows", s)
	}
	return n * mult, nil
}

// ParsePortRange parses a port (6123), an inclusive range (9249-9260) or 0,
// which means any free port and is returned as (0, 0).
func ParsePortRange(s string) (lo, hi int, err error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("invalid port range %q: want a port, a port range like 9249-9260, or 0 for any free port", s)
	a, b, isRange := strings.Cut(t, "-")
	lo, err = parsePort(a)
	if err != nil {
		return 0, 0, bad
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(b); err != nil || lo == 0 || hi < lo {
			return 0, 0, bad
		}
	}
	return lo, hi, nil
}

func parsePort(s string) (int, error) {
	s = strings.TrimSpace(s)
	if leadingDigits(s) != len(s) {
		return 0, errors.New("not a port")
	}
	p, err := strconv.Atoi(s)
	if err != nil || p > 65535 {
		return 0, errors.New("not a port")
	}
	return p, nil
}

// leadingDigits returns how many ASCII digits s starts with.
func leadingDigits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
