// A node's kubelet: its own root directory, cgroup root, pod logs and address, talking to
// the node's containerd, in the node's network namespace.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, type ManagedProcess } from '../controlplane/processes.js';
import { inNetns } from './exec.js';
import type { NodePlan } from './plan.js';

export interface KubeletPaths {
  root: string;
  podLogs: string;
  config: string;
  kubeconfig: string;
  log: string;
}

export function kubeletPaths(nodeDir: string): KubeletPaths {
  return {
    root: join(nodeDir, 'kubelet'),
    podLogs: join(nodeDir, 'pod-logs'),
    config: join(nodeDir, 'kubelet-config.json'),
    kubeconfig: join(nodeDir, 'kubelet.kubeconfig'),
    log: join(nodeDir, 'logs', 'kubelet.log'),
  };
}

export function kubeletConfig(node: NodePlan, paths: KubeletPaths, caPath: string, runtimeSocket: string): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: node.ip,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    // The API server proxies logs and exec with its client certificate (signed by the
    // cluster CA); everyone else is checked against the API server.
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: caPath },
    },
    authorization: { mode: 'Webhook' },
    // This kind of machine has cgroup v1 and no systemd.
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    cgroupRoot: node.cgroupRoot,
    containerRuntimeEndpoint: `unix://${runtimeSocket}`,
    podLogsDir: paths.podLogs,
    volumePluginDir: join(paths.root, 'volume-plugins'),
    failSwapOn: false,
    // No cluster DNS here, and pods must not send queries to this machine's resolvers.
    resolvConf: '',
    // Images come from archives and cannot be pulled again: never collect them, and do not
    // evict for a disk that is merely fuller than a production node's would be.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: {
      'memory.available': '50Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
    },
    // Graceful node shutdown needs systemd's inhibitor locks.
    shutdownGracePeriod: '0s',
    rotateCertificates: false,
    serverTLSBootstrap: false,
  };
}

export function startKubelet(
  kubelet: string,
  node: NodePlan,
  paths: KubeletPaths,
  caPath: string,
  runtimeSocket: string,
): ManagedProcess {
  for (const dir of [paths.root, paths.podLogs, join(paths.log, '..')]) mkdirSync(dir, { recursive: true });
  writeFileSync(paths.config, `${JSON.stringify(kubeletConfig(node, paths, caPath, runtimeSocket), null, 2)}\n`);
  const cmd = inNetns(node.netnsPath, kubelet, [
    `--config=${paths.config}`,
    `--kubeconfig=${paths.kubeconfig}`,
    `--root-dir=${paths.root}`,
    `--cert-dir=${join(paths.root, 'pki')}`,
    `--hostname-override=${node.name}`,
    `--node-ip=${node.ip}`,
    '--v=1',
  ]);
  return startProcess({ name: `${node.name}/kubelet`, ...cmd, logFile: paths.log });
}
