#!/usr/bin/env bash
# kind e2e: kubenova installed as a real Kubernetes add-on, tested end to end.
#
# On a machine with Docker, kind, kubectl, helm (v3 or v4) and Node.js 24+, this
#   1. creates a kind cluster (one control-plane node, two workers: two hosts to migrate between),
#   2. builds the image from the Dockerfile and loads it into the cluster's nodes,
#   3. `helm install`s charts/kubenova (CRDs, operator Deployment, node-agent DaemonSet,
#      RBAC, admission policy) with that image,
#   4. waits for the operator and one Ready ComputeNode per worker,
#   5. runs the e2e suite against the cluster (KUBENOVA_E2E_KUBECONFIG): scenarios that need
#      local processes or host directories are skipped; the others, e2e/helm-journey.test.ts
#      first of all, boot, migrate, resize and delete instances through the in-cluster
#      components, their service-account tokens, RBAC and admission policy; then it upgrades
#      the release to the libvirt driver and runs e2e/real-nodes.test.ts on real guests,
#   6. deletes the cluster (KUBENOVA_KEEP_CLUSTER=1 keeps it for a look).
#
# It needs a Docker engine, so it cannot run in the sandbox where `npm test` runs; CI there
# covers the chart against a local control plane instead (e2e/helm-*.test.ts).
#
# Usage: e2e/kind/run.sh [vitest args...]     e.g. e2e/kind/run.sh e2e/helm-journey.test.ts
# Environment:
#   KIND_CLUSTER_NAME       cluster name (default kubenova-e2e)
#   KIND_NODE_IMAGE         kindest/node image for a given Kubernetes version (>= 1.30; kind's default otherwise)
#   KUBENOVA_IMAGE          image name:tag to build and load (default kubenova:e2e)
#   KUBENOVA_E2E_NAMESPACE  release namespace (default kubenova-system)
#   KUBENOVA_KEEP_CLUSTER   1 = leave the cluster running afterwards
#   KUBENOVA_REUSE_CLUSTER  1 = use an existing cluster of that name instead of creating one
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${KIND_CLUSTER_NAME:-kubenova-e2e}
IMAGE=${KUBENOVA_IMAGE:-kubenova:e2e}
NAMESPACE=${KUBENOVA_E2E_NAMESPACE:-kubenova-system}
WORK=$(mktemp -d)
KUBECONFIG_FILE="$WORK/kubeconfig"

for tool in docker kind kubectl helm node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "e2e/kind/run.sh needs $tool on PATH" >&2; exit 1; }
done

created=""
cleanup() {
  status=$?
  if [[ -n "$created" && "${KUBENOVA_KEEP_CLUSTER:-}" != 1 ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  elif [[ -n "$created" ]]; then
    echo "cluster $CLUSTER kept; kubeconfig: $KUBECONFIG_FILE" >&2
  fi
  [[ "${KUBENOVA_KEEP_CLUSTER:-}" == 1 ]] || rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

echo "--- kind cluster $CLUSTER"
if [[ "${KUBENOVA_REUSE_CLUSTER:-}" == 1 ]] && kind get clusters | grep -qx "$CLUSTER"; then
  echo "reusing it"
else
  cat > "$WORK/kind.yaml" <<'KIND'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
KIND
  kind create cluster --name "$CLUSTER" --config "$WORK/kind.yaml" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
  created=1
fi
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"

echo "--- image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

echo "--- helm install into $NAMESPACE"
# pullPolicy Never: the image exists only on the nodes, loaded above. The workers are the
# hosts; kind's control-plane node keeps its NoSchedule taint, so it gets no agent.
helm upgrade --install kubenova charts/kubenova \
  --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --wait --timeout 5m

echo "--- waiting for the operator and the node agents"
kubectl -n "$NAMESPACE" rollout status deployment/kubenova-operator --timeout=180s
kubectl -n "$NAMESPACE" rollout status daemonset/kubenova-node-agent --timeout=180s
workers=$(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o name | wc -l)
for _ in $(seq 1 90); do
  ready=$(kubectl get computenodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true)
  [[ "$ready" -ge "$workers" ]] && break
  sleep 2
done
kubectl get computenodes
[[ "$ready" -ge "$workers" ]] || { echo "only $ready of $workers ComputeNodes Ready" >&2; kubectl -n "$NAMESPACE" logs daemonset/kubenova-node-agent --tail=50 >&2 || true; exit 1; }

echo "--- e2e suite against the cluster"
[[ -d node_modules ]] || npm ci --no-audit --no-fund
export KUBENOVA_E2E_KUBECONFIG="$KUBECONFIG_FILE" KUBENOVA_E2E_KUBECTL="$(command -v kubectl)" \
  KUBENOVA_E2E_HELM="$(command -v helm)" KUBENOVA_E2E_NAMESPACE="$NAMESPACE"
if (($#)); then
  npx vitest run --config e2e/kind/vitest.config.ts "$@"
  exit
fi
npx vitest run --config e2e/kind/vitest.config.ts --exclude e2e/real-nodes.test.ts

# The same real-VM suite `npm test` runs on the local real-node cluster: the release switched to
# the libvirt driver (libvirtd per node in its own DaemonSet; guests use KVM where the kind
# nodes' /dev/kvm works, software emulation otherwise). It ends with helm uninstall.
echo "--- real guests: helm upgrade to the libvirt driver"
helm upgrade kubenova charts/kubenova --namespace "$NAMESPACE" --reuse-values \
  --set nodeAgent.driver=libvirt --wait --timeout 10m
for _ in $(seq 1 90); do
  libvirt=$(kubectl get computenodes -o jsonpath='{range .items[*]}{.status.driver}{"\n"}{end}' | grep -c libvirt || true)
  [[ "$libvirt" -ge "$workers" ]] && break
  sleep 2
done
npx vitest run --config e2e/kind/vitest.config.ts e2e/real-nodes.test.ts
