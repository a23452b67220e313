// Command weir is the command-line client of a weir cluster; see docs/cli.md.
package main

import (
	"os"

	"github.com/weirstream/weir/pkg/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
