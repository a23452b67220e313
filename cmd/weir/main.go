// Command weir is the command-line client of a weir cluster; see docs/cli.md.
package main

import (
	"context"
	"fmt"
	"os"

	// The operator types that weir info and weir run validate job files
	// against, as the JobManager does.
	_ "github.com/weirstream/weir/pkg/builtin"
	"github.com/weirstream/weir/pkg/cli"
	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/ha"
	"github.com/weirstream/weir/pkg/snapshot/s3"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, cli.Services{
		// Storage drivers for the commands that read checkpoints
		// themselves (weir checkpoint inspect), configured by their -D /
		// --config keys as the daemons are by theirs.
		Storage: []cli.StorageDrivers{s3.Register},
		// How weir finds the leading JobManager when the configuration
		// names a high-availability service.
		HA: haServices,
	}))
}

// haServices opens the leader lookup of cfg's high-availability.type.
func haServices(cfg *config.Config) (cli.LeaderReader, error) {
	switch t := cfg.String(config.HighAvailabilityType); t {
	case "etcd":
		ecfg, err := ha.EtcdConfigFrom(cfg, "", nil)
		if err != nil {
			return nil, err
		}
		// weir only reads who leads: the job files in storageDir are the
		// JobManagers' business (and its driver need not be linked here).
		ecfg.StorageDir = ""
		e, err := ha.NewEtcd(ecfg)
		if err != nil {
			return nil, err
		}
		return etcdLeaders{e}, nil
	default:
		return nil, fmt.Errorf("%s %s: weir finds the leader with etcd only", config.HighAvailabilityType.Key, t)
	}
}

// etcdLeaders is the leader lookup of an etcd store.
type etcdLeaders struct{ *ha.Etcd }

func (e etcdLeaders) Leader(ctx context.Context) (string, error) {
	l, err := e.Etcd.Leader(ctx)
	return l.Address, err
}
