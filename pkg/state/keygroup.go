package state

import (
	"fmt"

	"github.com/weirstream/weir/pkg/record"
)

// Flink's bounds and default for maxParallelism. The upper bound keeps key
// group ids within 15 bits, which Flink's snapshot format relies on; we
// keep the same limit so the vocabulary and the numbers match.
const (
	DefaultMaxParallelism    = 128
	UpperBoundMaxParallelism = 1 << 15
)

// KeyGroupRange is a contiguous range of key groups, inclusive at both ends
// as in Flink. A range with End < Start is empty.
type KeyGroupRange struct{ Start, End int }

// Contains reports whether kg is in the range.
func (r KeyGroupRange) Contains(kg int) bool { return kg >= r.Start && kg <= r.End }

// NumKeyGroups returns the number of key groups in the range.
func (r KeyGroupRange) NumKeyGroups() int {
	if r.End < r.Start {
		return 0
	}
	return r.End - r.Start + 1
}

// String returns the range as "[start-end]", e.g. "[0-42]".
func (r KeyGroupRange) String() string { return fmt.Sprintf("[%d-%d]", r.Start, r.End) }

// ValidateParallelism returns an error unless 0 < parallelism <=
// maxParallelism <= UpperBoundMaxParallelism. Callers validate job
// configuration with it; the functions below assume it holds.
func ValidateParallelism(maxParallelism, parallelism int) error {
	if maxParallelism <= 0 || maxParallelism > UpperBoundMaxParallelism {
		return fmt.Errorf("max parallelism %d must be in [1, %d]", maxParallelism, UpperBoundMaxParallelism)
	}
	if parallelism <= 0 || parallelism > maxParallelism {
		return fmt.Errorf("parallelism %d must be in [1, max parallelism %d]", parallelism, maxParallelism)
	}
	return nil
}

// KeyGroupRangeForSubtask returns the key groups owned by subtask (0-based)
// of parallelism, exactly as Flink's
// KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex. It panics
// on arguments that ValidateParallelism rejects or a subtask outside
// [0, parallelism): those are programming errors, not input.
func KeyGroupRangeForSubtask(maxParallelism, parallelism, subtask int) KeyGroupRange {
	mustValid(maxParallelism, parallelism)
	if subtask < 0 || subtask >= parallelism {
		panic(fmt.Sprintf("state: subtask %d out of range [0, %d)", subtask, parallelism))
	}
	return KeyGroupRange{
		Start: (subtask*maxParallelism + parallelism - 1) / parallelism,
		End:   ((subtask+1)*maxParallelism - 1) / parallelism,
	}
}

// SubtaskForKeyGroup returns the subtask that owns keyGroup, exactly as
// Flink's KeyGroupRangeAssignment.computeOperatorIndexForKeyGroup. It
// panics on invalid arguments, like KeyGroupRangeForSubtask.
func SubtaskForKeyGroup(maxParallelism, parallelism, keyGroup int) int {
	mustValid(maxParallelism, parallelism)
	if keyGroup < 0 || keyGroup >= maxParallelism {
		panic(fmt.Sprintf("state: key group %d out of range [0, %d)", keyGroup, maxParallelism))
	}
	return keyGroup * parallelism / maxParallelism
}

// KeyGroupFor returns the key group of key v: Hash64 mod maxParallelism.
// maxParallelism must be positive.
func KeyGroupFor(v record.Value, maxParallelism int) int {
	return int(v.Hash64() % uint64(maxParallelism))
}

func mustValid(maxParallelism, parallelism int) {
	if err := ValidateParallelism(maxParallelism, parallelism); err != nil {
		panic("state: " + err.Error())
	}
}
