// The installed form on real nodes: `npm run cluster`'s kubelets run the chart's operator
// Deployment, node-agent DaemonSet and libvirt DaemonSet from the image built here, and the
// agents drive real QEMU guests through each node's libvirtd. Every check goes through kubectl,
// helm and the API server, as a platform engineer would.
import { execFileSync } from 'node:child_process';
import { availableParallelism, totalmem } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComputeNode, Instance, Migration } from '../common/api/types.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import { waitFor } from '../devenv/cluster/exec.js';
import { RELEASE, RELEASE_NAMESPACE, CHART, releaseValues } from '../devenv/cluster/kubenova.js';
import { missingPrerequisites } from '../devenv/cluster/preflight.js';
import { external } from './harness/mode.js';
import { realNodes, type RealNodes } from './harness/real-nodes.js';

const API = 'compute.kubenova.io/v1alpha1';
const GiB = 1024 ** 3;

function whyNot(): string | undefined {
  if (external) return undefined;
  if (process.getuid?.() !== 0) return 'real nodes need root';
  const missing = missingPrerequisites();
  return missing.length ? `this machine lacks: ${missing.join('; ')} (run devenv/cluster/setup.sh)` : undefined;
}
const unavailable = whyNot();
if (unavailable) console.warn(`e2e/real-nodes.test.ts skipped: ${unavailable}`);

let env: RealNodes;
let kube: Kube;
let stateDir: string;
const kubectl = (...args: string[]) => env.kubectl(args);
const apply = (yaml: string) => env.kubectl(['apply', '-f', '-'], yaml);

function pods(selector: string): { name: string; node: string; phase: string; ready: boolean }[] {
  const out = kubectl(
    ...['-n', RELEASE_NAMESPACE, 'get', 'pods', '-l', selector, '-o'],
    'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} ' +
      '{.status.containerStatuses[*].ready}{"\\n"}{end}',
  );
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name = '', node = '', phase = '', ...ready] = line.split(' ');
      return { name, node, phase, ready: ready.length > 0 && ready.every((r) => r === 'true') };
    });
}
const agentPods = () => pods('app.kubernetes.io/component=node-agent');
const operatorPods = () => pods('app.kubernetes.io/component=operator');
const agentPodOn = (node: string) => agentPods().find((p) => p.node === node)!.name;
const holder = () =>
  kubectl('-n', RELEASE_NAMESPACE, 'get', 'lease', 'kubenova-operator', '-o', 'jsonpath={.spec.holderIdentity}').trim();
/** The operator pod holding the Lease (its identity is <hostname = pod name>-<pid>-<random>). */
const leaderPod = () => operatorPods().find((p) => holder().startsWith(`${p.name}-`))?.name;

/** Runs a command in the node agent's container on `node` (it has node, virsh and libvirt's socket). */
function execAgent(node: string, ...argv: string[]): string {
  return kubectl('-n', RELEASE_NAMESPACE, 'exec', agentPodOn(node), '-c', 'node-agent', '--', ...argv);
}
const inAgent = (node: string, line: string) => execAgent(node, 'sh', '-c', line);

async function instance(name: string): Promise<Instance> {
  const inst = await kube.instances.get({ namespace: 'default', name });
  if (!inst) throw new Error(`instance ${name} is gone`);
  return inst;
}

async function waitForInstance(name: string, what: string, ok: (i: Instance) => boolean, ms = 240_000) {
  return waitFor(
    `instance ${name} ${what}`,
    async () => {
      const inst = await instance(name);
      if (inst.status?.vmState === 'error') throw new Error(`error: ${inst.status.fault?.message}`);
      return ok(inst) ? inst : undefined;
    },
    ms,
    1_000,
  );
}

async function waitForMigration(name: string, phases: string[], ms = 300_000): Promise<Migration> {
  return waitFor(
    `migration ${name} to reach ${phases.join(' or ')}`,
    async () => {
      const mig = await kube.migrations.get({ namespace: 'default', name });
      return mig?.status?.status && phases.includes(mig.status.status) ? mig : undefined;
    },
    ms,
    1_000,
  );
}

const running = (i: Instance) =>
  i.status?.vmState === 'active' && i.status.powerState === 'running' && !!i.status.guest;
const otherNode = (node: string) => env.nodes.find((n) => n !== node)!;
const decide = (mig: string, decision: 'Confirm' | 'Revert') =>
  kubectl('patch', 'migration', mig, '--type', 'merge', '-p', JSON.stringify({ spec: { decision } }));
const resize = (name: string, flavor: string) =>
  kubectl('patch', 'instance', name, '--type', 'merge', '-p', JSON.stringify({ spec: { flavor } }));

/**
 * Whether this machine gets an answer from `ip` within `ms`, and from which MAC: the neighbour
 * entry is flushed first, so the MAC is the one that answered this time.
 */
async function pingFromHere(ip: string, ms = 60_000): Promise<string> {
  execFileSync('ip', ['neigh', 'flush', 'to', ip]);
  await waitFor(
    `${ip} to answer ping from this machine`,
    async () => {
      execFileSync('ping', ['-n', '-c', '1', '-W', '2', ip], { stdio: 'ignore' });
      return true;
    },
    ms,
    500,
  );
  const mac = /lladdr (\S+)/.exec(execFileSync('ip', ['neigh', 'show', 'to', ip], { encoding: 'utf8' }))?.[1];
  if (!mac) throw new Error(`${ip} answered but this machine has no neighbour entry for it`);
  return mac;
}

/** Whether `ip` answers ping from inside a node's network namespace (the node itself, not this machine). */
async function pingFromNode(netns: string, ip: string, ms = 30_000): Promise<void> {
  await waitFor(
    `${ip} to answer ping from the node of ${netns}`,
    async () => {
      execFileSync('nsenter', [`--net=${netns}`, '--', 'ping', '-n', '-c', '1', '-W', '2', ip], { stdio: 'ignore' });
      return true;
    },
    ms,
    500,
  );
}

/** kubenova's network bridges (kn- and 12 hex digits) on a node, seen from its agent's pod (the node's network). */
const bridgesOn = (node: string): string[] =>
  inAgent(node, 'ip -o link show type bridge')
    .split('\n')
    .map((l) => /^\d+: (kn-[0-9a-f]{12})[:@]/.exec(l)?.[1])
    .filter((b): b is string => b !== undefined);

/** Domains libvirt knows and instance directories on disk, on every node. */
function leftovers(): string[] {
  return env.nodes.flatMap((name) => {
    const domains = inAgent(name, 'virsh -q -c "$KUBENOVA_LIBVIRT_URI" list --all --name').trim();
    const dirs = inAgent(name, 'ls "$KUBENOVA_STATE_DIR/$NODE_NAME/instances" 2>/dev/null || true').trim();
    return [...domains.split('\n'), ...dirs.split('\n')].filter(Boolean).map((d) => `${name}: ${d}`);
  });
}

async function claims(): Promise<string[]> {
  const nodes = (await kube.computeNodes.list()).items as ComputeNode[];
  return nodes.flatMap((n) => (n.status?.claims ?? []).map((c) => `${n.metadata.name}: ${c.kind}/${c.consumer}`));
}

describe.skipIf(Boolean(unavailable))('kubenova installed with Helm onto real nodes', () => {
  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kubenova-real-nodes-'));
    env = await realNodes(stateDir, (l) => console.log(`[cluster] ${l}`));
    kube = new Kube(loadKubeConfig(env.kubeconfig), 'e2e-real-nodes');
    apply(`
apiVersion: ${API}
kind: Flavor
metadata: {name: rn.small}
spec: {vcpus: 1, memoryMiB: 128, rootDiskGiB: 1}
---
apiVersion: ${API}
kind: Flavor
metadata: {name: rn.large}
spec: {vcpus: 2, memoryMiB: 192, rootDiskGiB: 2}
---
apiVersion: ${API}
kind: Flavor
metadata: {name: rn.xl}
spec: {vcpus: 2, memoryMiB: 256, rootDiskGiB: 3}
`);
  }, 1_800_000);

  afterAll(async () => {
    await env?.stop();
    // A start that failed keeps its logs (its error says where) for a post-mortem.
    if (stateDir && env) rmSync(stateDir, { recursive: true, force: true });
  }, 300_000);

  it('runs on Ready nodes: the operator with one leader, one agent per node, a ComputeNode per node with its real capacity', async () => {
    const runtimes = kubectl(
      'get',
      'nodes',
      '-o',
      'jsonpath={range .items[*]}{.status.nodeInfo.containerRuntimeVersion}{"\\n"}{end}',
    );
    expect(runtimes.trim().split('\n')).toEqual(env.nodes.map(() => expect.stringMatching(/^containerd:\/\//)));
    const ops = operatorPods();
    expect(ops.length).toBeGreaterThanOrEqual(2);
    expect(ops.every((p) => p.phase === 'Running')).toBe(true);
    expect(leaderPod()).toBeDefined();
    const agents = agentPods();
    expect(agents.map((p) => p.node).sort()).toEqual([...env.nodes].sort());
    expect(agents.every((p) => p.phase === 'Running' && p.ready)).toBe(true);
    for (const name of env.nodes) {
      const cn = await kube.computeNodes.get({ name });
      expect(cn?.status?.driver).toBe('libvirt');
      expect(cn?.status?.capacity?.vcpus).toBeGreaterThan(0);
      expect(cn?.status?.capacity?.diskGiB).toBeGreaterThan(0);
      if (external) continue;
      // The local nodes share this machine: each reports the machine's own CPUs and memory.
      expect(cn?.status?.capacity?.vcpus).toBeLessThanOrEqual(availableParallelism());
      expect(cn?.status?.capacity?.memoryMiB).toBe(Math.floor(totalmem() / 1024 ** 2));
    }
    const first = env.nodes[0]!;
    expect(inAgent(first, 'node --version').trim()).toMatch(/^v24\./);
    const logs = kubectl('-n', RELEASE_NAMESPACE, 'logs', agentPodOn(first), '-c', 'node-agent');
    expect(logs).toContain('registered ComputeNode');
  });

  it('boots a real guest, resizes it to the other node and confirms, reverts a second resize, cold-migrates, stops, starts and deletes it', async () => {
    apply(`
apiVersion: ${API}
kind: Instance
metadata: {name: vm-1, namespace: default}
spec: {flavor: rn.small, image: tiny}
`);
    const booted = await waitForInstance('vm-1', 'running with its guest reporting', running);
    const home = booted.status!.host!;
    const marker = booted.status!.guest!.marker;
    expect(booted.status?.guest).toMatchObject({ vcpus: 1, diskBytes: 1 * GiB });
    // Its QEMU runs in the node's libvirt pod as the unprivileged libvirt-qemu user (64055).
    const libvirtPod = pods('app.kubernetes.io/component=libvirt').find((p) => p.node === home)!.name;
    const pidFile = `/run/libvirt/qemu/kn-${home}-${booted.metadata.uid}.pid`;
    const ids = kubectl(
      ...['-n', RELEASE_NAMESPACE, 'exec', libvirtPod, '-c', 'libvirtd', '--', 'sh', '-c'],
      `grep -E '^(Uid|Gid):' /proc/$(cat ${pidFile})/status`,
    );
    expect(ids).toMatch(/^Uid:\s+64055\s+64055\s+64055\s+64055\nGid:\s+64055\s+64055\s+64055\s+64055\n?$/);

    resize('vm-1', 'rn.large');
    const first = await waitForMigration('vm-1-resize-2', ['finished']);
    expect(first.status?.destHost).toBe(otherNode(home));
    decide('vm-1-resize-2', 'Confirm');
    await waitForMigration('vm-1-resize-2', ['confirmed']);
    const grown = await waitForInstance(
      'vm-1',
      'running rn.large',
      (i) => running(i) && i.status?.flavor?.name === 'rn.large',
    );
    expect(grown.status?.host).toBe(otherNode(home));
    expect(grown.status?.guest).toMatchObject({ vcpus: 2, diskBytes: 2 * GiB, marker });

    resize('vm-1', 'rn.xl');
    await waitForMigration('vm-1-resize-3', ['finished']);
    decide('vm-1-resize-3', 'Revert');
    await waitForMigration('vm-1-resize-3', ['reverted']);
    const back = await waitForInstance(
      'vm-1',
      'back on rn.large',
      (i) => running(i) && i.status?.flavor?.name === 'rn.large',
    );
    expect(back.status?.host).toBe(otherNode(home));
    expect(back.status?.guest).toMatchObject({ vcpus: 2, diskBytes: 2 * GiB, marker });

    apply(`
apiVersion: ${API}
kind: Migration
metadata: {name: vm-1-move, namespace: default}
spec: {instance: vm-1}
`);
    await waitForMigration('vm-1-move', ['finished']);
    decide('vm-1-move', 'Confirm');
    await waitForMigration('vm-1-move', ['confirmed']);
    const moved = await waitForInstance('vm-1', 'moved home', (i) => running(i) && i.status?.host === home);
    expect(moved.status?.guest?.marker).toBe(marker);

    kubectl('patch', 'instance', 'vm-1', '--type', 'merge', '-p', '{"spec":{"powerState":"Stopped"}}');
    await waitForInstance('vm-1', 'stopped', (i) => i.status?.vmState === 'stopped');
    kubectl('patch', 'instance', 'vm-1', '--type', 'merge', '-p', '{"spec":{"powerState":"Running"}}');
    const again = await waitForInstance('vm-1', 'running again', running);
    expect(again.status?.guest?.marker).toBe(marker);

    kubectl('delete', 'instance', 'vm-1', '--wait=true', '--timeout=180s');
    expect(await claims()).toEqual([]);
    expect(leftovers()).toEqual([]);
  });

  it('boots a guest on a network that reports its address from inside and answers ping on it here; resized to the other node it answers on the same address and MAC, reverted it answers from its first node, and resized again and confirmed from the other; its bridges go with it', async (ctx) => {
    const net = env.guestNetwork;
    if (!net) return ctx.skip();
    apply(`
apiVersion: ${API}
kind: Network
metadata: {name: ${net.name}}
spec: {cidr: ${net.cidr}, gateway: ${net.gateway}, mtu: 1400}
---
apiVersion: ${API}
kind: Instance
metadata: {name: vm-net, namespace: default}
spec: {flavor: rn.small, image: tiny, networks: [{network: ${net.name}}]}
`);
    const booted = await waitForInstance(
      'vm-net',
      'running with its address reported from inside',
      (i) => running(i) && (i.status?.guest?.ips?.length ?? 0) > 0,
    );
    const home = booted.status!.host!;
    const port = booted.status!.networks![0]!;
    expect(port.network).toBe(net.name);
    expect(booted.status?.guest?.ips).toEqual([port.ip]);
    expect(await pingFromHere(port.ip)).toBe(port.mac);
    // And from every node, whichever runs it.
    for (const netns of Object.values(env.nodeNetns ?? {})) await pingFromNode(netns, port.ip);
    // The agent made the network's bridge on its node, with the network's MTU.
    expect(inAgent(home, `ip -o link show type bridge`)).toMatch(/kn-[0-9a-f]{12}: .* mtu 1400 /);

    resize('vm-net', 'rn.large');
    await waitForMigration('vm-net-resize-2', ['finished']);
    const moved = await instance('vm-net');
    expect(moved.status?.host).toBe(otherNode(home));
    expect(moved.status?.networks).toEqual([port]);
    expect(moved.status?.guest?.ips).toEqual([port.ip]);
    expect(await pingFromHere(port.ip)).toBe(port.mac);

    decide('vm-net-resize-2', 'Revert');
    await waitForMigration('vm-net-resize-2', ['reverted']);
    const back = await waitForInstance(
      'vm-net',
      'back on its first node',
      (i) => running(i) && i.status?.host === home,
    );
    expect(back.status?.guest?.ips).toEqual([port.ip]);
    expect(await pingFromHere(port.ip)).toBe(port.mac);

    // The revert put spec.flavor back (a new generation), so this resize's Migration is named by
    // the instance rather than guessed.
    resize('vm-net', 'rn.large');
    const again = await waitForInstance(
      'vm-net',
      'resizing again',
      (i) => !!i.status?.migration && i.status.migration !== 'vm-net-resize-2',
    );
    const second = again.status!.migration!;
    await waitForMigration(second, ['finished']);
    decide(second, 'Confirm');
    await waitForMigration(second, ['confirmed']);
    const confirmed = await waitForInstance(
      'vm-net',
      'confirmed on the other node',
      (i) => running(i) && i.status?.host === otherNode(home) && !i.status.migration,
    );
    expect(confirmed.status?.networks).toEqual([port]);
    expect(await pingFromHere(port.ip)).toBe(port.mac);

    kubectl('delete', 'instance', 'vm-net', '--wait=true', '--timeout=180s');
    expect(leftovers()).toEqual([]);
    // The agents' audits (every 60 s) remove the bridges no guest of their node uses.
    await waitFor(
      'no network bridge left on any node',
      async () => (env.nodes.every((n) => bridgesOn(n).length === 0) ? true : undefined),
      180_000,
      5_000,
    );
  });

  it('finishes a resize when the leader pod is deleted in the middle of it', async () => {
    apply(`
apiVersion: ${API}
kind: Instance
metadata: {name: vm-2, namespace: default}
spec: {flavor: rn.small, image: tiny}
`);
    await waitForInstance('vm-2', 'running', running);
    resize('vm-2', 'rn.large');
    await waitForMigration('vm-2-resize-2', ['pre-migrating', 'migrating', 'post-migrating', 'finished'], 60_000);
    const old = leaderPod()!;
    kubectl('-n', RELEASE_NAMESPACE, 'delete', 'pod', old, '--wait=false');
    await waitForMigration('vm-2-resize-2', ['finished']);
    decide('vm-2-resize-2', 'Confirm');
    await waitForMigration('vm-2-resize-2', ['confirmed']);
    await waitForInstance('vm-2', 'running rn.large', (i) => running(i) && i.status?.flavor?.name === 'rn.large');
    await waitFor('a new leader', async () => (leaderPod() && leaderPod() !== old ? true : undefined), 120_000);
  });

  it('finishes or rolls back a migration whose source agent pod is deleted in the middle, leaking nothing', async () => {
    const before = await instance('vm-2');
    const source = before.status!.host!;
    apply(`
apiVersion: ${API}
kind: Migration
metadata: {name: vm-2-move, namespace: default}
spec: {instance: vm-2}
`);
    await waitForMigration('vm-2-move', ['migrating', 'post-migrating', 'finished'], 120_000);
    kubectl('-n', RELEASE_NAMESPACE, 'delete', 'pod', agentPodOn(source), '--wait=false');
    const ended = await waitForMigration('vm-2-move', ['finished', 'error']);
    if (ended.status?.status === 'finished') {
      decide('vm-2-move', 'Confirm');
      await waitForMigration('vm-2-move', ['confirmed']);
    }
    await waitFor(
      'the agent DaemonSet back on every node',
      async () => (agentPods().every((p) => p.ready) ? true : undefined),
      180_000,
    );
    const after = await waitForInstance('vm-2', 'running after the move', running);
    expect(after.status?.host).toBe(ended.status?.status === 'error' ? source : otherNode(source));
    expect(after.status?.guest?.marker).toBe(before.status?.guest?.marker);
    // Only the instance's own claim is left, on the host it runs on.
    expect(await claims()).toEqual([`${after.status!.host}: instance/${after.metadata.uid}`]);
  });

  it("refuses, from inside the agent pod on one node, a write to another node's ComputeNode", async () => {
    const [a, b] = env.nodes as [string, string];
    // The agent's own pod-bound token, straight to the API server through the kubernetes Service.
    const script = [
      "const fs = require('fs'), https = require('https');",
      "const sa = '/var/run/secrets/kubernetes.io/serviceaccount/';",
      'const req = https.request({',
      '  host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT,',
      "  path: '/apis/compute.kubenova.io/v1alpha1/computenodes/' + process.argv[1] + '/status',",
      "  method: 'PATCH', ca: fs.readFileSync(sa + 'ca.crt'),",
      "  headers: { Authorization: 'Bearer ' + fs.readFileSync(sa + 'token', 'utf8').trim(),",
      "    'Content-Type': 'application/merge-patch+json' },",
      "}, (res) => { let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => console.log(res.statusCode + ' ' + b)); });",
      "req.end(JSON.stringify({ status: { driver: 'libvirt' } }));",
    ].join('\n');
    const patch = (node: string) => execAgent(a, 'node', '-e', script, node);
    expect(patch(a)).toMatch(/^200 /);
    const refused = patch(b);
    expect(refused).toMatch(/^(403|422) /);
    expect(refused).toMatch(/ValidatingAdmissionPolicy|denied|forbidden/i);
  });

  it('rolls the pods on helm upgrade without losing the instance, and helm uninstall leaves no kubenova pod, role or binding', async () => {
    const before = await instance('vm-2');
    const oldAgents = agentPods()
      .map((p) => p.name)
      .sort();
    env.helm([
      'upgrade',
      RELEASE,
      CHART,
      '--namespace',
      RELEASE_NAMESPACE,
      ...releaseValues(env.image, { ...env.values, 'log.level': 'debug' }),
      '--wait',
      '--timeout',
      '10m',
    ]);
    await waitFor(
      'new agent pods',
      async () => {
        const now = agentPods();
        return now.every((p) => p.ready && !oldAgents.includes(p.name)) && now.length === oldAgents.length
          ? true
          : undefined;
      },
      300_000,
    );
    const after = await waitForInstance('vm-2', 'still running after the upgrade', running);
    expect(after.status?.host).toBe(before.status?.host);
    expect(after.status?.guest?.marker).toBe(before.status?.guest?.marker);

    kubectl('delete', 'instance', 'vm-2', '--wait=true', '--timeout=180s');
    expect(leftovers()).toEqual([]);
    env.helm(['uninstall', RELEASE, '--namespace', RELEASE_NAMESPACE, '--wait']);
    await waitFor(
      'no kubenova pod',
      async () => (operatorPods().length + agentPods().length === 0 ? true : undefined),
      180_000,
    );
    const rbac = kubectl('get', 'clusterroles,clusterrolebindings', '-o', 'name')
      .split('\n')
      .filter((n) => n.includes('kubenova'));
    expect(rbac).toEqual([]);
    // CRDs stay (Helm never deletes them), and so do the objects they hold.
    expect(kubectl('get', 'crd', 'instances.compute.kubenova.io', '-o', 'name').trim()).toBe(
      'customresourcedefinition.apiextensions.k8s.io/instances.compute.kubenova.io',
    );
  });
});
