// Where e2e/real-nodes.test.ts runs: by default on `npm run cluster`'s real nodes, started and
// removed by the suite; with KUBENOVA_E2E_KUBECONFIG (e2e/kind/run.sh) on that cluster, where
// the chart was installed with the libvirt driver before the suite started.
import type { GuestNetworkInfo } from '../../devenv/cluster/cluster.js';
import { startKubenovaCluster, RELEASE, RELEASE_NAMESPACE, runTool } from '../../devenv/cluster/kubenova.js';
import { externalKubeconfig } from './mode.js';

export interface RealNodes {
  kubeconfig: string;
  /** The nodes that run a node agent. */
  nodes: string[];
  /** The image the release runs and the --set values it was installed with. */
  image: { ref: string };
  values: Record<string, string>;
  /** A network whose guests this machine reaches (the local environment's); none on an external cluster. */
  guestNetwork?: GuestNetworkInfo;
  /** Each node's network namespace (for `nsenter --net=`), on the local environment only. */
  nodeNetns?: Record<string, string>;
  kubectl(args: string[], input?: string): string;
  helm(args: string[]): string;
  stop(): Promise<void>;
}

/** `npm run cluster`'s nodes with kubenova installed, in `stateDir`; stop() removes them. */
export async function localRealNodes(stateDir: string, log: (line: string) => void): Promise<RealNodes> {
  const env = await startKubenovaCluster({ nodes: 2, stateDir, log });
  log(`timings ${JSON.stringify(env.timings)}`);
  log(`node memory ${JSON.stringify(env.cluster.memory())}`);
  return {
    kubeconfig: env.cluster.kubeconfig,
    nodes: env.cluster.nodes.map((n) => n.name),
    image: env.image,
    values: env.values,
    ...(env.cluster.guestNetwork ? { guestNetwork: env.cluster.guestNetwork } : {}),
    nodeNetns: Object.fromEntries(env.cluster.nodes.map((n) => [n.name, n.netns])),
    kubectl: (args, input) => env.cluster.kubectl(args, input),
    helm: env.helm,
    stop: () => env.cluster.stop(),
  };
}

/** The external cluster's release, as e2e/kind/run.sh installed it. */
export function externalRealNodes(kubeconfig: string): RealNodes {
  const kubectlPath = process.env.KUBENOVA_E2E_KUBECTL ?? 'kubectl';
  const helmPath = process.env.KUBENOVA_E2E_HELM ?? 'helm';
  const kubectl = (args: string[], input?: string) =>
    runTool(kubectlPath, ['--kubeconfig', kubeconfig, ...args], { input });
  const helm = (args: string[]) => runTool(helmPath, ['--kubeconfig', kubeconfig, ...args]);
  const flat: Record<string, string> = {};
  const flatten = (prefix: string, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, inner] of Object.entries(v)) flatten(prefix ? `${prefix}.${k}` : k, inner);
    } else flat[prefix] = String(v);
  };
  flatten('', JSON.parse(helm(['get', 'values', RELEASE, '--namespace', RELEASE_NAMESPACE, '-o', 'json'])));
  const nodes = kubectl([
    ...['-n', RELEASE_NAMESPACE, 'get', 'pods', '-l', 'app.kubernetes.io/component=node-agent'],
    ...['-o', 'jsonpath={.items[*].spec.nodeName}'],
  ])
    .split(' ')
    .filter(Boolean)
    .sort();
  return {
    kubeconfig,
    nodes,
    image: { ref: `${flat['image.repository']}:${flat['image.tag']}` },
    values: flat,
    kubectl,
    helm,
    stop: async () => undefined,
  };
}

export async function realNodes(stateDir: string, log: (line: string) => void): Promise<RealNodes> {
  return externalKubeconfig ? externalRealNodes(externalKubeconfig) : localRealNodes(stateDir, log);
}
