//go:build tools

// Pins the Kubernetes commands we build so that `go mod tidy` keeps their dependencies:
// the control-plane servers, and the node components (kubelet, kube-proxy) with
// kube-scheduler that the real-node cluster (devenv/cluster) builds on first use.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
