// Package ha owns the JobManager's durable facts: what must survive a
// JobManager failover so that a new leader can take over the jobs of the old
// one, as Flink's HighAvailabilityServices do. They are:
//
//   - the submitted job graphs (job id -> job file and name), kept while the
//     job is not globally terminal, so a new leader can resubmit them;
//   - a per-job checkpoint id counter;
//   - pointers to the completed checkpoints of each job (where their
//     metadata lives, not the state itself), the first of which may be the
//     savepoint the job was started from;
//   - leadership: whether this JobManager may act on jobs at all.
//
// Standalone keeps them in memory and is always the leader: it is what a
// single JobManager without failover needs (Flink's "NONE" mode). An etcd
// implementation will satisfy the same methods, so the JobManager and the
// scheduler never learn which one they run with. Callers declare the small
// interface they need where they use it (STYLE.md §2) instead of depending
// on a package-wide one.
//
// Invariants (every implementation):
//   - NextCheckpointID returns strictly increasing ids per job, starting at
//     1, also across failovers: a checkpoint id is never handed out twice.
//     SetCheckpointIDCounter only moves the counter forward, so the
//     coordinator's "ids below n are used" (Flink's setCount) keeps it.
//   - CompletedCheckpoints returns the pointers of a job in ascending id
//     order; AddCompletedCheckpoint rejects an id that is not greater than
//     the last one added (even if that one was removed since), so a late or
//     duplicate completion can never replace a newer checkpoint.
//   - Returned values are copies: callers may modify them freely.
package ha

import (
	"context"
	"fmt"
	"sort"
	"sync"
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

// Standalone is the in-memory implementation for a single JobManager. Its
// facts live as long as the process; it is safe for concurrent use.
type Standalone struct {
	mu          sync.Mutex
	graphs      map[string]JobGraphRecord
	counters    map[string]int64
	checkpoints map[string][]CompletedCheckpoint
	lastAdded   map[string]int64 // newest id ever added, also if removed since
}

// NewStandalone returns an empty in-memory store.
func NewStandalone() *Standalone {
	return &Standalone{
		graphs:      map[string]JobGraphRecord{},
		counters:    map[string]int64{},
		checkpoints: map[string][]CompletedCheckpoint{},
		lastAdded:   map[string]int64{},
	}
}

// IsLeader reports whether this JobManager is the leader; a standalone
// JobManager always is.
func (s *Standalone) IsLeader() bool { return true }

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

// RemoveJob forgets a globally terminal job: its graph, counter and
// checkpoint pointers. Removing an unknown job is not an error.
func (s *Standalone) RemoveJob(_ context.Context, jobID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.graphs, jobID)
	delete(s.counters, jobID)
	delete(s.checkpoints, jobID)
	delete(s.lastAdded, jobID)
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
