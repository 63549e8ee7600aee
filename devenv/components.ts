// Starting kubenova's own components as processes against a control plane: shared by the
// test harness (e2e/harness), `npm start` (localenv/) and the benchmark (bench/), so all of
// them run the system the same way.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { FINALIZER } from '../common/api/types.js';
import type { ControlPlane } from './controlplane/controlplane.js';
import { startProcess, type ManagedProcess } from './controlplane/processes.js';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || existsSync(join(dir, 'tsconfig.build.json')) === false) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the kubenova repository root');
    dir = parent;
  }
  return dir;
}

export const repoRoot = findRepoRoot();
export const distDir = join(repoRoot, 'dist');

export interface AgentSpec {
  name: string;
  vcpus?: number;
  memoryMiB?: number;
  diskGiB?: number;
  zone?: string;
  labels?: Record<string, string>;
  extraArgs?: string[];
}

export interface ComponentOutput {
  logFile?: string;
  onOutput?: (chunk: Buffer) => void;
}

/** Where local components keep their Secrets (transfer credentials, the agents' CA): the release namespace. */
export const RELEASE_NAMESPACE = 'kubenova-system';

/**
 * Local agents authenticate as `kubenova:agent:<host>` (a client certificate of the control
 * plane's CA), and the operator approves transfer certificates for exactly that user and CN;
 * in a cluster the rule is the agents' service account and the node its token is bound to.
 */
export const AGENT_USERNAME_PREFIX = 'kubenova:agent:';

/**
 * One template of the chart as `helm template` renders it for a release named kubenova in
 * RELEASE_NAMESPACE, with the chart's default values.
 */
export function renderChartTemplate(helm: string, template: string, extraArgs: string[] = []): string {
  const chart = join(repoRoot, 'charts', 'kubenova');
  const args = ['template', 'kubenova', chart, '--namespace', RELEASE_NAMESPACE, ...extraArgs];
  return execFileSync(helm, [...args, '--show-only', template], { encoding: 'utf8' });
}

/**
 * The chart's instance-finalizer policy, as `helm install` renders it where the API server
 * offers MutatingAdmissionPolicy (the local control plane serves it as v1beta1): an Instance is
 * created with its clean-up finalizer, and the operator need not patch it in. Resolves once the
 * API server applies it (it loads policies in the background).
 */
export async function installFinalizerPolicy(cp: ControlPlane): Promise<void> {
  const rendered = renderChartTemplate(cp.binaries.helm, 'templates/instance-finalizer-policy.yaml', [
    '--api-versions',
    'admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy',
  ]);
  cp.kubectl(['apply', '-f', '-'], rendered);
  await waitForFinalizerPolicy(cp);
}

/** Waits until a server-side dry-run create of an Instance comes back with the clean-up finalizer. */
export async function waitForFinalizerPolicy(cp: ControlPlane, timeoutMs = 30_000): Promise<void> {
  const probe = JSON.stringify({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name: 'finalizer-policy-probe', namespace: 'default' },
    spec: { flavor: 'm1.tiny', image: 'cirros' },
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: string;
    try {
      last = cp.kubectl(['create', '--dry-run=server', '-o', 'jsonpath={.metadata.finalizers}', '-f', '-'], probe);
      if (last.includes(FINALIZER)) return;
    } catch (err) {
      // A CRD just Established may not be served yet (503): the same wait covers it.
      last = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(
        `the instance-finalizer MutatingAdmissionPolicy was applied but not in effect after ${timeoutMs / 1000} s (does kube-apiserver run with --feature-gates=MutatingAdmissionPolicy=true and --runtime-config=admissionregistration.k8s.io/v1beta1=true?); last answer: ${last}`,
      );
    await sleep(200);
  }
}

/** The CRDs, and the namespace the operator and agents keep their Secrets in. */
export function installCrds(cp: ControlPlane): void {
  cp.kubectl(['apply', '-f', '-'], `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"${RELEASE_NAMESPACE}"}}`);
  cp.kubectl(['apply', '--server-side', '--field-manager=kubenova-install', '-f', join(repoRoot, 'crds')]);
  cp.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd',
    '-l',
    'app.kubernetes.io/part-of=kubenova',
  ]);
}

export function applySampleFlavors(cp: ControlPlane): void {
  cp.kubectl(['apply', '-f', join(repoRoot, 'examples', 'flavors.yaml')]);
}

export function startAgent(
  cp: ControlPlane,
  spec: AgentSpec,
  stateDir: string,
  out: ComponentOutput,
  extraEnv: NodeJS.ProcessEnv = {},
): ManagedProcess {
  const labels = Object.entries(spec.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  // Its own identity, so the operator can tell which host asks for a transfer certificate. It
  // keeps full rights here (system:masters): the chart's RBAC is what confines a real agent.
  const kubeconfig = cp.userKubeconfig(`${AGENT_USERNAME_PREFIX}${spec.name}`, ['system:masters']);
  const args = [
    join(distDir, 'node-agent', 'main.js'),
    `--node-name=${spec.name}`,
    `--kubeconfig=${kubeconfig}`,
    `--release-namespace=${RELEASE_NAMESPACE}`,
    `--state-dir=${stateDir}`,
    `--capacity-vcpus=${spec.vcpus ?? 8}`,
    `--capacity-memory-mib=${spec.memoryMiB ?? 16384}`,
    `--capacity-disk-gib=${spec.diskGiB ?? 200}`,
    ...(spec.zone ? [`--zone=${spec.zone}`] : []),
    ...(labels ? [`--labels=${labels}`] : []),
    ...(spec.extraArgs ?? []),
  ];
  return startProcess({
    name: `agent-${spec.name}`,
    command: process.execPath,
    args,
    env: { ...process.env, ...extraEnv },
    ...out,
  });
}

export function startOperator(
  cp: ControlPlane,
  args: string[],
  out: ComponentOutput,
  extraEnv: NodeJS.ProcessEnv = {},
): ManagedProcess {
  return startProcess({
    name: 'operator',
    command: process.execPath,
    args: [
      join(distDir, 'operator', 'main.js'),
      `--kubeconfig=${cp.kubeconfigPath}`,
      `--release-namespace=${RELEASE_NAMESPACE}`,
      `--agent-username-prefix=${AGENT_USERNAME_PREFIX}`,
      ...args,
    ],
    env: { ...process.env, ...extraEnv },
    ...out,
  });
}
