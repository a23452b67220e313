package builtin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/internal/allowpath"
	"github.com/weirstream/weir/pkg/internal/fsutil"
	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{
		Name: "file-source",
		Kind: operator.KindSource,
		Properties: []operator.PropertySpec{
			{Name: "path", Required: true, Description: "at most 4096 bytes: a regular file, or a directory whose regular files (not subdirectories; names starting with '.' or '_' ignored) are read in name order", Path: true},
			{Name: "format", Description: "text (default: each line becomes {\"line\": \"...\"}) or json (one object per line; blank lines skipped)"},
			{Name: "monitor-interval", Description: "duration, 100ms to 24h; when set, watch the directory for new files at this interval (unbounded); when absent, read the files present at start and end (bounded)"},
			{Name: "max-line-bytes", Description: "memory size, 1 byte to 64 mb, default 1 mb: the longest line read, without its line break; a longer one fails the job, naming the file and the line's byte offset"},
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
	maxLine int64         // bytes of a line, without its line break
}

// Documented ranges of the file-source's properties (docs/jobs.md,
// "Limits"). A line is held whole in memory, and becomes one record, which
// cannot cross the network beyond 64 MiB (network's MaxFrameSize). A scan
// of a monitored directory reads the whole directory, so it is not done
// more often than every 100ms.
const (
	defaultMaxLineBytes = 1 << 20
	maxMaxLineBytes     = 64 << 20
	minMonitorInterval  = 100 * time.Millisecond
	maxMonitorInterval  = 24 * time.Hour
)

// maxPathBytes bounds the path properties of file-source and file-sink:
// Linux's PATH_MAX.
const maxPathBytes = 4096

// pathProperty reads a required path property (file-source and
// file-sink): not empty, at most maxPathBytes, no NUL byte (which no file
// name can hold). Whether it exists is for the TaskManager to find out.
func pathProperty(p operator.Properties, name string) (string, error) {
	path, err := p.RequiredString(name)
	if err != nil {
		return "", err
	}
	if len(path) > maxPathBytes {
		return "", fmt.Errorf("property %q: a path of %d bytes, more than the maximum of %d", name, len(path), maxPathBytes)
	}
	if i := strings.IndexByte(path, 0); i >= 0 {
		return "", fmt.Errorf("property %q: path %q has a NUL byte at byte %d", name, path, i)
	}
	return path, nil
}

// parseFileSource checks the properties. The path's existence is not
// checked: it is read on the TaskManager, whose file system may differ
// from the submitter's.
func parseFileSource(p operator.Properties) (fileSourceConfig, error) {
	var c fileSourceConfig
	var err error
	if c.path, err = pathProperty(p, "path"); err != nil {
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
	if d, err := p.Duration("monitor-interval", 0); err == nil && d == 0 && p["monitor-interval"] != nil {
		return c, fmt.Errorf("property %q: want a duration between 100ms and 24h, got 0 (leave it out for a bounded source)", "monitor-interval")
	}
	if c.monitor, err = p.DurationIn("monitor-interval", 0, minMonitorInterval, maxMonitorInterval); err != nil {
		return c, err
	}
	if c.maxLine, err = p.MemorySizeIn("max-line-bytes", defaultMaxLineBytes, 1, maxMaxLineBytes); err != nil {
		return c, err
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

// srcFile is one file of a subtask and where reading it starts: at 0 for
// a file found by a scan, at the restored offset and line after a restore.
type srcFile struct {
	name   string // relative to the path; "" when the path is the file
	offset int64
	line   int64
	done   bool // read to its end: never opened again
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
//
// State (Snapshotter): one item per file of the subtask, (name relative to
// the path, byte offset, line number, done), for every file it was assigned,
// read or not. On restore, every subtask gets the items of all old subtasks
// and keeps those of the files it owns under the current assignment (as
// above, over the directory listed at Open), resuming each at its offset
// and skipping those done. A file with an item is read before the files
// without one, in the order of the items (at the same parallelism, the order
// of the run that took the snapshot); a file without an item (new since)
// starts at 0. An unfinished file that has an item but is no longer in the
// directory fails the restore: its rest would be lost. With monitoring,
// every restored name also counts as seen, so a file read before is never
// read again, even if it is deleted and created anew. The items are the
// "files already seen" of a monitoring source: a name that only a
// non-owner saw says nothing about whether its owner read it, so no
// separate set is kept.
type fileSource struct {
	cfg     fileSourceConfig
	log     *zap.Logger
	allowed *allowpath.Checker // the TaskManager's io.allowed-paths
	subtask int
	par     int

	dir   string    // "" when path is a single file
	files []srcFile // this subtask's files, in reading order
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
	if err := ctx.AllowedPaths.Check(s.cfg.path); err != nil {
		return fmt.Errorf("file-source: property %q: %w", "path", err)
	}
	s.log, s.allowed = ctx.Logger, ctx.AllowedPaths
	if s.log == nil {
		s.log = zap.NewNop()
	}
	fi, err := os.Stat(s.cfg.path)
	if err != nil {
		return fmt.Errorf("file-source: %w", err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return notRegular(s.cfg.path, fi.Mode())
		}
		if s.cfg.monitor > 0 {
			return fmt.Errorf("file-source: monitor-interval needs a directory, %s is a file", s.cfg.path)
		}
		if s.subtask == 0 {
			s.files = []srcFile{{name: ""}}
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
			mine = s.ownsMonitored(name)
		}
		if mine {
			s.files = append(s.files, srcFile{name: name})
		}
	}
	return nil
}

// ownsMonitored reports whether a file of a monitored directory is this
// subtask's.
func (s *fileSource) ownsMonitored(name string) bool {
	return record.String(name).Hash64()%uint64(s.par) == uint64(s.subtask)
}

// filePath returns the path of file i.
func (s *fileSource) filePath(i int) string {
	if s.dir == "" {
		return s.cfg.path
	}
	return filepath.Join(s.dir, s.files[i].name)
}

// position returns where the source is.
func (s *fileSource) position() filePosition { return s.pos }

// seek makes the source continue from pos, the files before pos.FileIndex
// being done; it must be called after Open and before the first PollNext.
func (s *fileSource) seek(pos filePosition) error {
	if s.f != nil || pos.FileIndex < 0 || pos.FileIndex > len(s.files) || pos.Offset < 0 || pos.Line < 0 {
		return fmt.Errorf("file-source: cannot seek to %+v (%d files)", pos, len(s.files))
	}
	for i := range s.files[:pos.FileIndex] {
		s.files[i].done = true
	}
	s.pos = pos
	return nil
}

// settle moves the position to the first file not done from FileIndex on,
// at that file's starting offset and line.
func (s *fileSource) settle() {
	for s.pos.FileIndex < len(s.files) && s.files[s.pos.FileIndex].done {
		s.pos.FileIndex++
	}
	s.pos.Offset, s.pos.Line = 0, 0
	if s.pos.FileIndex < len(s.files) {
		s.pos.Offset, s.pos.Line = s.files[s.pos.FileIndex].offset, s.files[s.pos.FileIndex].line
	}
}

// fileItemV1 is the version byte of a file-source state item: version,
// uvarint name length, name, uvarint offset, uvarint line, done byte.
const fileItemV1 = 1

// SnapshotState returns one item per file of this subtask.
func (s *fileSource) SnapshotState(int64) (*operator.Snapshot, error) {
	items := make([][]byte, len(s.files))
	for i, f := range s.files {
		switch {
		case i < s.pos.FileIndex:
			f.done = true
		case i == s.pos.FileIndex:
			f.offset, f.line = s.pos.Offset, s.pos.Line
		}
		items[i] = appendFileItem(make([]byte, 0, 1+len(f.name)+3*binary.MaxVarintLen64), f)
	}
	return &operator.Snapshot{Items: items}, nil
}

func appendFileItem(b []byte, f srcFile) []byte {
	b = append(b, fileItemV1)
	b = binary.AppendUvarint(b, uint64(len(f.name)))
	b = append(b, f.name...)
	b = binary.AppendUvarint(b, uint64(f.offset))
	b = binary.AppendUvarint(b, uint64(f.line))
	done := byte(0)
	if f.done {
		done = 1
	}
	return append(b, done)
}

func decodeFileItem(b []byte) (srcFile, error) {
	var f srcFile
	bad := func(what string) (srcFile, error) {
		return srcFile{}, fmt.Errorf("bad %s in file-source item %q", what, b)
	}
	if len(b) == 0 || b[0] != fileItemV1 {
		return f, fmt.Errorf("not a file-source item of version %d: %q", fileItemV1, b)
	}
	rest := b[1:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return bad("name")
	}
	f.name, rest = string(rest[k:k+int(n)]), rest[k+int(n):]
	off, k := binary.Uvarint(rest)
	if k <= 0 || off > math.MaxInt64 {
		return bad("offset")
	}
	f.offset, rest = int64(off), rest[k:]
	line, k := binary.Uvarint(rest)
	if k <= 0 || line > math.MaxInt64 {
		return bad("line")
	}
	f.line, rest = int64(line), rest[k:]
	if len(rest) != 1 || rest[0] > 1 {
		return bad("done flag")
	}
	f.done = rest[0] == 1
	return f, nil
}

// RestoreState keeps the items of this subtask's files and resumes them.
func (s *fileSource) RestoreState(r *operator.RestoredState) error {
	if s.f != nil {
		return fmt.Errorf("file-source: restore checkpoint %d after the first read", r.CheckpointID)
	}
	restored := make(map[string]srcFile, len(r.Items))
	rank := make(map[string]int, len(r.Items)) // order among the items
	for i, item := range r.Items {
		f, err := decodeFileItem(item)
		if err != nil {
			return fmt.Errorf("file-source: restore checkpoint %d: item %d: %w", r.CheckpointID, i, err)
		}
		if _, dup := restored[f.name]; dup {
			return fmt.Errorf("file-source: restore checkpoint %d: file %q appears twice", r.CheckpointID, f.name)
		}
		restored[f.name] = f
		rank[f.name] = i
		if s.seen != nil {
			// Read before (or being read by its owner): never again.
			s.seen[f.name] = true
		}
	}
	// Apply the items of this subtask's files, as assigned by Open's scan.
	mine := make(map[string]bool, len(s.files))
	for i := range s.files {
		f := &s.files[i]
		mine[f.name] = true
		if it, ok := restored[f.name]; ok {
			f.offset, f.line, f.done = it.offset, it.line, it.done
		}
	}
	// An unfinished file that is no longer in the directory: with
	// monitoring its owner reports it (it would have found it at Open);
	// without, every subtask does (it is in nobody's part of the listing).
	for i, item := range r.Items {
		it, _ := decodeFileItem(item)
		if it.done || mine[it.name] {
			continue
		}
		missing := false
		switch {
		case s.dir == "":
			missing = s.subtask == 0
		case s.seen != nil:
			missing = s.ownsMonitored(it.name)
		default:
			_, err := os.Lstat(filepath.Join(s.dir, it.name))
			missing = errors.Is(err, os.ErrNotExist)
		}
		if missing {
			return fmt.Errorf("file-source: restore checkpoint %d: item %d: file %q was read up to line %d (offset %d) but is no longer in %s",
				r.CheckpointID, i, it.name, it.line, it.offset, s.cfg.path)
		}
	}
	// Files with state first, in the order of the items; then the others
	// in listing order (SortStableFunc keeps it).
	slices.SortStableFunc(s.files, func(a, b srcFile) int {
		ra, oka := rank[a.name]
		rb, okb := rank[b.name]
		switch {
		case oka && okb:
			return ra - rb
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
	s.pos = filePosition{}
	s.settle()
	return nil
}

// A PollNext returns after maxBatch records, and also after reading
// maxPollLines lines or maxPollBytes bytes (and the line that crosses it),
// however few of them became records (blank lines in json format): the task
// gets its mailbox back after a bounded amount of reading.
const (
	maxPollLines = 4 * maxBatch
	maxPollBytes = 1 << 20
)

func (s *fileSource) PollNext(out operator.Collector) (operator.SourceStatus, time.Duration, error) {
	for emitted, lines, read := 0, 0, int64(0); emitted < maxBatch && lines < maxPollLines && read < maxPollBytes; lines++ {
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
				s.settle()
				if s.pos.FileIndex >= len(s.files) {
					return operator.NothingAvailable, s.cfg.monitor, nil
				}
			}
			if err := s.openFile(); err != nil {
				return operator.MoreAvailable, 0, err
			}
		}
		start := s.pos.Offset
		line, err := s.readLine()
		read += s.pos.Offset - start
		if err == errLineTooLong {
			return operator.MoreAvailable, 0, fmt.Errorf("file-source: %s: line %d, at byte offset %d, is longer than max-line-bytes (%d bytes)",
				s.f.Name(), s.pos.Line+1, start, s.cfg.maxLine)
		}
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
			s.files[s.pos.FileIndex].done = true
			s.settle()
		}
	}
	return operator.MoreAvailable, 0, nil
}

func (s *fileSource) openFile() error {
	name := s.filePath(s.pos.FileIndex)
	// Each file again: one in an allowed directory may be a link out of it.
	if err := s.allowed.Check(name); err != nil {
		return fmt.Errorf("file-source: %w", err)
	}
	// Non-blocking, so that opening a named pipe does not wait for a
	// writer (forever, and out of the task's reach): it is refused below.
	// Reads of a regular file ignore the flag.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("file-source: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(name, fi.Mode())
	}
	if err != nil {
		f.Close()
		return err
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

// notRegular is the error for a path that is not a regular file: a
// device (/dev/zero never ends), a named pipe (whose reads wait for a
// writer) or a socket cannot be read to an end, nor resumed at an offset.
func notRegular(path string, m fs.FileMode) error {
	return fmt.Errorf("file-source: %s is %s: file-source reads regular files only", path, fsutil.Kind(m))
}

// errLineTooLong is readLine's error for a line longer than max-line-bytes.
var errLineTooLong = errors.New("line too long")

// readLine returns the next line with its newline, advancing the offset;
// at the end of the file it returns what is left and io.EOF. A line longer
// than cfg.maxLine, not counting its line break (\n or \r\n), is
// errLineTooLong, found without holding more than cfg.maxLine+1 bytes of it.
func (s *fileSource) readLine() ([]byte, error) {
	if cap(s.long) > defaultMaxLineBytes {
		s.long = nil // do not keep the memory of one long line for good
	}
	s.long = s.long[:0]
	for {
		b, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Room for a \r that turns out to precede the \n.
			if int64(len(s.long)+len(b)) > s.cfg.maxLine+1 {
				return nil, errLineTooLong
			}
			s.appendLong(b)
			continue
		}
		if len(s.long) > 0 {
			if int64(len(s.long)+len(b)) > s.cfg.maxLine+2 {
				return nil, errLineTooLong
			}
			s.appendLong(b)
			b = s.long
		}
		if int64(len(b)) > s.cfg.maxLine && int64(len(trimLineBreak(b))) > s.cfg.maxLine {
			return nil, errLineTooLong
		}
		s.pos.Offset += int64(len(b))
		return b, err
	}
}

// appendLong appends b to the long line, growing it as append does but
// never beyond what the longest line allowed needs (readLine checks that
// it fits).
func (s *fileSource) appendLong(b []byte) {
	if need := len(s.long) + len(b); need > cap(s.long) {
		grown := make([]byte, len(s.long), min(max(2*cap(s.long), need), int(s.cfg.maxLine)+2))
		copy(grown, s.long)
		s.long = grown
	}
	s.long = append(s.long, b...)
}

// trimLineBreak returns line without its \n or \r\n (or a \r at the end
// of the file).
func trimLineBreak(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'})
}

// parse fills s.rec from line; it reports false for a line that yields no
// record (a blank line in json format).
func (s *fileSource) parse(line []byte) (bool, error) {
	line = trimLineBreak(line)
	if !s.cfg.json {
		s.rec.Reset()
		s.rec.Fields = append(s.rec.Fields, record.Field{Name: "line", Value: record.String(string(line))})
		return true, nil
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return false, nil
	}
	if err := s.dec.DecodeJSON(line, &s.rec); err != nil {
		// The decoder's message may quote the line; it stays in the
		// TaskManager's log. What reaches clients (weir status) names
		// the file and line only, whatever file a job managed to read.
		s.log.Warn("file-source: line is not a JSON object", zap.String("file", s.f.Name()), zap.Int64("line", s.pos.Line), zap.Error(err))
		return false, fmt.Errorf("file-source: %s:%d: not a valid JSON object (the TaskManager's log has the decoder's message)", s.f.Name(), s.pos.Line)
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
