package builtin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

func init() {
	operator.Register(&operator.Type{
		Name: "file-sink",
		Kind: operator.KindSink,
		Properties: []operator.PropertySpec{
			{Name: "path", Required: true, Description: "directory of the part files (created if missing), at most 4096 bytes; subtask s writes part-<s>-<n>, hidden as .part-<s>-<n>.inprogress until committed: at end of input, or with checkpointing when the checkpoint that covers it completes (two-phase commit)", Path: true},
			{Name: "format", Description: "json (default: each record as one JSON object per line) or text (the record's \"line\" field per line)"},
			{Name: "rate", Description: "records per second per subtask, 0.001 to 10^9; 0 or absent = unlimited; a faster input is slowed down (backpressure)"},
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

// Modes of what file-sink creates (before the umask): the output may hold
// whatever the job read, so it is not readable by every user of the
// machine; the group can read it, for the consumers of the output.
const (
	partMode = 0o640
	dirMode  = 0o750
)

type fileSinkConfig struct {
	dir  string
	text bool
	rate float64
}

func parseFileSink(p operator.Properties) (fileSinkConfig, error) {
	var c fileSinkConfig
	var err error
	if c.dir, err = pathProperty(p, "path"); err != nil {
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
	if c.rate, err = rateProperty(p); err != nil {
		return c, err
	}
	return c, nil
}

// fileSink writes the records of one subtask to part files.
//
// Naming: subtask s writes part-<s>-<n>, hidden as .part-<s>-<n>.inprogress
// (a name file-source and most tools skip) until it is committed by a
// rename. n never repeats: the first part of a subtask attempt is one more
// than the highest n of that subtask in the directory at Open, visible or
// hidden (committed, pending or in progress), and each new part takes the
// next n, so reruns and restarts never clobber earlier output. A part is
// created at its first record: a subtask without input writes no file.
//
// Without checkpointing there is one part per subtask attempt, renamed to
// its visible name at EndInput after a flush and fsync. Close without
// EndInput (failure, cancellation) leaves it hidden, so readers never see a
// partial output.
//
// With checkpointing (ctx.Checkpointing) it is a two-phase-commit sink, as
// Flink's FileSink (TwoPhaseCommitSinkFunction):
//
//   - pre-commit: at SnapshotState(id) the part being written, if any, is
//     flushed, fsynced and closed, and becomes pending for checkpoint id,
//     still hidden (the directory is fsynced too, so the pending file
//     survives a crash); the next record opens part n+1. The snapshot's
//     items are every pending part not yet committed, with its checkpoint
//     id and final name (pendingPart), so a part stays in the snapshots
//     until it is committed.
//   - commit: NotifyCheckpointComplete(id) renames every pending part of
//     checkpoints <= id to its visible name. NotifyCheckpointAborted does
//     nothing: the parts stay pending and are committed by the completion
//     of a later checkpoint, whose snapshot has them too.
//   - commit is idempotent: a part whose hidden name is gone is taken as
//     committed already (as Flink's committers do after a recovery), so
//     committing again after a restore is harmless.
//   - restore: the checkpoint restored from has completed, so RestoreState
//     commits the pending parts of its items that this subtask owns, then
//     deletes the .inprogress files it owns that are not in the items
//     (parts of attempts that died after the checkpoint: their records
//     are replayed). Ownership after rescaling: the parts written by old
//     subtask s (the number in the file name) belong to new subtask
//     s mod parallelism. Parts of other subtask numbers are never touched.
//   - end of input: EndInput closes the current part; it becomes pending
//     at the next (final) checkpoint and visible when that completes.
//     NeedsFinalCheckpoint is true while some part is closed or pending.
//
// Rate: with `rate`, ProcessRecord blocks until the record is due
// (rateLimiter, the clock read once per chunk of records); the blocked task
// goroutine creates backpressure upstream. The wait ends early when the
// task is canceled (rateWait on operator.Context.Done): ProcessRecord then
// returns an error and the task reports CANCELED.
type fileSink struct {
	cfg           fileSinkConfig
	id            string
	subtask       int
	par           int
	checkpointing bool
	log           *zap.Logger

	nextN int // part number of the next part to open
	curN  int // part number of the open part (f != nil)

	f        *os.File
	w        *bufio.Writer
	buf      []byte
	finished bool

	closed  []int         // parts closed at EndInput, in no checkpoint yet
	pending []pendingPart // parts pre-committed in a checkpoint, not committed

	limit  rateLimiter
	budget int // records released by limit and not written yet
	now    func() time.Duration
	// sleep waits for the next chunk; false means the task was canceled.
	sleep func(time.Duration) bool
	wait  rateWait
}

// pendingPart is a part pre-committed in a checkpoint: its final name is
// part-<subtask>-<n>.
type pendingPart struct {
	checkpointID int64
	subtask      int
	n            int
}

func (p pendingPart) final() string { return partName(p.subtask, p.n) }
func (p pendingPart) hidden() string {
	return "." + partName(p.subtask, p.n) + ".inprogress"
}

func partName(subtask, n int) string {
	return "part-" + strconv.Itoa(subtask) + "-" + strconv.Itoa(n)
}

func (s *fileSink) Open(ctx *operator.Context) error {
	s.id, s.subtask, s.par = ctx.OperatorID, ctx.Subtask, ctx.Parallelism
	s.checkpointing = ctx.Checkpointing
	s.log = ctx.Logger
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if err := ctx.AllowedPaths.Check(s.cfg.dir); err != nil {
		return fmt.Errorf("file-sink %q: property %q: %w", s.id, "path", err)
	}
	if err := os.MkdirAll(s.cfg.dir, dirMode); err != nil {
		return fmt.Errorf("file-sink %q: %w", s.id, err)
	}
	entries, err := os.ReadDir(s.cfg.dir)
	if err != nil {
		return fmt.Errorf("file-sink %q: %w", s.id, err)
	}
	s.nextN = 0
	for _, e := range entries {
		if n, ok := partNumber(e.Name(), s.subtask); ok && n >= s.nextN {
			s.nextN = n + 1
		}
	}
	s.limit = newRateLimiter(s.cfg.rate, maxBatch)
	if s.now == nil {
		start := time.Now()
		s.now = func() time.Duration { return time.Since(start) }
	}
	s.wait.done = ctx.Done
	if s.sleep == nil {
		s.sleep = s.wait.wait
	}
	return nil
}

// parsePart returns the subtask and part number of a part file name,
// part-<subtask>-<n> (hidden false) or .part-<subtask>-<n>.inprogress
// (hidden true), with both numbers canonical decimals.
func parsePart(name string) (subtask, n int, hidden, ok bool) {
	if rest, isHidden := strings.CutPrefix(name, "."); isHidden {
		if name, ok = strings.CutSuffix(rest, ".inprogress"); !ok {
			return 0, 0, false, false
		}
		hidden = true
	}
	rest, ok := strings.CutPrefix(name, "part-")
	if !ok {
		return 0, 0, false, false
	}
	sub, num, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false, false
	}
	subtask, ok1 := canonicalInt(sub)
	n, ok2 := canonicalInt(num)
	if !ok1 || !ok2 {
		return 0, 0, false, false
	}
	return subtask, n, hidden, true
}

func canonicalInt(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && strconv.Itoa(n) == s
}

// partNumber returns n if name is part-<subtask>-<n> or
// .part-<subtask>-<n>.inprogress.
func partNumber(name string, subtask int) (int, bool) {
	sub, n, _, ok := parsePart(name)
	if !ok || sub != subtask {
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
			if !s.sleep(wait) {
				return fmt.Errorf("file-sink %q: task canceled while waiting for the rate limit (%g records per second)", s.id, s.cfg.rate)
			}
		}
		s.budget--
	}
	if s.f == nil {
		if err := s.openPart(); err != nil {
			return err
		}
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
		return fmt.Errorf("file-sink %q: write %s: %w", s.id, s.f.Name(), err)
	}
	return nil
}

// openPart creates the next in-progress part.
func (s *fileSink) openPart() error {
	p := pendingPart{subtask: s.subtask, n: s.nextN}
	f, err := os.OpenFile(filepath.Join(s.cfg.dir, p.hidden()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, partMode)
	if err != nil {
		return fmt.Errorf("file-sink %q: %w", s.id, err)
	}
	s.f, s.curN = f, s.nextN
	s.nextN++
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		s.w.Reset(f)
	}
	return nil
}

// closePart flushes, fsyncs and closes the open part, which keeps its
// hidden name.
func (s *fileSink) closePart() error {
	f := s.f
	s.f = nil
	err := s.w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file-sink %q: finish %s: %w", s.id, f.Name(), err)
	}
	return nil
}

// EndInput makes the part visible (without checkpointing) or closes it to
// be committed by the final checkpoint (with).
func (s *fileSink) EndInput(operator.Collector) error {
	s.finished = true
	if !s.checkpointing && len(s.pending) > 0 {
		// Without checkpointing, parts are pending only after a savepoint
		// (which notifies no completion): the end of input commits them.
		if err := s.NotifyCheckpointComplete(math.MaxInt64); err != nil {
			return err
		}
	}
	if s.f == nil {
		return nil
	}
	n := s.curN
	if err := s.closePart(); err != nil {
		return err
	}
	if s.checkpointing {
		s.closed = append(s.closed, n)
		return nil
	}
	p := pendingPart{subtask: s.subtask, n: n}
	if err := os.Rename(filepath.Join(s.cfg.dir, p.hidden()), filepath.Join(s.cfg.dir, p.final())); err != nil {
		return fmt.Errorf("file-sink %q: finish %s: %w", s.id, p.final(), err)
	}
	return nil
}

// pendingItemV1 is the version byte of a file-sink state item: version,
// varint checkpoint id, uvarint name length, final name of the part.
const pendingItemV1 = 1

// SnapshotState pre-commits the open part and returns the pending parts.
func (s *fileSink) SnapshotState(checkpointID int64) (*operator.Snapshot, error) {
	if s.f != nil {
		n := s.curN
		if err := s.closePart(); err != nil {
			return nil, err
		}
		s.closed = append(s.closed, n)
	}
	if len(s.closed) > 0 {
		// The new files' directory entries must be durable before the
		// checkpoint can complete: the commit after a crash finds them
		// by name.
		if err := syncDir(s.cfg.dir); err != nil {
			return nil, fmt.Errorf("file-sink %q: checkpoint %d: %w", s.id, checkpointID, err)
		}
		for _, n := range s.closed {
			s.pending = append(s.pending, pendingPart{checkpointID: checkpointID, subtask: s.subtask, n: n})
		}
		s.closed = s.closed[:0]
	}
	items := make([][]byte, len(s.pending))
	for i, p := range s.pending {
		items[i] = appendPendingItem(nil, p)
	}
	return &operator.Snapshot{Items: items}, nil
}

func appendPendingItem(b []byte, p pendingPart) []byte {
	name := p.final()
	b = append(b, pendingItemV1)
	b = binary.AppendVarint(b, p.checkpointID)
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

func decodePendingItem(b []byte) (pendingPart, error) {
	var p pendingPart
	if len(b) == 0 || b[0] != pendingItemV1 {
		return p, fmt.Errorf("not a file-sink item of version %d: %q", pendingItemV1, b)
	}
	id, k := binary.Varint(b[1:])
	if k <= 0 {
		return p, fmt.Errorf("bad checkpoint id in file-sink item %q", b)
	}
	rest := b[1+k:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n != uint64(len(rest)-k) {
		return p, fmt.Errorf("bad name in file-sink item %q", b)
	}
	sub, num, hidden, ok := parsePart(string(rest[k:]))
	if !ok || hidden {
		return p, fmt.Errorf("bad part name in file-sink item %q", b)
	}
	return pendingPart{checkpointID: id, subtask: sub, n: num}, nil
}

// NotifyCheckpointComplete commits the parts pending for checkpoints up to
// checkpointID.
func (s *fileSink) NotifyCheckpointComplete(checkpointID int64) error {
	keep := s.pending[:0]
	committed := false
	var err error
	for _, p := range s.pending {
		if err != nil || p.checkpointID > checkpointID {
			keep = append(keep, p)
			continue
		}
		if err = s.commit(p); err != nil {
			keep = append(keep, p)
			continue
		}
		committed = true
	}
	s.pending = keep
	if committed {
		if serr := syncDir(s.cfg.dir); err == nil && serr != nil {
			err = fmt.Errorf("file-sink %q: %w", s.id, serr)
		}
	}
	if err != nil {
		return fmt.Errorf("file-sink %q: commit checkpoint %d: %w", s.id, checkpointID, err)
	}
	return nil
}

// NotifyCheckpointAborted does nothing: the pending parts are in the next
// snapshot too and are committed when a later checkpoint completes.
func (s *fileSink) NotifyCheckpointAborted(int64) error { return nil }

// NeedsFinalCheckpoint reports whether output is waiting for a checkpoint
// to be committed.
func (s *fileSink) NeedsFinalCheckpoint() bool {
	return s.checkpointing && s.finished && (len(s.closed) > 0 || len(s.pending) > 0 || s.f != nil)
}

// commit renames a pending part to its visible name; a part whose hidden
// name is gone is taken as committed already.
func (s *fileSink) commit(p pendingPart) error {
	hidden, final := filepath.Join(s.cfg.dir, p.hidden()), filepath.Join(s.cfg.dir, p.final())
	err := os.Rename(hidden, final)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, serr := os.Stat(final); serr != nil {
		// Neither name: removed by someone else. Flink's committers take
		// it as committed too; say so.
		s.log.Warn("file-sink: pending part to commit is missing; taking it as committed",
			zap.String("operator", s.id), zap.String("part", final), zap.Int64("checkpoint", p.checkpointID))
	}
	return nil
}

// RestoreState commits the pending parts this subtask owns and deletes the
// in-progress files it owns that the checkpoint does not know.
func (s *fileSink) RestoreState(r *operator.RestoredState) error {
	if !s.checkpointing {
		return nil
	}
	if s.f != nil {
		return fmt.Errorf("file-sink %q: restore checkpoint %d after the first record", s.id, r.CheckpointID)
	}
	owns := func(subtask int) bool { return subtask%s.par == s.subtask }
	known := map[string]bool{}
	var mine []pendingPart
	for i, item := range r.Items {
		p, err := decodePendingItem(item)
		if err != nil {
			return fmt.Errorf("file-sink %q: restore checkpoint %d: item %d: %w", s.id, r.CheckpointID, i, err)
		}
		known[p.hidden()] = true
		if owns(p.subtask) {
			mine = append(mine, p)
		}
		if p.subtask == s.subtask && p.n >= s.nextN {
			s.nextN = p.n + 1
		}
	}
	for _, p := range mine {
		if err := s.commit(p); err != nil {
			return fmt.Errorf("file-sink %q: restore checkpoint %d: commit: %w", s.id, r.CheckpointID, err)
		}
	}
	entries, err := os.ReadDir(s.cfg.dir)
	if err != nil {
		return fmt.Errorf("file-sink %q: restore checkpoint %d: %w", s.id, r.CheckpointID, err)
	}
	for _, e := range entries {
		sub, _, hidden, ok := parsePart(e.Name())
		if !ok || !hidden || !owns(sub) || known[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(s.cfg.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file-sink %q: restore checkpoint %d: remove a part of a failed attempt: %w", s.id, r.CheckpointID, err)
		}
	}
	if err := syncDir(s.cfg.dir); err != nil {
		return fmt.Errorf("file-sink %q: restore checkpoint %d: %w", s.id, r.CheckpointID, err)
	}
	return nil
}

// syncDir fsyncs a directory, making renames and new entries in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Close releases the in-progress part, if any, leaving it hidden: without
// EndInput (or a checkpoint) the output is incomplete.
func (s *fileSink) Close() error {
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	err := errors.Join(s.w.Flush(), f.Close())
	if err != nil {
		return fmt.Errorf("file-sink %q: close %s: %w", s.id, f.Name(), err)
	}
	return nil
}
