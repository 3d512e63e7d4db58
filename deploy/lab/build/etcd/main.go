// Command etcd is the unmodified etcd server: `go install` of go.etcd.io/etcd/server/v3 is refused
// (its go.mod has relative replaces), so this wrapper module pins it and calls its entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
