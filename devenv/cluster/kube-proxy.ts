// A node's kube-proxy in iptables mode, in the node's network namespace: its Service rules
// live in that namespace's tables and go with it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, type ManagedProcess } from '../controlplane/processes.js';
import { inNetns } from './exec.js';
import type { EnvironmentPlan, NodePlan } from './plan.js';

export interface KubeProxyPaths {
  kubeconfig: string;
  log: string;
}

export function kubeProxyPaths(nodeDir: string): KubeProxyPaths {
  return {
    kubeconfig: join(nodeDir, 'kube-proxy.kubeconfig'),
    log: join(nodeDir, 'logs', 'kube-proxy.log'),
  };
}

export function kubeProxyArgs(env: EnvironmentPlan, node: NodePlan, paths: KubeProxyPaths): string[] {
  return [
    `--kubeconfig=${paths.kubeconfig}`,
    `--hostname-override=${node.name}`,
    `--bind-address=${node.ip}`,
    '--proxy-mode=iptables',
    `--cluster-cidr=${env.clusterCidr}`,
    '--healthz-bind-address=127.0.0.1:10256',
    '--metrics-bind-address=127.0.0.1:10249',
    // Conntrack limits can be set only from this machine's first namespace: leave them as they are.
    '--conntrack-max-per-core=0',
    '--v=1',
  ];
}

export function startKubeProxy(
  kubeProxy: string,
  env: EnvironmentPlan,
  node: NodePlan,
  paths: KubeProxyPaths,
): ManagedProcess {
  mkdirSync(join(paths.log, '..'), { recursive: true });
  const cmd = inNetns(node.netnsPath, kubeProxy, kubeProxyArgs(env, node, paths));
  return startProcess({ name: `${node.name}/kube-proxy`, ...cmd, logFile: paths.log });
}
