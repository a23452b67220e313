package jobmanager

import (
	"fmt"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/allowpath"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/operator"
)

// checkAllowedPaths confines a job to io.allowed-paths before anything of
// it is created (the checkpoint directory is probed right after): every
// operator property declared as a path (operator.PropertySpec.Path), and
// the checkpoint and savepoint directories when they are files. It reads
// the JobManager's own value: io.allowed-paths is a Cluster option, which
// a job's config: section cannot set.
func checkAllowedPaths(cluster, eff *config.Config, vertices []*jobgraph.JobVertex) error {
	c, err := allowpath.FromConfig(cluster)
	if err != nil || c == nil {
		return err
	}
	for _, v := range vertices {
		for _, op := range v.Operators {
			t, ok := operator.Lookup(op.Type)
			if !ok {
				continue // refused by the parser already
			}
			for _, ps := range t.Properties {
				if !ps.Path {
					continue
				}
				p, err := op.Properties.String(ps.Name, "")
				if err != nil || p == "" {
					continue // refused by Validate already
				}
				if err := c.Check(p); err != nil {
					return fmt.Errorf("operator %q (%s): property %q: %w", op.ID, op.Type, ps.Name, err)
				}
			}
		}
	}
	for _, o := range []*config.Option{config.CheckpointsDir, config.SavepointDir} {
		if p := eff.String(o); p != "" {
			if err := c.CheckPointer(p); err != nil {
				return fmt.Errorf("config: %s: %w", o.Key, err)
			}
		}
	}
	return nil
}

// checkAllowedPointer checks a savepoint target or a path to dispose
// against the JobManager's io.allowed-paths.
func (jm *JobManager) checkAllowedPointer(pointer string) error {
	c, err := allowpath.FromConfig(jm.cfg)
	if err != nil {
		return err
	}
	return c.CheckPointer(pointer)
}
