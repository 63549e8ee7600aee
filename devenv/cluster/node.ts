// One node: a network namespace on the environment bridge with its own cgroups, CNI
// configuration, containerd (with the images loaded), kubelet and kube-proxy.
import { join } from 'node:path';
import type { NodeBinaries } from '../controlplane/binaries.js';
import type { StaticToken } from '../controlplane/controlplane.js';
import { hasExited, type ManagedProcess } from '../controlplane/processes.js';
import type { ImageArchive } from '../images/oci.js';
import { createCgroup } from './cgroups.js';
import { writeCniConfig } from './cni.js';
import { containerdPaths, importImages, startContainerd } from './containerd.js';
import { newToken, writeTokenKubeconfig } from './kubeconfig.js';
import { kubeProxyPaths, startKubeProxy } from './kube-proxy.js';
import { kubeletPaths, startKubelet } from './kubelet.js';
import { createNodeNetwork } from './network.js';
import type { EnvironmentPlan, NodePlan } from './plan.js';
import { rssKiB } from './processes.js';

/** The identities a node's kubelet and kube-proxy use; the control plane must know them before it starts. */
export interface NodeCredentials {
  kubelet: StaticToken;
  kubeProxy: StaticToken;
}

export function nodeCredentials(node: NodePlan): NodeCredentials {
  return {
    // The Node authorizer and NodeRestriction recognise a kubelet by this user and group.
    kubelet: newToken(`system:node:${node.name}`, ['system:nodes']),
    // Bound to system:node-proxier by the API server's default RBAC.
    kubeProxy: newToken('system:kube-proxy', []),
  };
}

export interface NodeContext {
  env: EnvironmentPlan;
  binaries: NodeBinaries;
  server: string;
  caPath: string;
  /** The sandbox image first, then the extra images every node gets. */
  images: ImageArchive[];
  credentials: NodeCredentials;
  log: (line: string) => void;
}

/**
 * How often a node's kubelet that exited is started again before the node counts as failed. A
 * real node's kubelet runs under systemd with `Restart=always`; a kubelet can exit at start on
 * a transient condition and come up on the next try.
 */
const KUBELET_RESTARTS = 2;

export class ClusterNode {
  private kubeletRestarts = 0;

  private constructor(
    readonly plan: NodePlan,
    readonly dir: string,
    private readonly containerd: ManagedProcess,
    private kubelet: ManagedProcess,
    private readonly kubeProxy: ManagedProcess,
    private readonly restartKubelet: () => ManagedProcess,
  ) {}

  static async start(ctx: NodeContext, plan: NodePlan): Promise<ClusterNode> {
    const { env } = ctx;
    const dir = join(env.stateDir, 'nodes', plan.name);
    const [sandbox] = ctx.images;
    if (!sandbox) throw new Error('no sandbox (pause) image given');
    await createNodeNetwork(env, plan);
    createCgroup(plan.cgroupRoot);
    createCgroup(plan.shimCgroup);
    const cni = writeCniConfig(env.id, plan, dir);
    const ctrd = containerdPaths(dir, join(env.runDir, plan.name));
    const containerd = await startContainerd(plan, ctrd, cni, sandbox.ref);
    let kubelet: ManagedProcess | undefined;
    try {
      const started = Date.now();
      await importImages(plan, ctrd, ctx.images);
      ctx.log(
        `${plan.name}: ${ctx.images.length} image(s) imported in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      const kl = kubeletPaths(dir);
      writeTokenKubeconfig(kl.kubeconfig, ctx.server, ctx.caPath, ctx.credentials.kubelet.token);
      const launchKubelet = () => startKubelet(ctx.binaries.kubelet, plan, kl, ctx.caPath, ctrd.socket);
      kubelet = launchKubelet();
      const kp = kubeProxyPaths(dir);
      writeTokenKubeconfig(kp.kubeconfig, ctx.server, ctx.caPath, ctx.credentials.kubeProxy.token);
      const kubeProxy = startKubeProxy(ctx.binaries.kubeProxy, env, plan, kp);
      return new ClusterNode(plan, dir, containerd, kubelet, kubeProxy, launchKubelet);
    } catch (err) {
      await kubelet?.stop('SIGTERM', 3_000);
      await containerd.stop('SIGTERM', 3_000);
      throw err;
    }
  }

  get processes(): ManagedProcess[] {
    return [this.kubelet, this.kubeProxy, this.containerd];
  }

  /** Resident memory of the node's daemons (kubelet, containerd, kube-proxy), in KiB. */
  memoryKiB(): { kubelet: number; containerd: number; kubeProxy: number; total: number } {
    const kubelet = rssKiB(this.kubelet.pid);
    const containerd = rssKiB(this.containerd.pid);
    const kubeProxy = rssKiB(this.kubeProxy.pid);
    return { kubelet, containerd, kubeProxy, total: kubelet + containerd + kubeProxy };
  }

  /** Stops the daemons; what they leave (containers, mounts, namespaces) goes with the environment's teardown. */
  async stop(): Promise<void> {
    await Promise.all([this.kubelet.stop('SIGTERM', 5_000), this.kubeProxy.stop('SIGTERM', 5_000)]);
    await this.containerd.stop('SIGTERM', 5_000);
  }

  /** The first process of the node's daemons that has exited, if any. */
  exited(): ManagedProcess | undefined {
    return this.processes.find(hasExited);
  }

  /**
   * Starts the kubelet again when it has exited and restarts are left; returns the process
   * that exited, so the caller can say why (its log has both runs).
   */
  reviveKubelet(): ManagedProcess | undefined {
    if (!hasExited(this.kubelet) || this.kubeletRestarts >= KUBELET_RESTARTS) return undefined;
    const dead = this.kubelet;
    this.kubeletRestarts += 1;
    this.kubelet = this.restartKubelet();
    return dead;
  }
}
