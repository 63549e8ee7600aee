// kubenova installed the way users install it: its image built here (devenv/images), loaded into
// every node's containerd, and `helm install charts/kubenova` with the libvirt driver onto the
// real-node cluster; ready when the operator has a leader and every node has a Ready ComputeNode.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../components.js';
import { buildKubenovaImage } from '../images/kubenova.js';
import type { ImageArchive } from '../images/oci.js';
import { defaultCacheDir } from '../images/paths.js';
import { startCluster, type Cluster, type ClusterOptions } from './cluster.js';
import { waitFor } from './exec.js';

export const RELEASE = 'kubenova';
export const RELEASE_NAMESPACE = 'kubenova-system';
export const CHART = join(repoRoot, 'charts', 'kubenova');
/** The Network the environment carries between its nodes and this machine (docs/networking.md). */
export const GUEST_NETWORK = 'guests';

/** `localhost/kubenova:abc` -> the chart's image.repository and image.tag. */
export function imageValues(ref: string): { repository: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  if (colon <= ref.lastIndexOf('/')) throw new Error(`image reference ${ref} has no tag`);
  return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

/** The --set flags the cluster installs with: the local image, never pulled, driving real VMs. */
export function releaseValues(image: Pick<ImageArchive, 'ref'>, extra: Record<string, string> = {}): string[] {
  const { repository, tag } = imageValues(image.ref);
  const values: Record<string, string> = {
    'image.repository': repository,
    'image.tag': tag,
    'image.pullPolicy': 'Never',
    'nodeAgent.driver': 'libvirt',
    ...extra,
  };
  return Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

export interface KubenovaCluster {
  cluster: Cluster;
  image: ImageArchive;
  /** The --set values it was installed with (an upgrade keeps them). */
  values: Record<string, string>;
  /** Runs helm against the cluster; resolves with stdout. */
  helm(args: string[]): string;
  timings: Record<string, number>;
}

/** Waits until the release serves: operator leader elected, one Ready ComputeNode per node. */
export async function waitForRelease(cluster: Cluster, timeoutMs = 300_000): Promise<void> {
  const nodes = cluster.nodes.map((n) => n.name).sort();
  await waitFor(
    `a Ready ComputeNode for each of ${nodes.join(', ')}`,
    async () => {
      const out = cluster.kubectl([
        'get',
        'computenodes',
        '-o',
        'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
      ]);
      const ready = out
        .split('\n')
        .filter((l) => l.endsWith('=True'))
        .map((l) => l.slice(0, -'=True'.length))
        .sort();
      return nodes.every((n) => ready.includes(n)) ? true : undefined;
    },
    timeoutMs,
  );
  await waitFor(
    'the operator to elect a leader',
    async () => {
      const holder = cluster.kubectl([
        ...['-n', RELEASE_NAMESPACE, 'get', 'lease', 'kubenova-operator'],
        ...['-o', 'jsonpath={.spec.holderIdentity}'],
      ]);
      return holder.trim() || undefined;
    },
    timeoutMs,
  );
}

/** Runs a client tool (helm, kubectl) and returns its stdout; a failure says what the tool said. */
export function runTool(tool: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  try {
    return execFileSync(tool, args, {
      env: opts.env,
      input: opts.input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    const name = tool.split('/').pop();
    throw new Error(`${name} ${args.slice(0, 3).join(' ')} failed: ${stderr.trim() || (err as Error).message}`, {
      cause: err,
    });
  }
}

/** helm against the cluster, as its admin. */
export function helmFor(cluster: Cluster): (args: string[]) => string {
  return (args) => runTool(cluster.helmPath, args, { env: { ...process.env, ...cluster.env } });
}

/**
 * Starts a real-node cluster with kubenova's image loaded and the chart installed with the
 * libvirt driver. `values` adds or overrides --set values.
 */
export async function startKubenovaCluster(
  opts: ClusterOptions & { values?: Record<string, string> },
): Promise<KubenovaCluster> {
  const log = opts.log ?? (() => undefined);
  const timings: Record<string, number> = {};
  let t = Date.now();
  log('building the kubenova image (cached when nothing changed)…');
  const image = await buildKubenovaImage(defaultCacheDir(), repoRoot);
  timings.image = (Date.now() - t) / 1000;
  const cluster = await startCluster({
    guestNetwork: GUEST_NETWORK,
    ...opts,
    images: [...(opts.images ?? []), image],
  });
  // The nodes share this machine's filesystem: instance disks and libvirt's state go under this
  // environment's own directory, so two environments (or an earlier one) never see each other's.
  // Guests' NICs join the agents' bridges in the nodes' namespaces (the guest network's uplinks).
  const values = {
    'nodeAgent.stateDir': join(cluster.stateDir, 'hostpath', 'kubenova'),
    'nodeAgent.network.enabled': 'true',
    ...opts.values,
  };
  try {
    t = Date.now();
    log(`helm install ${RELEASE} (image ${image.ref}, libvirt driver)…`);
    helmFor(cluster)([
      'install',
      RELEASE,
      CHART,
      '--namespace',
      RELEASE_NAMESPACE,
      '--create-namespace',
      ...releaseValues(image, values),
      '--wait',
      '--timeout',
      '10m',
    ]);
    await waitForRelease(cluster);
    timings.install = (Date.now() - t) / 1000;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return { cluster, image, values, helm: helmFor(cluster), timings: { ...cluster.timings, ...timings } };
}
