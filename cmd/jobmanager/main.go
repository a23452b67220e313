// Command jobmanager runs the weir JobManager: it accepts jobs, schedules
// them onto the registered TaskManagers and watches them until SIGTERM or
// SIGINT.
//
//	jobmanager [--config FILE] [-D key=value]...
//
// Without --config it reads $WEIR_CONF_DIR/config.yaml, else
// /etc/weir/config.yaml if it exists (package daemon); a Flink
// distribution's config.yaml works unchanged. jobmanager.memory.process.size
// is its memory limit.
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
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/daemon"
	"github.com/weirstream/weir/pkg/ha"
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
	daemon.SetMemoryLimit(cfg, config.JobManagerProcessSize, log)
	// Listeners bind to jobmanager.bind-host; TaskManagers and clients are
	// told jobmanager.rpc.address.
	host := cfg.String(config.JobManagerBindHost)
	if host == "" {
		host = cfg.String(config.JobManagerRPCAddress)
	}
	// Checkpoint storage drivers beyond the built-in file and jobmanager,
	// configured by this daemon's own s3.* keys.
	if err := s3.Register(cfg); err != nil {
		return nil, err
	}
	if (cfg.Bool(config.SSLInternalEnabled) || cfg.Bool(config.SSLAPIEnabled)) && strings.TrimSpace(cfg.String(config.IOAllowedPaths)) == "" {
		log.Warn("TLS is on but io.allowed-paths is empty: every job submitter can read and write any file the JobManager and TaskManagers can (docs/security.md, File access)")
	}
	reg := metrics.NewRegistry()
	lo, hi := cfg.PortRange(config.MetricsPromPort)
	// The metrics server (and its /readyz) starts before the JobManager,
	// which is not ready until it is there.
	var started atomic.Pointer[jobmanager.JobManager]
	ready := func() (bool, string) {
		if jm := started.Load(); jm != nil {
			return jm.Ready()
		}
		return false, "starting"
	}
	msrv, err := metrics.Serve(log, host, lo, hi, reg, metrics.Options{Pprof: cfg.Bool(config.MetricsPprofEnabled), Ready: ready})
	if err != nil {
		return nil, fmt.Errorf("serve metrics (metrics.reporter.prom.port): %w", err)
	}
	opts := jobmanager.Options{Config: cfg, Logger: log, Registerer: reg}
	var store *ha.Etcd
	if cfg.String(config.HighAvailabilityType) == "etcd" {
		var advertised string
		if store, advertised, err = etcdStore(cfg, log); err != nil {
			_ = msrv.Close()
			return nil, err
		}
		opts.HA, opts.Election, opts.Advertised = store, store, advertised
		opts.Exit = func(code int) {
			_ = log.Sync()
			os.Exit(code)
		}
	}
	jm, err := jobmanager.Start(opts)
	if err != nil {
		if store != nil {
			_ = store.Close()
		}
		_ = msrv.Close()
		return nil, err
	}
	started.Store(jm)
	fmt.Printf("JobManager listening on %s\n", jm.Addr())
	return func(context.Context) error {
		err := jm.Close()
		if store != nil {
			err = errors.Join(err, store.Close())
		}
		return errors.Join(err, msrv.Close())
	}, nil
}

// etcdStore opens the etcd HA store of a JobManager that others reach at
// jobmanager.rpc.address:jobmanager.rpc.port: the address it campaigns
// with, so the port must be a fixed one.
func etcdStore(cfg *config.Config, log *zap.Logger) (*ha.Etcd, string, error) {
	port := cfg.Int(config.JobManagerRPCPort)
	if port == 0 {
		return nil, "", fmt.Errorf("%s is 0 (any free port): with %s etcd it must be a fixed port, the one the other JobManagers, the TaskManagers and the CLI are told",
			config.JobManagerRPCPort.Key, config.HighAvailabilityType.Key)
	}
	addr := net.JoinHostPort(cfg.String(config.JobManagerRPCAddress), strconv.Itoa(port))
	ecfg, err := ha.EtcdConfigFrom(cfg, addr, log)
	if err != nil {
		return nil, "", err
	}
	store, err := ha.NewEtcd(ecfg)
	return store, addr, err
}
