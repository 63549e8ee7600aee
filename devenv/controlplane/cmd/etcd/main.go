// etcd built from the server module already in Kubernetes' dependency graph, so the
// control plane needs no download beyond the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
