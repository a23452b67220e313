// Command jobmanager runs the weir JobManager: it accepts jobs, schedules
// them onto the registered TaskManagers and watches them until SIGTERM or
// SIGINT.
//
//	jobmanager [--config FILE] [-D key=value]...
//
// -D may be repeated and is also accepted as -Dkey=value (Flink's form). It
// prints the address it listens on to stdout; logs go to stderr. A bad
// configuration exits 1 with a message naming the key. On SIGTERM it stops
// serving and exits within cluster.services.shutdown-timeout (package
// daemon).
package main

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
	"github.com/weirstream/weir/pkg/jobmanager"
	"github.com/weirstream/weir/pkg/metrics"
	"github.com/weirstream/weir/pkg/snapshot/s3"
)

func main() {
	daemon.Main("jobmanager", start)
}

// start starts the metrics server and the JobManager. Their Close is not
// bounded by the context: package daemon exits at the shutdown bound anyway.
func start(cfg *config.Config, log *zap.Logger) (func(context.Context) error, error) {
	host := cfg.String(config.JobManagerBindHost)
	if host == "" {
		host = cfg.String(config.JobManagerRPCAddress)
	}
	// Checkpoint storage drivers beyond the built-in file and jobmanager,
	// configured by this daemon's own s3.* keys.
	if err := s3.Register(cfg); err != nil {
		return nil, err
	}
	reg := metrics.NewRegistry()
	lo, hi := cfg.PortRange(config.MetricsPromPort)
	msrv, err := metrics.Serve(log, host, lo, hi, reg)
	if err != nil {
		return nil, fmt.Errorf("serve metrics (metrics.reporter.prom.port): %w", err)
	}
	jm, err := jobmanager.Start(jobmanager.Options{Config: cfg, Logger: log, Registerer: reg})
	if err != nil {
		_ = msrv.Close()
		return nil, err
	}
	fmt.Printf("JobManager listening on %s\n", jm.Addr())
	return func(context.Context) error { return errors.Join(jm.Close(), msrv.Close()) }, nil
}
