package cli

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0ms"},
		{0, "0ms"},
		{340 * time.Millisecond, "340ms"},
		{time.Second, "1s"},
		{59999 * time.Millisecond, "59s"},
		{83 * time.Second, "1m23s"},
		{time.Hour - time.Nanosecond, "59m59s"},
		{time.Hour, "1h0m"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h5m"},
		{47 * time.Hour, "47h0m"},
		{48 * time.Hour, "2d0h"},
		{100 * time.Hour, "4d4h"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1258291, "1.2 MiB"},
		{5 << 30, "5.0 GiB"},
		{3 << 40, "3.0 TiB"},
		{1 << 62, "4.0 EiB"},
	} {
		if got := humanSize(tc.n); got != tc.want {
			t.Errorf("humanSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestDialReason(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:6123: connect: connection refused"`,
			"connect: connection refused"},
		{`connection error: desc = "transport: Error while dialing: dial tcp [::1]:6123: connect: connection refused"`,
			"connect: connection refused"},
		{`connection error: desc = "transport: Error while dialing: dial tcp: lookup jm.invalid: no such host"`,
			"lookup jm.invalid: no such host"},
		{"name resolver error: produced zero addresses", "name resolver error: produced zero addresses"},
	} {
		if got := dialReason(tc.msg); got != tc.want {
			t.Errorf("dialReason(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestJobDuration(t *testing.T) {
	start := testNow.Add(-time.Hour)
	if got := jobDuration(0, 0, testNow); got != "-" {
		t.Errorf("not started: %q", got)
	}
	if got := jobDuration(ms(start), 0, testNow); got != "1h0m" {
		t.Errorf("running: %q", got)
	}
	if got := jobDuration(ms(start), ms(start.Add(90*time.Second)), testNow); got != "1m30s" {
		t.Errorf("ended: %q", got)
	}
}
