package coordinator

import (
	"slices"
	"time"
)

// History returns the statistics of the last HistorySize checkpoints and
// savepoints, newest first. The values are copies.
func (c *Coordinator) History() []CheckpointStats {
	out := make([]CheckpointStats, 0, len(c.history))
	for i := len(c.history) - 1; i >= 0; i-- {
		s := *c.history[i]
		s.Subtasks = slices.Clone(s.Subtasks)
		out = append(out, s)
	}
	return out
}

// Counts returns how many checkpoints and savepoints completed, failed and
// are in progress since the coordinator was built (not bounded by
// HistorySize).
func (c *Coordinator) Counts() (completed, failed, inProgress int) {
	return c.completedCount, c.failedCount, len(c.pending)
}

// Latest returns the newest retained checkpoint (the one to restore from),
// or nil. Savepoints taken by this coordinator are never retained.
func (c *Coordinator) Latest() *CompletedCheckpoint {
	if len(c.retained) == 0 {
		return nil
	}
	cp := c.retained[len(c.retained)-1]
	return &cp
}

// Retained returns the retained completed checkpoints, oldest first.
func (c *Coordinator) Retained() []CompletedCheckpoint {
	return append([]CompletedCheckpoint(nil), c.retained...)
}

// NextTriggerTime returns when the caller must send the next Tick: the
// earlier of the next periodic trigger and the earliest pending timeout.
// The zero time means no Tick is needed until another event.
func (c *Coordinator) NextTriggerTime() time.Time {
	var next time.Time
	if c.periodicActive() {
		next = c.nextPeriodic
	}
	for _, p := range c.pending {
		if next.IsZero() || p.deadline.Before(next) {
			next = p.deadline
		}
	}
	return next
}

// NextCheckpointID returns the id the next checkpoint or savepoint will use.
func (c *Coordinator) NextCheckpointID() int64 { return c.nextID }
