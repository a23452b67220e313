// Package logging builds weir's zap loggers. It owns the log format and the
// logging conventions every package follows:
//
//   - Every log line about a job carries the field job = the job id:
//     log.Info("job running", zap.String("job", id)). Derive a per-job logger
//     with log.With(zap.String("job", id)) rather than repeating the field.
//     This is what lets an operator grep or filter one job's history out of a
//     shared daemon's log.
//   - Lines about one subtask attempt also carry task (the vertex name),
//     subtask (its index) and attempt, in that vocabulary.
//   - Errors go in zap.Error(err), not in the message.
//
// The package starts no goroutines and holds no global logger: the daemon
// builds one logger at start and passes it down.
package logging

import (
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger writing to w in format "console" (human-readable,
// ISO8601 time, no colour, so that files and pipes stay clean) or "json", at
// level "debug", "info", "warn" or "error" (both case-insensitive, matching
// the log.format and log.level options of package config).
func New(format, level string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		lvl = zapcore.DebugLevel
	case "info":
		lvl = zapcore.InfoLevel
	case "warn":
		lvl = zapcore.WarnLevel
	case "error":
		lvl = zapcore.ErrorLevel
	default:
		return nil, fmt.Errorf("invalid log level %q: want one of debug, info, warn, error", level)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, fmt.Errorf("invalid log format %q: want console or json", format)
	}
	// Lock: the writer may be shared (os.Stderr, a test buffer) and zap
	// writes from many goroutines.
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}
