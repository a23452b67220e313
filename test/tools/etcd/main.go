// Command etcd is the etcd server that weir's tests start (package
// pkg/internal/etcdtest): the upstream server's own main, built from
// go.etcd.io/etcd/server/v3 at the version in this module's go.mod.
//
// It is a test tool, not a dependency of weir: this directory is a module of
// its own, so that weir's go.mod never links the server, and go build, test
// and vet ./... of weir skip it. .ci/tools.sh builds it once into a cache
// outside the repository.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
