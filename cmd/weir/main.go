// Command weir is the command-line client of a weir cluster; see docs/cli.md.
package main

import (
	"os"

	"github.com/weirstream/weir/pkg/cli"
	"github.com/weirstream/weir/pkg/snapshot/s3"
)

func main() {
	// Storage drivers for the commands that read checkpoints themselves
	// (weir checkpoint inspect), configured by their -D / --config keys
	// as the daemons are by theirs.
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, cli.Services{Storage: []cli.StorageDrivers{s3.Register}}))
}
