// Removing an environment from this machine: processes, mounts, namespaces, links, iptables
// rules, cgroups and files. Everything is found from the state directory's names alone, so
// the same code serves stop(), the guardian of a crashed run, and the next start in a
// directory a killed run left behind. Every step may find nothing to do.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupProcesses, leftoverCgroups, removeCgroupTree } from './cgroups.js';
import { restoreMachineState } from './machine-state.js';
import { mountPointsUnder, unmountUnder } from './mounts.js';
import { leftoverNetwork, teardownNetwork } from './network.js';
import type { EnvironmentNames } from './plan.js';
import { killAll, listProcesses, processAlive, processStartTime, selfAndAncestors } from './processes.js';

/** What the environment writes into its state directory (the rest of it is the user's). */
const OWNER_FILE = 'owner.json';
// hostpath: where workloads' hostPath volumes point (the nodes share this machine's filesystem).
export const STATE_ENTRIES = ['controlplane', 'nodes', 'hostpath', 'kubeconfig', 'env.sh', OWNER_FILE];

/** The commands an environment runs (by /proc comm, which keeps 15 characters). */
const OUR_COMMANDS = new Set([
  'kubelet',
  'kube-proxy',
  'containerd',
  'containerd-shim',
  'runc',
  'etcd',
  'kube-apiserver',
  'kube-controller',
  'kube-scheduler',
  'nsenter',
  'setpriv',
]);

/** The environment's processes outside its cgroups: control plane and node daemons, found by their paths. */
function daemonProcesses(names: EnvironmentNames): number[] {
  const spare = selfAndAncestors();
  const mentions = (arg: string, dir: string) => arg === dir || arg.includes(`${dir}/`) || arg.endsWith(`=${dir}`);
  return listProcesses()
    .filter((p) => !spare.has(p.pid) && OUR_COMMANDS.has(p.comm))
    .filter((p) => p.args.some((a) => mentions(a, names.stateDir) || mentions(a, names.runDir)))
    .map((p) => p.pid);
}

export interface TeardownOptions {
  /** Leave the files (logs, data) in the state directory; everything else still goes. */
  keepState?: boolean;
}

export async function teardownEnvironment(names: EnvironmentNames, opts: TeardownOptions = {}): Promise<void> {
  const failures: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown> | unknown) => {
    try {
      await fn();
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
    }
  };
  await step('stopping processes', () =>
    killAll([...daemonProcesses(names), ...cgroupProcesses(names.cgroupParent)].filter((p) => p !== process.pid)),
  );
  // Namespaces first: deleting one removes its /run/netns mount and the veth pair with it.
  await step('removing network', () => teardownNetwork(names));
  await step('unmounting', async () => {
    const left = await unmountUnder([names.stateDir, names.runDir]);
    if (left.length > 0) throw new Error(`still mounted: ${left.join(', ')}`);
  });
  await step('removing cgroups', () => removeCgroupTree(names.cgroupParent));
  await step('removing files', () => removeFiles(names, opts));
  await step('restoring machine-wide state', () => restoreMachineState());
  if (failures.length > 0)
    throw new Error(`cleaning up environment ${names.stateDir} left something behind:\n${failures.join('\n')}`);
}

function removeFiles(names: EnvironmentNames, opts: TeardownOptions): void {
  // The kubelet links every container's log into /var/log/containers (a fixed path).
  removeEntries('/var/log/containers', (path) => {
    const target = lstatSync(path).isSymbolicLink() ? readlinkSync(path) : '';
    return target.startsWith(`${names.stateDir}/`);
  });
  // libcni caches each attachment under the network's name, which carries the id.
  removeEntries('/var/lib/cni/results', (path) => path.split('/').pop()?.startsWith(`kubenova-${names.id}-`) ?? false);
  removeContainerdLeftovers(names);
  rmSync(names.runDir, { recursive: true, force: true });
  for (const entry of STATE_ENTRIES) {
    if (opts.keepState && entry !== OWNER_FILE) continue;
    rmSync(join(names.stateDir, entry), { recursive: true, force: true });
  }
}

/**
 * What the nodes' containerds keep in fixed places, named by container: a killed shim's
 * socket in /run/containerd/s (named by the hash of the containerd socket, namespace and
 * id, as containerd computes it) and the loopback attachment in libcni's cache.
 */
function removeContainerdLeftovers(names: EnvironmentNames): void {
  const nodesDir = join(names.stateDir, 'nodes');
  const nodes = existsSync(nodesDir) ? readdirSync(nodesDir) : [];
  for (const node of nodes) {
    const socket = join(names.runDir, node, 'containerd.sock');
    const ids = new Set([
      ...listDir(join(names.runDir, node, 'containerd', 'io.containerd.runtime.v2.task', 'k8s.io')),
      ...listDir(join(nodesDir, node, 'containerd', 'io.containerd.grpc.v1.cri', 'sandboxes')),
      ...listDir(join(nodesDir, node, 'containerd', 'io.containerd.grpc.v1.cri', 'containers')),
    ]);
    for (const id of ids) {
      const hash = createHash('sha256')
        .update(join(socket, 'k8s.io', id))
        .digest('hex');
      rmSync(join('/run/containerd/s', hash), { force: true });
      rmSync(join('/var/lib/cni/results', `cni-loopback-${id}-lo`), { force: true });
    }
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function removeEntries(dir: string, match: (path: string) => boolean): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (match(path)) rmSync(path, { force: true });
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Everything of the environment still on this machine; empty after a complete teardown. */
export async function leftovers(names: EnvironmentNames): Promise<string[]> {
  return [
    ...daemonProcesses(names).map((pid) => `process ${pid}`),
    ...cgroupProcesses(names.cgroupParent).map((pid) => `process ${pid} (in the environment's cgroups)`),
    ...mountPointsUnder([names.stateDir, names.runDir]).map((m) => `mount ${m}`),
    ...(await leftoverNetwork(names)),
    ...leftoverCgroups(names.cgroupParent).map((c) => `cgroup ${c}`),
    ...(existsSync(names.runDir) ? [`directory ${names.runDir}`] : []),
  ];
}

/**
 * Checks that no live process owns the state directory (two environments in one directory
 * would tear each other down). Resolves true when a dead run left it: the caller cleans up
 * after it, then takes the directory with writeOwner.
 */
export function checkStateDirOwner(names: EnvironmentNames): { stale: boolean } {
  const path = join(names.stateDir, OWNER_FILE);
  if (!existsSync(path)) return { stale: false };
  const owner = (() => {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; start?: string };
    } catch {
      return {};
    }
  })();
  if (owner.pid && owner.pid !== process.pid && processAlive(owner.pid) && processStartTime(owner.pid) === owner.start)
    throw new Error(
      `another cluster runs in ${names.stateDir} (pid ${owner.pid}): stop it (Ctrl-C) or give another --state-dir`,
    );
  return { stale: true };
}

export function writeOwner(names: EnvironmentNames): void {
  writeFileSync(
    join(names.stateDir, OWNER_FILE),
    JSON.stringify({ pid: process.pid, start: processStartTime(process.pid) }),
  );
}
