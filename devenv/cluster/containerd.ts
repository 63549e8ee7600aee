// A node's own containerd: its root, state and sockets apart from any other containerd on
// the machine, running in the node's network namespace, with the CRI settings this kind of
// machine needs and the images loaded from archives (there is no registry to pull from).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeExit, hasExited, startProcess, type ManagedProcess } from '../controlplane/processes.js';
import type { ImageArchive } from '../images/oci.js';
import { CNI_BIN_DIR, type CniPaths } from './cni.js';
import { inNetns, run, waitFor } from './exec.js';
import type { NodePlan } from './plan.js';

export interface ContainerdPaths {
  root: string;
  state: string;
  socket: string;
  config: string;
  log: string;
}

export function containerdPaths(nodeDir: string, nodeRunDir: string): ContainerdPaths {
  return {
    root: join(nodeDir, 'containerd'),
    // Runtime state and sockets under /run: socket paths must stay short.
    state: join(nodeRunDir, 'containerd'),
    socket: join(nodeRunDir, 'containerd.sock'),
    config: join(nodeDir, 'containerd.toml'),
    log: join(nodeDir, 'logs', 'containerd.log'),
  };
}

const toml = (s: string): string => JSON.stringify(s);

export function containerdConfig(node: NodePlan, paths: ContainerdPaths, cni: CniPaths, sandboxImage: string): string {
  return `version = 2
root = ${toml(paths.root)}
state = ${toml(paths.state)}
# Plugins that would write outside the node's directories or probe what this machine lacks.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = ${toml(paths.socket)}

[ttrpc]
  address = ${toml(`${paths.socket}.ttrpc`)}

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${toml(sandboxImage)}
  # The sandbox may not lower OOM scores here: without this, pod sandboxes fail to start.
  restrict_oom_score_adj = true
  # Pod network namespaces under the node's state, not in /run/netns beside everyone's.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${toml(join(paths.state, 'runc'))}
        # Shims outlive a killed containerd; in a cgroup of the environment a cleanup finds them.
        ShimCgroup = ${toml(node.shimCgroup)}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${toml(CNI_BIN_DIR)}
    conf_dir = ${toml(cni.confDir)}
    max_conf_num = 1
`;
}

export async function startContainerd(
  node: NodePlan,
  paths: ContainerdPaths,
  cni: CniPaths,
  sandboxImage: string,
): Promise<ManagedProcess> {
  for (const dir of [paths.root, paths.state, join(paths.log, '..')]) mkdirSync(dir, { recursive: true });
  writeFileSync(paths.config, containerdConfig(node, paths, cni, sandboxImage));
  const cmd = inNetns(node.netnsPath, 'containerd', ['--config', paths.config]);
  const proc = startProcess({ name: `${node.name}/containerd`, ...cmd, logFile: paths.log });
  await waitFor(
    `${node.name}: containerd's CRI plugin to load (see ${paths.log})`,
    async () => {
      if (hasExited(proc)) throw new Error(describeExit(proc, 8));
      const plugins = await ctr(paths, ['plugins', 'ls'], 5_000);
      const cri = plugins.split('\n').find((l) => /\bio\.containerd\.grpc\.v1\s+cri\b/.test(l));
      if (cri && !/\bok\s*$/.test(cri)) throw new Error(`containerd's CRI plugin did not load: ${cri.trim()}`);
      return cri ? true : undefined;
    },
    30_000,
    250,
  ).catch(async (err: unknown) => {
    await proc.stop('SIGTERM', 3_000);
    throw err;
  });
  return proc;
}

function ctr(paths: ContainerdPaths, args: string[], timeoutMs = 60_000): Promise<string> {
  return run('ctr', ['--address', paths.socket, ...args], {
    timeoutMs,
    hint: 'ctr comes with containerd: bash devenv/cluster/setup.sh',
  });
}

/** Imports each archive into the node's k8s.io namespace (where the CRI looks) and checks it is there by its name. */
export async function importImages(node: NodePlan, paths: ContainerdPaths, images: ImageArchive[]): Promise<void> {
  for (const image of images) {
    await ctr(paths, ['-n', 'k8s.io', 'images', 'import', image.archive], 300_000);
    const refs = (await ctr(paths, ['-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n').map((l) => l.trim());
    if (!refs.includes(image.ref))
      throw new Error(
        `${node.name}: importing ${image.archive} did not give an image named ${image.ref} (containerd has: ${refs.filter(Boolean).join(', ') || 'none'}); the archive's index must name it (org.opencontainers.image.ref.name)`,
      );
  }
}
