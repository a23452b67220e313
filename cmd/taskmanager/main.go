// Command taskmanager runs a weir TaskManager: it registers with the
// JobManager and runs the subtasks deployed to it until SIGTERM or SIGINT.
// With high-availability.type etcd it finds the JobManager leader through
// etcd (high-availability.etcd.endpoints, high-availability.cluster-id)
// and follows it; jobmanager.rpc.address is not used then.
//
//	taskmanager [--config FILE] [-D key=value]...
//
// Without --config it reads $WEIR_CONF_DIR/config.yaml, else
// /etc/weir/config.yaml if it exists (package daemon); a Flink
// distribution's config.yaml works unchanged. taskmanager.memory.process.size
// is its memory limit, network buffers included.
// -D may be repeated and is also accepted as -Dkey=value (Flink's form).
// On SIGTERM it cancels its tasks and exits within
// cluster.services.shutdown-timeout (package daemon). It exits 70 when a
// canceled task does not stop within task.cancellation.timeout (package
// taskmanager): run it under a service manager that restarts it.
package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/snapshot/s3"
	"github.com/weirstream/weir/pkg/taskmanager"
)

func main() {
	daemon.Main("taskmanager", start)
}

// start sets the memory limit and starts the TaskManager.
func start(cfg *config.Config, log *zap.Logger) (func(context.Context) error, error) {
	daemon.SetMemoryLimit(cfg, config.TaskManagerProcessSize, log)
	// Checkpoint storage drivers beyond the built-in file and
	// jobmanager, configured by this daemon's own s3.* keys.
	if err := s3.Register(cfg); err != nil {
		return nil, err
	}
	opts := taskmanager.Options{Stdout: os.Stdout}
	var leaders *ha.Etcd
	if cfg.String(config.HighAvailabilityType) == "etcd" {
		ecfg, err := ha.EtcdConfigFrom(cfg, "", log)
		if err != nil {
			return nil, err
		}
		// A TaskManager only observes the election: it reads no job
		// graph, so high-availability.storageDir is not its business.
		ecfg.StorageDir = ""
		if leaders, err = ha.NewEtcd(ecfg); err != nil {
			return nil, err
		}
		opts.Leaders = leaders
	}
	tm, err := taskmanager.New(cfg, log, opts)
	if err != nil {
		if leaders != nil {
			_ = leaders.Close()
		}
		return nil, err
	}
	return func(ctx context.Context) error {
		err := tm.Shutdown(ctx)
		if leaders != nil {
			if cerr := leaders.Close(); err == nil {
				err = cerr
			}
		}
		return err
	}, nil
}
