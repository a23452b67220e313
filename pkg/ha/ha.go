// Package ha owns the JobManager's durable facts: what must survive a
// JobManager failover so that a new leader can take over the jobs of the old
// one, as Flink's HighAvailabilityServices do. They are:
//
//   - the submitted job graphs (job id -> job file and name), kept while the
//     job is not globally terminal, so a new leader can resubmit them;
//   - a per-job checkpoint id counter;
//   - per job the attempt of its current execution, recorded before any of
//     its tasks is deployed, so a new leader can tell the current tasks
//     from stale ones (see Recovery);
//   - pointers to the completed checkpoints of each job (where their
//     metadata lives, not the state itself), the first of which may be the
//     savepoint the job was started from;
//   - the results of globally terminal jobs (FINISHED, FAILED, CANCELED),
//     kept after the job is removed, so a job is never run twice;
//   - leadership: whether this JobManager may act on jobs at all, and its
//     epoch, the fencing token every write and every call to a
//     TaskManager carries.
//
// Two implementations have the same methods, so the JobManager and the
// scheduler never learn which one they run with; callers declare the small
// interface they need where they use it (STYLE.md §2) instead of depending
// on a package-wide one:
//
//   - Standalone keeps the facts in memory and always leads, unfenced
//     (epoch 0: there is no other JobManager to depose it): what a single
//     JobManager without failover needs (Flink's "NONE" mode,
//     high-availability.type: none).
//   - Etcd (etcd.go) keeps them in etcd under /weir/<cluster-id>/, with the
//     job files as blobs in high-availability.storageDir, and elects one
//     leader among the JobManagers of a cluster (high-availability.type:
//     etcd). Every write is an etcd transaction conditioned on the leader
//     key this JobManager was elected with, so that a JobManager that lost
//     its leadership (paused, cut off, or simply slower than its lease)
//     cannot change anything once a successor may lead. Its connections
//     to etcd may use TLS (high-availability.etcd.tls.*, etcd_tls.go).
//     etcd.go is the only file that imports the etcd client, but every
//     importer of this package links it: the pure scheduler and
//     coordinator do not import it (make check fails if they link
//     go.etcd.io).
//
// Leadership and Recovery (leadership.go, recovery.go) are the pure state
// machines that a JobManager's shell drives with what Etcd reports.
//
// Invariants (every implementation):
//   - NextCheckpointID returns strictly increasing ids per job, starting at
//     1, also across failovers: a checkpoint id is never handed out twice.
//     SetCheckpointIDCounter only moves the counter forward, so the
//     coordinator's "ids below n are used" (Flink's setCount) keeps it.
//   - CompletedCheckpoints returns the pointers of a job in ascending id
//     order; AddCompletedCheckpoint rejects an id that is not greater than
//     the last one added (even if that one was removed since), or
//     negative, so a late or duplicate completion can never replace a
//     newer checkpoint.
//   - A job's attempt only moves forward (SetJobAttempt).
//   - A job has at most one result: PutJobResult of another state than
//     the recorded one is an error, of the same state does nothing (a
//     retry). RemoveJob keeps the result.
//   - Epoch() is the fencing token that every write and every call to a
//     TaskManager carries: the epoch of an Etcd store's leadership, which
//     leads exactly while Epoch() > 0, and 0 otherwise; always 0 for
//     Standalone, which leads unfenced (TaskManagers take a call without
//     an epoch as epoch 0). Epoch() > 0 implies IsLeader().
//   - A write while not leading is refused with an error matching
//     ErrNotLeader that names the write.
//   - Returned values are copies: callers may modify them freely.
package ha

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// JobGraphRecord is a submitted job as the user wrote it: enough to parse and
// schedule it again after a failover.
type JobGraphRecord struct {
	JobID    string
	Name     string
	FileName string // the job file's name, for error messages
	Spec     []byte // the job file (YAML or JSON), unmodified
}

// CompletedCheckpoint points at the metadata of one completed checkpoint.
type CompletedCheckpoint struct {
	CheckpointID int64
	// Location is where the checkpoint's metadata is stored (a URI or path
	// understood by the checkpoint storage).
	Location string
	// Savepoint marks the savepoint a job was started from (Flink adds it
	// to the completed checkpoint store as the first restore point). Its
	// files belong to the user: the JobManager never deletes them, also
	// when a newer checkpoint subsumes it.
	Savepoint bool
}

// JobResultState is the globally terminal state of a job.
type JobResultState string

// The states a job result records (Flink's globally terminal JobStatus).
const (
	JobFinished JobResultState = "FINISHED"
	JobFailed   JobResultState = "FAILED"
	JobCanceled JobResultState = "CANCELED"
)

// JobResult is how a job ended. Once recorded, no leader runs the job
// again (Flink's JobResultStore).
type JobResult struct {
	JobID string
	Name  string
	State JobResultState
	// Error is why the job failed (FAILED); at most MaxJobResultError
	// bytes are kept.
	Error string
	// EndTime is when the job reached State.
	EndTime time.Time
}

// MaxJobResultError bounds the failure message kept in a job result: the
// message is for people, and a stack of nested causes must not make the
// record too large for etcd.
const MaxJobResultError = 16 << 10

// ErrNotLeader is matched (errors.Is) by the error of every write refused
// because this JobManager does not lead, or no longer leads.
var ErrNotLeader = errors.New("not the leader")

// NotLeaderError is the error of a write refused because this JobManager
// does not lead: "ha: <what> refused: ...". It matches ErrNotLeader.
type NotLeaderError struct {
	// Op names the refused write ("put job graph of job 1f2e...").
	Op string
	// Epoch is the leadership that ended, 0 when there was none.
	Epoch int64
}

func (e *NotLeaderError) Error() string {
	if e.Epoch == 0 {
		return fmt.Sprintf("ha: %s refused: this JobManager is not the leader", e.Op)
	}
	return fmt.Sprintf("ha: %s refused: this JobManager's leadership at epoch %d has ended", e.Op, e.Epoch)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ErrCorrupt is matched (errors.Is) by the error of a read that found a
// stored value it cannot decode or that fails its checks.
var ErrCorrupt = errors.New("corrupt HA data")

// checkJobResult validates r for job jobID and returns the copy to store.
func checkJobResult(jobID string, r JobResult) (JobResult, error) {
	op := "put result of job " + jobID
	switch {
	case jobID == "":
		return r, errors.New("ha: put job result: empty job id")
	case r.JobID != "" && r.JobID != jobID:
		return r, fmt.Errorf("ha: %s: the result names job %s", op, r.JobID)
	}
	switch r.State {
	case JobFinished, JobFailed, JobCanceled:
	default:
		return r, fmt.Errorf("ha: %s: state %q is not FINISHED, FAILED or CANCELED", op, r.State)
	}
	r.JobID = jobID
	// As etcd gives it back: UTC, no monotonic reading.
	r.EndTime = r.EndTime.UTC().Round(0)
	if len(r.Error) > MaxJobResultError {
		r.Error = strings.ToValidUTF8(r.Error[:MaxJobResultError], "") + " ... (truncated)"
	}
	return r, nil
}

// sameResult tells whether PutJobResult of r repeats the recorded result.
func sameResult(recorded, r JobResult) error {
	if recorded.State == r.State {
		return nil
	}
	return fmt.Errorf("ha: put result of job %s: it ended %s already", r.JobID, recorded.State)
}

// Standalone is the in-memory implementation for a single JobManager. Its
// facts live as long as the process; it is safe for concurrent use.
type Standalone struct {
	mu          sync.Mutex
	graphs      map[string]JobGraphRecord
	counters    map[string]int64
	checkpoints map[string][]CompletedCheckpoint
	lastAdded   map[string]int64 // newest id ever added, also if removed since
	attempts    map[string]int
	results     map[string]JobResult
}

// NewStandalone returns an empty in-memory store.
func NewStandalone() *Standalone {
	return &Standalone{
		graphs:      map[string]JobGraphRecord{},
		counters:    map[string]int64{},
		checkpoints: map[string][]CompletedCheckpoint{},
		lastAdded:   map[string]int64{},
		attempts:    map[string]int{},
		results:     map[string]JobResult{},
	}
}

// IsLeader reports whether this JobManager is the leader; a standalone
// JobManager always is.
func (s *Standalone) IsLeader() bool { return true }

// Epoch returns 0: a standalone JobManager leads unfenced, as no other
// JobManager can depose it (see the package invariants).
func (s *Standalone) Epoch() int64 { return 0 }

// PutJobGraph stores (or replaces) a submitted job graph.
func (s *Standalone) PutJobGraph(_ context.Context, g JobGraphRecord) error {
	if g.JobID == "" {
		return fmt.Errorf("ha: put job graph: empty job id")
	}
	g.Spec = append([]byte(nil), g.Spec...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.graphs[g.JobID] = g
	return nil
}

// JobGraph returns the stored graph of a job; ok is false when there is none.
func (s *Standalone) JobGraph(_ context.Context, jobID string) (g JobGraphRecord, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok = s.graphs[jobID]
	g.Spec = append([]byte(nil), g.Spec...)
	return g, ok, nil
}

// JobIDs returns the ids of every stored job graph, sorted.
func (s *Standalone) JobIDs(_ context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.graphs))
	for id := range s.graphs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// RemoveJob forgets a globally terminal job: its graph, counter, attempt
// and checkpoint pointers; its result stays. Removing an unknown job is
// not an error.
func (s *Standalone) RemoveJob(_ context.Context, jobID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.graphs, jobID)
	delete(s.counters, jobID)
	delete(s.checkpoints, jobID)
	delete(s.lastAdded, jobID)
	delete(s.attempts, jobID)
	return nil
}

// NextCheckpointID returns the job's next checkpoint id: 1, 2, 3, ...
func (s *Standalone) NextCheckpointID(_ context.Context, jobID string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters[jobID]++
	return s.counters[jobID], nil
}

// CheckpointIDCounter returns the job's next unused checkpoint id without
// using it (1 for a new job): where a new checkpoint coordinator starts.
func (s *Standalone) CheckpointIDCounter(_ context.Context, jobID string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters[jobID] + 1, nil
}

// SetCheckpointIDCounter records that every id below next is used (Flink's
// CheckpointIDCounter.setCount). The counter never goes back: a next below
// the current one is an error, so an id is never handed out twice.
func (s *Standalone) SetCheckpointIDCounter(_ context.Context, jobID string, next int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.counters[jobID] + 1; next < cur {
		return fmt.Errorf("ha: set checkpoint id counter of job %s to %d: already at %d", jobID, next, cur)
	}
	s.counters[jobID] = next - 1
	return nil
}

// AddCompletedCheckpoint records a completed checkpoint of a job. Its id must
// be greater than every id recorded for the job before.
func (s *Standalone) AddCompletedCheckpoint(_ context.Context, jobID string, cp CompletedCheckpoint) error {
	if cp.CheckpointID < 0 {
		return fmt.Errorf("ha: add completed checkpoint %d of job %s: negative id", cp.CheckpointID, jobID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.lastAdded[jobID]; ok && cp.CheckpointID <= last {
		return fmt.Errorf("ha: add completed checkpoint %d of job %s: not after checkpoint %d", cp.CheckpointID, jobID, last)
	}
	s.lastAdded[jobID] = cp.CheckpointID
	s.checkpoints[jobID] = append(s.checkpoints[jobID], cp)
	return nil
}

// RemoveCompletedCheckpoint forgets one completed checkpoint of a job (it
// was subsumed, or its files are being deleted). Removing an unknown one is
// not an error. The ids added later must still be greater than every id
// ever added, also a removed one.
func (s *Standalone) RemoveCompletedCheckpoint(_ context.Context, jobID string, checkpointID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cps := s.checkpoints[jobID]
	for i, cp := range cps {
		if cp.CheckpointID == checkpointID {
			s.checkpoints[jobID] = append(cps[:i:i], cps[i+1:]...)
			return nil
		}
	}
	return nil
}

// CompletedCheckpoints returns the job's completed checkpoints, oldest first.
func (s *Standalone) CompletedCheckpoints(_ context.Context, jobID string) ([]CompletedCheckpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CompletedCheckpoint(nil), s.checkpoints[jobID]...), nil
}

// SetJobAttempt records the attempt of the job's execution about to be
// deployed. Attempts only move forward: one below the recorded attempt is
// an error.
func (s *Standalone) SetJobAttempt(_ context.Context, jobID string, attempt int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.attempts[jobID]; attempt < cur {
		return fmt.Errorf("ha: set attempt of job %s to %d: already at %d", jobID, attempt, cur)
	}
	s.attempts[jobID] = attempt
	return nil
}

// JobAttempt returns the job's recorded attempt, 0 when none was recorded.
func (s *Standalone) JobAttempt(_ context.Context, jobID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[jobID], nil
}

// PutJobResult records how a job ended (see the package invariants).
func (s *Standalone) PutJobResult(_ context.Context, jobID string, r JobResult) error {
	r, err := checkJobResult(jobID, r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if recorded, ok := s.results[jobID]; ok {
		return sameResult(recorded, r)
	}
	s.results[jobID] = r
	return nil
}

// JobResult returns the recorded result of a job; ok is false when there
// is none.
func (s *Standalone) JobResult(_ context.Context, jobID string) (r JobResult, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok = s.results[jobID]
	return r, ok, nil
}

// JobResults returns every recorded result, by job id.
func (s *Standalone) JobResults(_ context.Context) ([]JobResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := make([]JobResult, 0, len(s.results))
	for _, r := range s.results {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].JobID < rs[j].JobID })
	return rs, nil
}
