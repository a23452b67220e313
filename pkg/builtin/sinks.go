package builtin

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{
		Name:       "print-sink",
		Kind:       operator.KindSink,
		Properties: nil,
		Validate:   func(operator.Properties) error { return nil },
		NewOperator: func(operator.Properties) (operator.Operator, error) {
			return &printSink{}, nil
		},
	})
	operator.Register(&operator.Type{
		Name:       "blackhole-sink",
		Kind:       operator.KindSink,
		Properties: nil,
		Validate:   func(operator.Properties) error { return nil },
		NewOperator: func(operator.Properties) (operator.Operator, error) {
			return &blackholeSink{}, nil
		},
	})
}

// printSink writes each record as a JSON line, prefixed
// "<operator-id>:<subtask>> ", to the TaskManager's stdout.
//
// Each record is written at once with a single Write of the whole line:
// the print sink is for people watching a job, who expect a record to show
// up when it is processed even if the stream then idles (a buffer has no
// timer to flush it), and several subtasks share one stdout, so a line must
// never be split over two writes. That is one write syscall per record; use
// file-sink or blackhole-sink for throughput.
type printSink struct {
	w      io.Writer
	prefix int // length of the prefix at the start of buf
	buf    []byte
}

func (s *printSink) Open(ctx *operator.Context) error {
	s.w = ctx.Stdout
	if s.w == nil {
		s.w = os.Stdout
	}
	s.buf = append(s.buf[:0], ctx.OperatorID...)
	s.buf = append(s.buf, ':')
	s.buf = strconv.AppendInt(s.buf, int64(ctx.Subtask), 10)
	s.buf = append(s.buf, '>', ' ')
	s.prefix = len(s.buf)
	return nil
}

func (s *printSink) ProcessRecord(in *record.Record, _ operator.Collector) error {
	s.buf = in.AppendJSON(s.buf[:s.prefix])
	s.buf = append(s.buf, '\n')
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("print-sink: %w", err)
	}
	return nil
}

func (s *printSink) EndInput(operator.Collector) error { return nil }
func (s *printSink) Close() error                      { return nil }

// blackholeSink discards records, counting them (for benchmarks and tests).
type blackholeSink struct {
	count int64
}

func (s *blackholeSink) Open(*operator.Context) error { return nil }

func (s *blackholeSink) ProcessRecord(*record.Record, operator.Collector) error {
	s.count++
	return nil
}

// Count returns the records received so far.
func (s *blackholeSink) Count() int64 { return s.count }

func (s *blackholeSink) EndInput(operator.Collector) error { return nil }
func (s *blackholeSink) Close() error                      { return nil }
