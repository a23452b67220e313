package logging

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestConsole(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("Console", "INFO", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("job running", zap.String("job", "j1"))
	_ = log.Sync()
	// 2026-01-02T15:04:05.000Z0700	INFO	logging/logging_test.go:19	job running	{"job": "j1"}
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+Z][0-9:]*\tINFO\tlogging/logging_test\.go:\d+\tjob running\t\{"job": "j1"\}\n$`)
	if !re.MatchString(buf.String()) {
		t.Errorf("console line %q does not match %s", buf.String(), re)
	}
	if strings.Contains(buf.String(), "\x1b[") {
		t.Error("console output is coloured")
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("json", "warn", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("slow checkpoint", zap.String("job", "j2"), zap.Int64("checkpoint", 7))
	_ = log.Sync()
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if m["level"] != "warn" || m["msg"] != "slow checkpoint" || m["job"] != "j2" || m["checkpoint"] != float64(7) {
		t.Errorf("unexpected fields: %v", m)
	}
	if ts, _ := m["ts"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT`).MatchString(ts) {
		t.Errorf("ts %q is not ISO8601", m["ts"])
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct{ format, level, want string }{
		{"xml", "info", `invalid log format "xml": want console or json`},
		{"json", "loud", `invalid log level "loud": want one of debug, info, warn, error`},
	}
	for _, tt := range tests {
		_, err := New(tt.format, tt.level, &bytes.Buffer{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("New(%q, %q) err = %v, want %s", tt.format, tt.level, err, tt.want)
		}
	}
}

// TestJSONLine checks one line as a log shipper reads it (log.format:
// json): a single JSON object with the keys level, ts, logger (a named
// logger's name, as package ha's "etcd-client"), caller, msg and the
// fields, whatever the message holds.
func TestJSONLine(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("json", "info", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Named("ha").Named("etcd-client").Info("line one\nline \"two\"\t\x1b[31m", zap.String("job", "j3"))
	_ = log.Sync()
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want one line, got %q", line)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", line, err)
	}
	want := map[string]any{"level": "info", "logger": "ha.etcd-client", "msg": "line one\nline \"two\"\t\x1b[31m", "job": "j3"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if ts, _ := m["ts"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}`).MatchString(ts) {
		t.Errorf("ts %#v is not ISO8601", m["ts"])
	}
	if c, _ := m["caller"].(string); !strings.HasPrefix(c, "logging/logging_test.go:") {
		t.Errorf("caller %#v", m["caller"])
	}
	if len(m) != 6 {
		t.Errorf("keys %v, want level, ts, logger, caller, msg, job", m)
	}
}
