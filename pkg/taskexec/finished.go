package taskexec

import (
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/network"
	"github.com/weirstream/weir/pkg/snapshot"
)

// Finished on restore (Flink's FLIP-147, isTaskDeployedAsFinished): a
// checkpoint taken after some subtasks FINISHED records them as
// SubtaskState.Finished, without state (the JobManager marks the subtasks
// that were FINISHED when the checkpoint was triggered). Restarting such a
// subtask would run a bounded source again from its start and duplicate
// everything it emitted before the checkpoint. So a subtask whose whole
// chain is finished in the checkpoint it restores from is deployed as
// finished:
//
//   - none of its operators is opened, restored, run or closed: there is
//     nothing left for them to do (a two-phase-commit sink finished only
//     after its final checkpoint committed its output), and their Open may
//     need what no longer exists, such as the file a bounded source read;
//   - it reports RUNNING, then sends EndOfData on every output, as a task
//     does at its end of input; with inputs, it drains them until every
//     channel delivered EndOfPartition, so that no producer stays blocked,
//     forwarding their barriers (its snapshots hold no operator state and
//     are acknowledged as finished) and dropping any record: with
//     EXACTLY_ONCE its producers are finished on restore too and send
//     none; with AT_LEAST_ONCE one may replay records this subtask had
//     processed before the checkpoint. Then it sends EndOfPartition and
//     reports FINISHED. Downstream tasks see the same end as from a task
//     that finished normally, so their alignment and final checkpoints
//     work.
//
// Which operators decide (finishedOnRestore): every operator of the chain
// that has an entry in the TaskRestore. The JobManager gives an entry to
// every operator that has state or a finished subtask, and a task's whole
// chain finishes together, so the entries of a finished chain are all
// finished. An operator without an entry had neither (or is new to the
// job): it does not count, since a stateless operator chained after a
// finished source would have nothing to process either. Looking at the head
// alone is not enough: after a change of chaining, a finished head could
// hide an unfinished operator with state, which would then be lost.
//
// Per operator, with the same parallelism as in the checkpoint, the entry
// of this subtask's index decides. With another parallelism, an operator
// is finished only if every old subtask was (then every new subtask is); an
// operator of which only some old subtasks finished cannot be rescaled (as
// Flink) and fails the restore, as does a chain whose entries are finished
// for some operators and not for others, and a finished entry that holds
// state (restoring it would run the operator again; dropping it could
// drop a sink's pre-committed output).

// finishedOnRestore reports whether subtask (of parallelism) of the chain
// whose operator ids are chain is finished on restore from r (nil: no
// restore). It only reads its arguments.
func finishedOnRestore(r *snapshot.TaskRestore, chain []string, subtask, parallelism int) (bool, error) {
	if r == nil {
		return false, nil
	}
	var finished, running []string
	for _, id := range chain {
		os := r.Operators[id]
		if os == nil {
			continue
		}
		fin, err := operatorFinished(os, id, subtask, parallelism)
		if err != nil {
			return false, err
		}
		if fin {
			finished = append(finished, id)
		} else {
			running = append(running, id)
		}
	}
	if len(finished) > 0 && len(running) > 0 {
		return false, fmt.Errorf("the chain mixes finished operators (%s) with unfinished ones (%s); only a whole chain can be restored as finished (was the job's chaining changed?)",
			quoteJoin(finished), quoteJoin(running))
	}
	return len(finished) > 0, nil
}

// operatorFinished reports whether operator id is finished for the new
// subtask, from its entry os.
func operatorFinished(os *snapshot.OperatorState, id string, subtask, parallelism int) (bool, error) {
	oldP := os.Parallelism
	if oldP <= 0 {
		oldP = len(os.Subtasks)
	}
	rescaled := oldP != parallelism
	n := 0
	var mine *snapshot.SubtaskState // the finished entry this subtask takes over
	for i := range os.Subtasks {
		st := &os.Subtasks[i]
		if !st.Finished {
			continue
		}
		n++
		if (rescaled || st.Subtask == subtask) && (mine == nil || len(st.State) > 0) {
			mine = st
		}
	}
	switch {
	case mine == nil:
		return false, nil
	case rescaled && (n != len(os.Subtasks) || n != oldP):
		return false, fmt.Errorf("operator %q is partially finished (%d of %d subtasks finished) and cannot be rescaled from parallelism %d to %d",
			id, n, oldP, oldP, parallelism)
	case len(mine.State) > 0:
		return false, fmt.Errorf("operator %q: old subtask %d is marked finished but holds %d state objects; a finished subtask has no state to restore",
			id, mine.Subtask, len(mine.State))
	}
	return true, nil
}

func quoteJoin(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}

// checkFinishedOnRestore decides whether the task is finished on restore
// from r, naming the subtask and checkpoint in an error.
func (t *Task) checkFinishedOnRestore(r *snapshot.TaskRestore) (bool, error) {
	if r == nil {
		return false, nil
	}
	ids := make([]string, len(t.chain))
	for i, c := range t.chain {
		ids[i] = c.spec.ID
	}
	fin, err := finishedOnRestore(r, ids, t.subtask, int(t.desc.GetParallelism()))
	if err != nil {
		return false, fmt.Errorf("restore subtask %d from checkpoint %d: %w", t.subtask, r.CheckpointID, err)
	}
	return fin, nil
}

// runFinishedOnRestore ends a task deployed as finished: RUNNING, EndOfData,
// its inputs drained to EndOfPartition (barriers still handled), and the
// caller's EndOfPartition. No operator is touched. Task goroutine only.
func (t *Task) runFinishedOnRestore(checkpoint int64) error {
	t.deployedFinished = true
	if t.canceled.Load() {
		return ErrCanceled
	}
	t.log.Info("task finished on restore: every operator of the chain had finished in the checkpoint",
		zap.Int64("checkpoint", checkpoint))
	if t.env.OnRunning != nil {
		t.env.OnRunning()
	}
	// The end of input happened before the checkpoint: what the task does
	// at its end, without EndInput (its operators are not open).
	t.inputEnded = true
	if err := t.broadcastEvent(network.Event{Type: network.EndOfData}); err != nil {
		return err
	}
	if t.gate != nil {
		if err := t.runInput(); err != nil {
			return err
		}
		if t.dropped > 0 {
			t.log.Warn("a task finished on restore dropped records from its inputs (processed before the checkpoint)",
				zap.Int64("records", t.dropped))
		}
		return nil
	}
	// A trigger that came with RUNNING is answered (as finished) before
	// the end; the JobManager handles one that comes later.
	return t.runMailbox()
}

// dropBuffer counts the records of a buffer that a task finished on
// restore received and drops them.
func (t *Task) dropBuffer(data []byte) {
	for len(data) > 0 {
		_, rest, err := network.NextRecord(data)
		if err != nil {
			return
		}
		t.dropped++
		data = rest
	}
}

// liveChain is the chain whose operators run: none in a task finished on
// restore, whose operators were never opened.
func (t *Task) liveChain() []*chainOp {
	if t.deployedFinished {
		return nil
	}
	return t.chain
}
