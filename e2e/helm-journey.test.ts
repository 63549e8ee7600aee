// kubenova as its Helm chart runs it: an instance is booted, cold-migrated, resized with
// confirm and deleted by components that hold nothing but the chart's RBAC, under its
// admission policy.
//
// Locally there is no kubelet, so this file plays the kubelet's part: it installs the chart,
// creates the pods the DaemonSet would (one per Node), asks the API server for each pod's
// bound service-account token, and runs `node <args>` with the environment the chart
// renders for that pod. Only what a single machine forces is changed: listen ports (0, so
// two agents and two operators fit on one host), the state directory and the kubeconfig.
// Against an external cluster (KUBENOVA_E2E_KUBECONFIG, e2e/kind/run.sh), the chart is
// already installed and the same journey runs there.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance, Migration } from '../common/api/types.js';
import { startProcess, type ManagedProcess } from '../devenv/controlplane/processes.js';
import {
  Helm,
  chartDir,
  containerOf,
  findManifest,
  parseManifests,
  podSpecOf,
  resolveEnv,
  writeTokenKubeconfig,
  type Manifest,
} from './harness/chart.js';
import { repoRoot } from './harness/components.js';
import { TestEnv } from './harness/env.js';
import { external } from './harness/mode.js';

const RELEASE_NS = process.env.KUBENOVA_E2E_NAMESPACE ?? 'kubenova-system';
const LOCAL_NODES = ['node-a', 'node-b'];
const NS = `journey-${Date.now().toString(36)}`;

let env: TestEnv;
const processes: ManagedProcess[] = [];
const logs: string[] = [];

beforeAll(async () => {
  env = await TestEnv.start({ operator: false, agents: [] });
  if (!env.external) await runTheChartLocally();
  env.kubectl(['create', 'namespace', NS]);
});

afterAll(async () => {
  if (env) {
    try {
      env.kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
    } catch {
      // cleanup is best effort
    }
  }
  await Promise.all(processes.map((p) => p.stop('SIGTERM', 5_000)));
  await env?.stop();
});

async function runTheChartLocally(): Promise<void> {
  const helm = new Helm(join(env.dir, 'helm'), env.cp.kubeconfigPath);
  // TestEnv installed the CRDs already (the same files: helm-chart.test.ts checks that).
  helm.ok([
    'install',
    'kubenova',
    chartDir,
    '--namespace',
    RELEASE_NS,
    '--create-namespace',
    '--set',
    'crds.enabled=false',
  ]);
  const manifests = parseManifests(helm.ok(['get', 'manifest', 'kubenova', '--namespace', RELEASE_NS]));
  const daemonSet = findManifest(manifests, 'DaemonSet', '-node-agent');
  const deployment = findManifest(manifests, 'Deployment', '-operator');
  const stateDir = join(env.dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const local = { KUBENOVA_METRICS_PORT: '0', KUBENOVA_MIGRATION_PORT: '0', KUBENOVA_STATE_DIR: stateDir };

  for (const node of LOCAL_NODES) {
    const pod = podFor(daemonSet, `kubenova-node-agent-${node}`, node);
    const kubeconfig = tokenKubeconfig(pod, node);
    const fields = { 'spec.nodeName': node, 'status.hostIP': '127.0.0.1', 'metadata.namespace': RELEASE_NS };
    start(`agent-${node}`, containerOf(daemonSet, 'node-agent').args ?? [], {
      ...resolveEnv(containerOf(daemonSet, 'node-agent'), fields),
      ...local,
      KUBECONFIG: kubeconfig,
    });
  }
  const replicas = (deployment as unknown as { spec: { replicas: number } }).spec.replicas;
  for (let i = 0; i < replicas; i++) {
    const pod = podFor(deployment, `kubenova-operator-${i}`, LOCAL_NODES[i % LOCAL_NODES.length]!);
    const kubeconfig = tokenKubeconfig(pod, `operator-${i}`);
    const fields = { 'metadata.namespace': RELEASE_NS };
    start(`operator-${i}`, containerOf(deployment, 'operator').args ?? [], {
      ...resolveEnv(containerOf(deployment, 'operator'), fields),
      KUBENOVA_METRICS_PORT: '0',
      KUBENOVA_METRICS_ADDRESS: '127.0.0.1',
      KUBECONFIG: kubeconfig,
    });
  }
  await env.waitForNodesReady(LOCAL_NODES);
}

/** The pod the DaemonSet or Deployment controller and the scheduler would make, on `node`. */
function podFor(workload: Manifest, name: string, node: string): string {
  env.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
  const template = (workload as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } })
    .spec.template;
  env.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: RELEASE_NS, labels: template.metadata.labels },
    spec: { ...podSpecOf(workload), nodeName: node },
  });
  return name;
}

/** The pod's own credentials: a service-account token bound to the pod (and so to its node). */
function tokenKubeconfig(pod: string, user: string): string {
  const sa = env.kubectl(['get', 'pod', pod, '-n', RELEASE_NS, '-o', 'jsonpath={.spec.serviceAccountName}']).trim();
  const token = env
    .kubectl([
      'create',
      'token',
      sa,
      '-n',
      RELEASE_NS,
      '--bound-object-kind=Pod',
      `--bound-object-name=${pod}`,
      '--duration=2h',
    ])
    .trim();
  const path = join(env.dir, `kubeconfig-${user}`);
  writeTokenKubeconfig(path, env.cp.server, env.cp.caPath, token, user);
  return path;
}

function start(name: string, args: string[], vars: Record<string, string>): void {
  const logFile = join(env.dir, `${name}.log`);
  logs.push(logFile);
  processes.push(
    startProcess({
      name,
      command: process.execPath,
      args,
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: env.dir, ...vars },
      logFile,
    }),
  );
}

const apply = (obj: object) => env.apply(obj);
const settled = (i: Instance) => i.status?.vmState === 'active' && !i.status.taskState;

async function migrationIn(name: string, phase: string): Promise<Migration> {
  return env.waitFor(
    `Migration ${NS}/${name} ${phase}`,
    async () => {
      const m = await env.migration(name, NS);
      if (m?.status?.status === 'error') throw new Error(`Migration ${name} failed: ${m.status.fault?.message}`);
      return m?.status?.status === phase ? m : undefined;
    },
    120_000,
  );
}

async function decide(name: string, decision: 'Confirm' | 'Revert'): Promise<void> {
  env.kubectl(['patch', 'migration', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { decision } })]);
  await migrationIn(name, decision === 'Confirm' ? 'confirmed' : 'reverted');
}

describe('kubenova as its Helm chart runs it', () => {
  it("boots, cold-migrates, resizes with confirm and deletes an instance, each step done by components holding only the chart's RBAC", async () => {
    const hosts = (await env.kube.computeNodes.list()).items
      .filter((n) => env.nodeReady(n) === 'True')
      .map((n) => n.metadata.name);
    expect(hosts.length, `Ready ComputeNodes: ${hosts.join(', ')}`).toBeGreaterThanOrEqual(2);

    apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name: 'voyager', namespace: NS },
      spec: { flavor: 'm1.tiny', image: 'cirros' },
    });
    const booted = await env.waitForInstance('voyager', settled, 'active', 120_000, NS);
    const uid = booted.metadata.uid ?? '';
    const source = booted.status?.host ?? '';
    expect(hosts).toContain(source);

    apply({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Migration',
      metadata: { name: 'voyager-move', namespace: NS },
      spec: { instance: 'voyager' },
    });
    const moved = await migrationIn('voyager-move', 'finished');
    expect(moved.status).toMatchObject({ type: 'migration', sourceHost: source });
    const dest = moved.status?.destHost ?? '';
    expect(dest).not.toBe(source);
    await decide('voyager-move', 'Confirm');
    const there = await env.waitForInstance(
      'voyager',
      (i) => settled(i) && i.status?.host === dest,
      `active on ${dest}`,
      60_000,
      NS,
    );
    expect(there.status?.flavor?.name).toBe('m1.tiny');

    const patched = JSON.parse(
      env.kubectl([
        'patch',
        'instance',
        'voyager',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"flavor":"m1.small"}}',
        '-o',
        'json',
      ]),
    ) as Instance;
    const resizeName = `voyager-resize-${patched.metadata.generation}`;
    const resized = await migrationIn(resizeName, 'finished');
    expect(resized.status).toMatchObject({
      type: 'resize',
      sourceHost: dest,
      oldFlavor: { name: 'm1.tiny' },
      newFlavor: { name: 'm1.small' },
    });
    await decide(resizeName, 'Confirm');
    const bigger = await env.waitForInstance(
      'voyager',
      (i) => settled(i) && i.status?.flavor?.name === 'm1.small',
      'active as m1.small',
      60_000,
      NS,
    );
    expect(bigger.status?.host).toBe(resized.status?.destHost);

    env.kubectl(['delete', 'instance', 'voyager', '-n', NS, '--wait=false']);
    await env.waitFor('instance voyager gone', async () => (await env.instance('voyager', NS)) === undefined, 60_000);
    const consumers = [uid, moved.metadata.uid, resized.metadata.uid];
    const leftover = (await env.kube.computeNodes.list()).items.flatMap((n) =>
      (n.status?.claims ?? []).filter((c) => consumers.includes(c.consumer)).map((c) => `${n.metadata.name}:${c.kind}`),
    );
    expect(leftover).toEqual([]);
  });

  it('elects one operator replica, which holds the Lease in the release namespace', async () => {
    const lease = await env.kube.config
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: RELEASE_NS, name: 'kubenova-operator' });
    expect(lease.spec?.holderIdentity).toBeTruthy();
    expect(Date.now() - new Date(lease.spec?.renewTime ?? 0).getTime()).toBeLessThan(30_000);
  });

  it.skipIf(external)('was never refused anything by the API server: no component logged Forbidden', () => {
    const refusals = logs.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .filter((l) => /forbidden|denied request/i.test(l))
        .map((l) => `${f}: ${l.slice(0, 300)}`),
    );
    expect(refusals).toEqual([]);
  });
});
