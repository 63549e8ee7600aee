//go:build tools

// Pins KWOK's controller command, which the benchmark's pods referee runs (bench/pods.ts),
// so that `go mod tidy` keeps its dependencies. A module of its own: KWOK's dependency
// versions never touch the control plane's.
package kwok

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
