package taskexec

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/taskexec/barrier"
)

// checkpointState is what the task goroutine needs to take checkpoints and
// savepoints (checkpoint.go, channelstate.go, writer.go): the settings New
// reads from the job configuration, the barrier handler that decides, and
// the checkpoints in flight. It is a part of Task (embedded, so that the
// record path's t.uh costs no extra pointer) and is owned by the task
// goroutine; the writer goroutine reads only what New set (storage,
// checkpointTimeout) and the gauges.
type checkpointState struct {
	// Settings, fixed by New.
	storage     snapshot.Storage // never nil: savepoints work without checkpointing
	exactlyOnce bool
	// checkpointing is true when the job takes periodic checkpoints
	// (execution.checkpointing.interval); savepoints work either way.
	checkpointing bool
	// checkpointTimeout is execution.checkpointing.timeout: a snapshot's
	// storage I/O ends that long after it starts.
	checkpointTimeout time.Duration
	alignedTimeout    time.Duration // execution.checkpointing.aligned-checkpoint-timeout

	handler barrier.Handler
	// uh is handler when unaligned checkpoints are enabled (EXACTLY_ONCE
	// and execution.checkpointing.unaligned.enabled), else nil.
	uh           *barrier.Unaligned
	bufferEvents []barrier.Event // BufferReceived of each channel, boxed once

	// Checkpoints in flight.
	capture       *channelCapture // the unaligned checkpoint recording its channel state
	alignTimer    *time.Timer     // fires the switch of a timeoutable aligned checkpoint
	alignTimerC   <-chan time.Time
	alignDeadline time.Time
	writer        *snapshotWriter // started on first use
	awaitingFinal bool            // FLIP-147: do not finish before a final checkpoint completed
	finalFrom     int64           // the first checkpoint snapshotted after the end of input
}

// newCheckpointState reads the checkpointing settings of the job
// configuration, opens its storage and picks the barrier handler for a gate
// of channels channels.
func newCheckpointState(cfg *config.Config, channels int) (checkpointState, error) {
	c := checkpointState{
		finalFrom: noID,
	}
	// Every task knows the mode and its storage (no I/O until the first
	// state is written): a job without periodic checkpoints can still take
	// savepoints.
	c.exactlyOnce = cfg.String(config.CheckpointingMode) != "AT_LEAST_ONCE"
	c.checkpointing = cfg.IsSet(config.CheckpointingInterval)
	c.checkpointTimeout = cfg.Duration(config.CheckpointingTimeout)
	// The JobManager logs the warnings about the storage; every task
	// repeating them would only be noise.
	uri, err := snapshot.StorageURI(cfg)
	if err == nil {
		c.storage, err = snapshot.OpenWithOptions(uri, zap.NewNop(), snapshot.StorageOptions(cfg))
	}
	if err != nil {
		if c.checkpointing {
			return c, fmt.Errorf("job configuration: %w", err)
		}
		// As on the JobManager: a storage this process cannot use (an
		// unsupported scheme) fails only jobs that checkpoint; the
		// savepoints of this one carry their state in the acknowledgements.
		if c.storage, err = snapshot.Open("jobmanager", zap.NewNop()); err != nil {
			return c, fmt.Errorf("job configuration: %w", err)
		}
	}
	c.alignedTimeout = cfg.Duration(config.AlignedCheckpointTimeout)
	if c.alignedTimeout < 0 {
		return c, fmt.Errorf("job configuration: %s must not be negative, got %s", config.AlignedCheckpointTimeout.Key, c.alignedTimeout)
	}
	switch {
	case c.exactlyOnce && cfg.Bool(config.UnalignedCheckpoints):
		c.uh = barrier.NewUnaligned(channels, c.alignedTimeout)
		c.handler = c.uh
		c.bufferEvents = make([]barrier.Event, channels)
		for ch := range c.bufferEvents {
			c.bufferEvents[ch] = barrier.BufferReceived{Channel: ch}
		}
	case c.exactlyOnce:
		c.handler = barrier.NewAligned(channels)
	default:
		c.handler = barrier.NewTracker(channels)
	}
	return c, nil
}
