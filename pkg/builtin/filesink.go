package builtin

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{
		Name: "file-sink",
		Kind: operator.KindSink,
		Properties: []operator.PropertySpec{
			{Name: "path", Required: true, Description: "directory of the part files (created if missing); subtask s writes part-<s>-<n>, hidden as .part-<s>-<n>.inprogress until finished"},
			{Name: "format", Description: "json (default: each record as one JSON object per line) or text (the record's \"line\" field per line)"},
			{Name: "rate", Description: "records per second per subtask, 0 or absent = unlimited; a faster input is slowed down (backpressure)"},
		},
		Validate: func(p operator.Properties) error {
			_, err := parseFileSink(p)
			return err
		},
		NewOperator: func(p operator.Properties) (operator.Operator, error) {
			cfg, err := parseFileSink(p)
			if err != nil {
				return nil, err
			}
			return &fileSink{cfg: cfg}, nil
		},
	})
}

type fileSinkConfig struct {
	dir  string
	text bool
	rate float64
}

func parseFileSink(p operator.Properties) (fileSinkConfig, error) {
	var c fileSinkConfig
	var err error
	if c.dir, err = p.RequiredString("path"); err != nil {
		return c, err
	}
	format, err := p.String("format", formatJSON)
	if err != nil {
		return c, err
	}
	switch format {
	case formatJSON:
	case formatText:
		c.text = true
	default:
		return c, fmt.Errorf("property %q: want %q or %q, got %q", "format", formatJSON, formatText, format)
	}
	if c.rate, err = nonNegativeRate(p); err != nil {
		return c, err
	}
	return c, nil
}

// maxSleepSlice bounds one sleep of a rate-limited file-sink, so that the
// task goroutine re-checks the clock at least this often.
const maxSleepSlice = 100 * time.Millisecond

// fileSink writes the records of one subtask to one part file.
//
// Visibility: the file is written as .part-<subtask>-<n>.inprogress (a
// hidden name, which file-source and most tools skip) and renamed to
// part-<subtask>-<n> at EndInput, after a flush and fsync. Close without
// EndInput (failure, cancellation) leaves it hidden, so readers never see a
// partial output. Until checkpointing lands this is the whole commit
// protocol; with it, files will roll and be committed per checkpoint.
//
// Naming: n is one more than the highest n of this subtask in the
// directory, visible or in progress, so that reruns never clobber earlier
// output. The file is created at the first record: a subtask without input
// writes no file.
//
// Rate: with `rate`, ProcessRecord blocks until the record is due
// (rateLimiter, the clock read once per chunk of records), sleeping in
// slices of at most maxSleepSlice; the blocked task goroutine creates
// backpressure upstream.
type fileSink struct {
	cfg     fileSinkConfig
	id      string
	subtask int
	n       int
	name    string // final path
	tmp     string // in-progress path

	f        *os.File
	w        *bufio.Writer
	buf      []byte
	finished bool

	limit  rateLimiter
	budget int // records released by limit and not written yet
	now    func() time.Duration
	sleep  func(time.Duration)
}

func (s *fileSink) Open(ctx *operator.Context) error {
	s.id, s.subtask = ctx.OperatorID, ctx.Subtask
	if err := os.MkdirAll(s.cfg.dir, 0o755); err != nil {
		return fmt.Errorf("file-sink %q: %w", s.id, err)
	}
	entries, err := os.ReadDir(s.cfg.dir)
	if err != nil {
		return fmt.Errorf("file-sink %q: %w", s.id, err)
	}
	s.n = 0
	for _, e := range entries {
		if n, ok := partNumber(e.Name(), s.subtask); ok && n >= s.n {
			s.n = n + 1
		}
	}
	base := "part-" + strconv.Itoa(s.subtask) + "-" + strconv.Itoa(s.n)
	s.name = filepath.Join(s.cfg.dir, base)
	s.tmp = filepath.Join(s.cfg.dir, "."+base+".inprogress")
	s.limit = newRateLimiter(s.cfg.rate, maxBatch)
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	if s.sleep == nil {
		s.sleep = time.Sleep
	}
	return nil
}

// partNumber returns n if name is part-<subtask>-<n> or
// .part-<subtask>-<n>.inprogress.
func partNumber(name string, subtask int) (int, bool) {
	if rest, ok := strings.CutPrefix(name, "."); ok {
		if name, ok = strings.CutSuffix(rest, ".inprogress"); !ok {
			return 0, false
		}
	}
	rest, ok := strings.CutPrefix(name, "part-"+strconv.Itoa(subtask)+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

func (s *fileSink) ProcessRecord(in *record.Record, _ operator.Collector) error {
	if s.finished {
		return fmt.Errorf("file-sink %q: record after end of input", s.id)
	}
	if s.cfg.rate > 0 {
		for s.budget == 0 {
			n, wait := s.limit.take(s.now(), maxBatch)
			if n > 0 {
				s.budget = n
				break
			}
			s.sleep(min(wait, maxSleepSlice))
		}
		s.budget--
	}
	if s.f == nil {
		f, err := os.OpenFile(s.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("file-sink %q: %w", s.id, err)
		}
		s.f = f
		s.w = bufio.NewWriterSize(f, 64<<10)
	}
	if s.cfg.text {
		v, ok := in.Get("line")
		if !ok {
			return fmt.Errorf("file-sink %q: record %s has no \"line\" field (format text)", s.id, in)
		}
		if str, isString := v.AsString(); isString {
			s.buf = append(s.buf[:0], str...)
		} else {
			s.buf = v.AppendJSON(s.buf[:0])
		}
	} else {
		s.buf = in.AppendJSON(s.buf[:0])
	}
	s.buf = append(s.buf, '\n')
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("file-sink %q: write %s: %w", s.id, s.tmp, err)
	}
	return nil
}

// EndInput makes the part file visible.
func (s *fileSink) EndInput(operator.Collector) error {
	s.finished = true
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	err := s.w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.tmp, s.name)
	}
	if err != nil {
		return fmt.Errorf("file-sink %q: finish %s: %w", s.id, s.name, err)
	}
	return nil
}

// Close releases the in-progress file, if any, leaving it hidden: without
// EndInput the output is incomplete.
func (s *fileSink) Close() error {
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	err := errors.Join(s.w.Flush(), f.Close())
	if err != nil {
		return fmt.Errorf("file-sink %q: close %s: %w", s.id, s.tmp, err)
	}
	return nil
}
