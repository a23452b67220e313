package builtin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{
		Name: "file-source",
		Kind: operator.KindSource,
		Properties: []operator.PropertySpec{
			{Name: "path", Required: true, Description: "a file, or a directory whose files (not subdirectories; names starting with '.' or '_' ignored) are read in name order"},
			{Name: "format", Description: "text (default: each line becomes {\"line\": \"...\"}) or json (one object per line; blank lines skipped)"},
			{Name: "monitor-interval", Description: "duration; when set, watch the directory for new files at this interval (unbounded); when absent, read the files present at start and end (bounded)"},
		},
		Validate: func(p operator.Properties) error {
			_, err := parseFileSource(p)
			return err
		},
		NewSource: func(p operator.Properties) (operator.Source, error) {
			cfg, err := parseFileSource(p)
			if err != nil {
				return nil, err
			}
			return &fileSource{cfg: cfg}, nil
		},
	})
}

const (
	formatText = "text"
	formatJSON = "json"
)

type fileSourceConfig struct {
	path    string
	json    bool
	monitor time.Duration // 0 = bounded
}

// parseFileSource checks the properties. The path's existence is not
// checked: it is read on the TaskManager, whose file system may differ
// from the submitter's.
func parseFileSource(p operator.Properties) (fileSourceConfig, error) {
	var c fileSourceConfig
	var err error
	if c.path, err = p.RequiredString("path"); err != nil {
		return c, err
	}
	format, err := p.String("format", formatText)
	if err != nil {
		return c, err
	}
	switch format {
	case formatText:
	case formatJSON:
		c.json = true
	default:
		return c, fmt.Errorf("property %q: want %q or %q, got %q", "format", formatText, formatJSON, format)
	}
	if c.monitor, err = p.Duration("monitor-interval", 0); err != nil {
		return c, err
	}
	if p["monitor-interval"] != nil && c.monitor == 0 {
		return c, fmt.Errorf("property %q: want a duration > 0, got %v (leave it out for a bounded source)", "monitor-interval", c.monitor)
	}
	return c, nil
}

// filePosition is where a file-source subtask is: the index of its current
// file in its file list, the byte offset of the next line in that file and
// how many lines precede it (for error messages after a restore).
type filePosition struct {
	FileIndex int
	Offset    int64
	Line      int64
}

// fileSource reads its share of the files under a path, one line per record.
//
// Assignment of files to subtasks: without monitoring, the files present at
// Open, sorted by name, go to subtask index mod parallelism (the directory
// must not change while the job starts). With monitoring, subtasks scan the
// directory independently and at different times, and a new file can sort
// between old ones, shifting indices; there a file goes to subtask
// hash(name) mod parallelism instead (record.Value.Hash64, stable across
// processes), which every subtask computes alike whenever it scans.
//
// Monitored files must appear complete (written elsewhere, or under a name
// starting with '.' or '_', then renamed): a file is read once, up to the
// end it has when it is read.
type fileSource struct {
	cfg     fileSourceConfig
	subtask int
	par     int

	dir   string   // "" when path is a single file
	files []string // this subtask's files, in reading order
	seen  map[string]bool
	pos   filePosition

	f        *os.File
	br       *bufio.Reader
	long     []byte // a line longer than br's buffer
	dec      record.Decoder
	rec      record.Record
	now      func() time.Duration
	nextScan time.Duration
}

func (s *fileSource) Open(ctx *operator.Context) error {
	if ctx.Parallelism < 1 || ctx.Subtask < 0 || ctx.Subtask >= ctx.Parallelism {
		return fmt.Errorf("file-source: subtask %d of parallelism %d", ctx.Subtask, ctx.Parallelism)
	}
	s.subtask, s.par = ctx.Subtask, ctx.Parallelism
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	fi, err := os.Stat(s.cfg.path)
	if err != nil {
		return fmt.Errorf("file-source: %w", err)
	}
	if !fi.IsDir() {
		if s.cfg.monitor > 0 {
			return fmt.Errorf("file-source: monitor-interval needs a directory, %s is a file", s.cfg.path)
		}
		if s.subtask == 0 {
			s.files = []string{s.cfg.path}
		}
		return nil
	}
	s.dir = s.cfg.path
	if s.cfg.monitor > 0 {
		s.seen = make(map[string]bool)
	}
	if err := s.scan(); err != nil {
		return err
	}
	s.nextScan = s.now() + s.cfg.monitor
	return nil
}

// scan appends this subtask's new files in the directory to s.files.
func (s *fileSource) scan() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("file-source: %w", err)
	}
	index := 0 // among eligible files, for the bounded assignment
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name[0] == '.' || name[0] == '_' {
			continue
		}
		mine := false
		if s.seen == nil {
			mine = index%s.par == s.subtask
			index++
		} else if !s.seen[name] {
			s.seen[name] = true
			mine = record.String(name).Hash64()%uint64(s.par) == uint64(s.subtask)
		}
		if mine {
			s.files = append(s.files, filepath.Join(s.dir, name))
		}
	}
	return nil
}

// position returns where the source is, for a snapshot. With monitoring,
// a snapshot also needs s.files (the files already assigned).
func (s *fileSource) position() filePosition { return s.pos }

// seek makes the source continue from pos (restoring a snapshot); it must
// be called after Open and before the first PollNext.
func (s *fileSource) seek(pos filePosition) error {
	if s.f != nil || pos.FileIndex < 0 || pos.FileIndex > len(s.files) || pos.Offset < 0 || pos.Line < 0 {
		return fmt.Errorf("file-source: cannot seek to %+v (%d files)", pos, len(s.files))
	}
	s.pos = pos
	return nil
}

func (s *fileSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	for emitted := 0; emitted < maxBatch; {
		if s.f == nil {
			if s.pos.FileIndex >= len(s.files) {
				if s.cfg.monitor == 0 {
					return operator.EndOfInput, 0, nil
				}
				now := s.now()
				if now < s.nextScan {
					return operator.NothingAvailable, s.nextScan - now, nil
				}
				s.nextScan = now + s.cfg.monitor
				if err := s.scan(); err != nil {
					return operator.MoreAvailable, 0, err
				}
				if s.pos.FileIndex >= len(s.files) {
					return operator.NothingAvailable, s.cfg.monitor, nil
				}
			}
			if err := s.openFile(); err != nil {
				return operator.MoreAvailable, 0, err
			}
		}
		line, err := s.readLine()
		if err != nil && err != io.EOF {
			return operator.MoreAvailable, 0, fmt.Errorf("file-source: read %s: %w", s.f.Name(), err)
		}
		// At EOF, line is what follows the last newline: a last line
		// without newline, or nothing.
		if len(line) > 0 || err == nil {
			s.pos.Line++
			ok, perr := s.parse(line)
			if perr != nil {
				return operator.MoreAvailable, 0, perr
			}
			if ok {
				if cerr := out.Collect(&s.rec); cerr != nil {
					return operator.MoreAvailable, 0, cerr
				}
				emitted++
			}
		}
		if err == io.EOF {
			cerr := s.f.Close()
			s.f = nil
			if cerr != nil {
				return operator.MoreAvailable, 0, fmt.Errorf("file-source: %w", cerr)
			}
			s.pos = filePosition{FileIndex: s.pos.FileIndex + 1}
		}
	}
	return operator.MoreAvailable, 0, nil
}

func (s *fileSource) openFile() error {
	name := s.files[s.pos.FileIndex]
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("file-source: %w", err)
	}
	if s.pos.Offset > 0 {
		if _, err := f.Seek(s.pos.Offset, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("file-source: seek %s to %d: %w", name, s.pos.Offset, err)
		}
	}
	if s.br == nil {
		s.br = bufio.NewReaderSize(f, 64<<10)
	} else {
		s.br.Reset(f)
	}
	s.f = f
	return nil
}

// readLine returns the next line with its newline, advancing the offset;
// at the end of the file it returns what is left and io.EOF.
func (s *fileSource) readLine() ([]byte, error) {
	s.long = s.long[:0]
	for {
		b, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			s.long = append(s.long, b...)
			continue
		}
		if len(s.long) > 0 {
			s.long = append(s.long, b...)
			b = s.long
		}
		s.pos.Offset += int64(len(b))
		return b, err
	}
}

// parse fills s.rec from line; it reports false for a line that yields no
// record (a blank line in json format).
func (s *fileSource) parse(line []byte) (bool, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if !s.cfg.json {
		s.rec.Reset()
		s.rec.Fields = append(s.rec.Fields, record.Field{Name: "line", Value: record.String(string(line))})
		return true, nil
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return false, nil
	}
	if err := s.dec.DecodeJSON(line, &s.rec); err != nil {
		return false, fmt.Errorf("file-source: %s:%d: %w", s.f.Name(), s.pos.Line, err)
	}
	return true, nil
}

func (s *fileSource) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("file-source: %w", err)
	}
	return nil
}
