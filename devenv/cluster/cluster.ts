// A real Kubernetes cluster on this machine without Docker: the local control plane bound to
// an environment bridge, kube-scheduler, and N nodes, each a network namespace with its own
// containerd, kubelet and kube-proxy. Needs root and devenv/cluster/setup.sh.
//
//   const cluster = await startCluster({ nodes: 2, stateDir, images, log });
//   execFileSync('kubectl', ['get', 'nodes'], { env: { ...process.env, ...cluster.env } });
//   await cluster.stop();   // removes everything it made
import { copyFileSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ensureBinaries, ensureNodeBinaries } from '../controlplane/binaries.js';
import { ControlPlane } from '../controlplane/controlplane.js';
import { describeExit } from '../controlplane/processes.js';
import { repoRoot } from '../components.js';
import type { ImageArchive } from '../images/oci.js';
import { buildPauseImage } from '../images/pause.js';
import { defaultCacheDir } from '../images/paths.js';
import { containerdPaths } from './containerd.js';
import { GiveUp, waitFor } from './exec.js';
import { startGuardian } from './guardian.js';
import { recordKernelTunables } from './machine-state.js';
import { addPodRoutes, createBridge, createGuestNetwork } from './network.js';
import { ClusterNode, nodeCredentials } from './node.js';
import { environmentNames, planEnvironment } from './plan.js';
import { checkStateDirOwner, leftovers, teardownEnvironment, writeOwner } from './teardown.js';

export interface ClusterOptions {
  /** How many nodes (default 2). */
  nodes?: number;
  /** Where the cluster keeps its data, logs and kubeconfig; two clusters need two directories. */
  stateDir: string;
  /** Images (besides the sandbox image) to load into every node's containerd, keeping their names. */
  images?: ImageArchive[];
  /** Progress lines for a person. */
  log?: (line: string) => void;
  /** stop() leaves the state directory's files (logs, data) for a post-mortem. */
  keepState?: boolean;
  /**
   * The name of a kubenova Network the environment carries between its nodes and this machine
   * (network.ts, createGuestNetwork); none by default.
   */
  guestNetwork?: string;
}

/** The guest network as the environment carries it: create a Network of this name, CIDR and gateway. */
export interface GuestNetworkInfo {
  name: string;
  cidr: string;
  gateway: string;
}

export interface ClusterNodeInfo {
  name: string;
  /** InternalIP on the environment bridge. */
  ip: string;
  /** Network namespace path (for `nsenter --net=`). */
  netns: string;
  podCidr: string;
  /** The node's containerd (`ctr --address <it> -n k8s.io ...`). */
  containerdSocket: string;
}

export interface Cluster {
  /** Its state directory (real path): data, logs, kubeconfig; removed by stop() unless kept. */
  stateDir: string;
  /** Admin kubeconfig, pointing at the API server on the bridge address. */
  kubeconfig: string;
  server: string;
  nodes: ClusterNodeInfo[];
  /** What kubectl and helm need: KUBECONFIG, and PATH with a kubectl matching the server first. */
  env: { KUBECONFIG: string; PATH: string };
  kubectlPath: string;
  helmPath: string;
  /** The sandbox image every node uses. */
  pauseImage: ImageArchive;
  /** The guest network, when one was asked for. */
  guestNetwork?: GuestNetworkInfo;
  /** Runs kubectl as admin; resolves with stdout, rejects with its stderr. */
  kubectl(args: string[], input?: string): string;
  /** Resident memory of each node's kubelet, containerd and kube-proxy, in KiB. */
  memory(): { node: string; kubelet: number; containerd: number; kubeProxy: number; total: number }[];
  /** Seconds each start phase took. */
  timings: Record<string, number>;
  /** Stops everything and removes what the cluster made on this machine. */
  stop(): Promise<void>;
}

export const DEFAULT_NODES = 2;

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const log = opts.log ?? (() => undefined);
  if (process.getuid?.() !== 0)
    throw new Error('a cluster of real nodes needs root (namespaces, cgroups, mounts): run it as root');
  mkdirSync(resolve(opts.stateDir), { recursive: true });
  const stateDir = realpathSync(resolve(opts.stateDir));
  const names = environmentNames(stateDir);
  const nodeCount = opts.nodes ?? DEFAULT_NODES;
  planEnvironment(stateDir, nodeCount, 0); // validates the node count before anything is made
  const timings: Record<string, number> = {};
  let phaseStart = Date.now();
  const phase = (name: string) => {
    timings[name] = (Date.now() - phaseStart) / 1000;
    phaseStart = Date.now();
  };

  const { stale } = checkStateDirOwner(names);
  if (stale) log(`cleaning up what an earlier run left in ${stateDir}`);
  await teardownEnvironment(names);
  writeOwner(names);
  const guardian = startGuardian(stateDir, repoRoot);
  phase('cleanup');

  let cp: ControlPlane | undefined;
  const nodes: ClusterNode[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (keepState = opts.keepState) =>
    (stopping ??= (async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await cp?.stop();
      try {
        await teardownEnvironment(names, { keepState });
      } finally {
        guardian.kill('SIGKILL');
      }
    })());
  try {
    log('finding (or building, once) the Kubernetes binaries');
    const binaries = ensureBinaries();
    const nodeBinaries = ensureNodeBinaries();
    phase('binaries');
    log('building (or finding) the pause image');
    const pauseImage = await buildPauseImage(defaultCacheDir());
    phase('pauseImage');

    const env = await createBridge(names, (slot) => planEnvironment(stateDir, nodeCount, slot));
    log(`bridge ${env.bridge} ${env.hostIp}/24, services ${env.serviceCidr}, pods ${env.clusterCidr}`);
    const credentials = new Map(env.nodes.map((n) => [n.name, nodeCredentials(n)]));
    cp = await ControlPlane.start({
      dir: join(stateDir, 'controlplane'),
      bindAddress: env.hostIp,
      serviceCidr: env.serviceCidr,
      nodes: { tokens: [...credentials.values()].flatMap((c) => [c.kubelet, c.kubeProxy]) },
    });
    const controlPlane = cp;
    log(`control plane up at ${cp.server}`);
    phase('controlPlane');

    recordKernelTunables();
    const images = [pauseImage, ...(opts.images ?? [])];
    await Promise.all(
      env.nodes.map(async (plan) => {
        const credential = credentials.get(plan.name);
        if (!credential) throw new Error(`no credentials for ${plan.name}`);
        const ctx = { env, binaries: nodeBinaries, server: controlPlane.server, caPath: controlPlane.caPath, log };
        nodes.push(await ClusterNode.start({ ...ctx, images, credentials: credential }, plan));
      }),
    );
    await addPodRoutes(env);
    if (opts.guestNetwork) {
      await createGuestNetwork(env, opts.guestNetwork);
      log(`guest network ${opts.guestNetwork}: ${env.guestCidr}, gateway ${env.guestGateway} on ${env.guestBridge}`);
    }
    phase('nodes');
    await waitUntilReady(controlPlane, nodes, log);
    phase('ready');

    const kubeconfig = join(stateDir, 'kubeconfig');
    copyFileSync(cp.kubeconfigPath, kubeconfig);
    const clusterEnv = {
      KUBECONFIG: kubeconfig,
      PATH: `${dirname(binaries.kubectl)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    };
    writeFileSync(
      join(stateDir, 'env.sh'),
      `export KUBECONFIG=${kubeconfig}\nexport PATH=${dirname(binaries.kubectl)}:$PATH\n`,
    );
    return {
      kubeconfig,
      server: cp.server,
      nodes: env.nodes.map((n) => ({
        name: n.name,
        ip: n.ip,
        netns: n.netnsPath,
        podCidr: n.podCidr,
        containerdSocket: containerdPaths(join(stateDir, 'nodes', n.name), join(env.runDir, n.name)).socket,
      })),
      env: clusterEnv,
      kubectlPath: binaries.kubectl,
      helmPath: binaries.helm,
      pauseImage,
      ...(opts.guestNetwork
        ? { guestNetwork: { name: opts.guestNetwork, cidr: env.guestCidr, gateway: env.guestGateway } }
        : {}),
      stateDir,
      kubectl: (args, input) => controlPlane.kubectl(args, input),
      memory: () => nodes.map((n) => ({ node: n.plan.name, ...n.memoryKiB() })),
      timings,
      stop: () => stop(),
    };
  } catch (err) {
    // The logs stay for a post-mortem; the next start in this directory removes them.
    await stop(true).catch((cleanupErr: unknown) => log((cleanupErr as Error).message));
    throw new Error(`${(err as Error).message}\n(the cluster was removed; its logs are kept in ${stateDir})`, {
      cause: err,
    });
  }
}

/**
 * Every node registered and Ready, with its pod CIDR recorded, and the default namespace
 * ready for pods (its service account and the cluster CA ConfigMap exist). A kubelet that
 * exits meanwhile is started again a few times; any other exit fails the start at once.
 */
async function waitUntilReady(cp: ControlPlane, nodes: ClusterNode[], log: (line: string) => void): Promise<void> {
  await waitFor(
    `${nodes.length} node(s) to register and become Ready (logs: <state-dir>/nodes/<node>/logs/)`,
    async () => {
      for (const n of nodes) {
        const revived = n.reviveKubelet();
        if (revived) log(`restarting ${revived.name}: ${describeExit(revived, 8)}`);
      }
      // Any other daemon that exited will not come back by itself: say why now, not after the deadline.
      const dead = nodes.map((n) => n.exited()).find((p) => p);
      if (dead) throw new GiveUp(describeExit(dead, 8));
      const out = cp.kubectl([
        '--request-timeout=10s',
        'get',
        'nodes',
        '-o',
        'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
      ]);
      const ready = new Set(
        out
          .split('\n')
          .filter((l) => l.endsWith('=True'))
          .map((l) => l.split('=')[0]),
      );
      return nodes.every((n) => ready.has(n.plan.name)) ? true : undefined;
    },
    180_000,
    1_000,
  );
  // The kubelet cannot set its own spec.podCIDR; record the range its CNI configuration uses.
  for (const n of nodes) {
    const current = cp.kubectl(['get', 'node', n.plan.name, '-o', 'jsonpath={.spec.podCIDR}']).trim();
    if (!current)
      cp.kubectl([
        'patch',
        'node',
        n.plan.name,
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { podCIDR: n.plan.podCidr, podCIDRs: [n.plan.podCidr] } }),
      ]);
  }
  await waitFor(
    'the default namespace to be ready for pods (service account and kube-root-ca.crt)',
    async () => {
      cp.kubectl(['--request-timeout=10s', 'get', 'serviceaccount', 'default', '-n', 'default']);
      cp.kubectl(['--request-timeout=10s', 'get', 'configmap', 'kube-root-ca.crt', '-n', 'default']);
      return true;
    },
    60_000,
  );
}

/** What a cluster in this state directory left on this machine: empty after stop(). */
export function clusterLeftovers(stateDir: string): Promise<string[]> {
  return leftovers(environmentNames(realpathSync(resolve(stateDir))));
}
