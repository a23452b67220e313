package snapshot

import (
	"fmt"

	"github.com/weirstream/weir/pkg/config"
)

// StorageURI returns the checkpoint storage a job's configuration selects, as
// a URI for Open: execution.checkpointing.storage `jobmanager` or
// `filesystem` (with execution.checkpointing.dir). As in Flink, when the
// storage is not set, a configured directory means filesystem and no
// directory means jobmanager.
func StorageURI(cfg *config.Config) (string, error) {
	dir := cfg.String(config.CheckpointsDir)
	kind := cfg.String(config.CheckpointStorage)
	switch {
	case kind == "jobmanager", kind == "" && dir == "":
		return "jobmanager", nil
	case dir == "":
		return "", fmt.Errorf("%s is %q but %s is not set: say where checkpoints go",
			config.CheckpointStorage.Key, kind, config.CheckpointsDir.Key)
	}
	return dir, nil
}

// StorageOptions returns the Options that cfg sets: the inline threshold
// (execution.checkpointing.data-inline-threshold; 0 there means never
// inline).
func StorageOptions(cfg *config.Config) Options {
	o := Options{FileInlineThreshold: int(cfg.MemorySize(config.CheckpointInlineThreshold))}
	if o.FileInlineThreshold == 0 {
		o.FileInlineThreshold = -1
	}
	return o
}
