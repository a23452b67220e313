// Command jobmanager runs the weir JobManager: it accepts jobs, schedules
// them onto the registered TaskManagers and watches them until SIGTERM or
// SIGINT.
//
//	jobmanager [--config FILE] [-D key=value]...
//
// -D may be repeated and is also accepted as -Dkey=value (Flink's form). It
// prints the address it listens on to stdout; logs go to stderr. A bad
// configuration exits 1 with a message naming the key.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
	"github.com/weirstream/weir/pkg/jobmanager"
	"github.com/weirstream/weir/pkg/metrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(daemon.Run(ctx, "jobmanager", os.Args[1:], os.Stderr, start))
}

func start(cfg *config.Config, log *zap.Logger) (func() error, error) {
	host := cfg.String(config.JobManagerBindHost)
	if host == "" {
		host = cfg.String(config.JobManagerRPCAddress)
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
	return func() error { return errors.Join(jm.Close(), msrv.Close()) }, nil
}
