// What a cluster of real nodes needs from this machine, checked before anything is made so
// that a missing piece is named up front (and a test can say why it is skipped).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CNI_BIN_DIR } from './cni.js';

const COMMANDS = [
  'containerd',
  'containerd-shim-runc-v2',
  'runc',
  'ctr',
  'ip',
  'iptables',
  'nsenter',
  'setpriv',
  'umount',
];
const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];

function onPath(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Everything missing, each saying what to do; empty when the machine can run the cluster. */
export function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (namespaces, cgroups and mounts need it)');
  for (const c of COMMANDS) if (!onPath(c)) missing.push(`${c} (bash devenv/cluster/setup.sh installs it)`);
  for (const p of CNI_PLUGINS)
    if (!existsSync(`${CNI_BIN_DIR}/${p}`)) missing.push(`CNI plugin ${p} (bash devenv/cluster/setup.sh installs it)`);
  if (!existsSync('/sys/fs/cgroup')) missing.push('cgroups mounted at /sys/fs/cgroup');
  if (!onPath('go')) missing.push('go (to build kubelet, kube-proxy and kube-scheduler once)');
  return missing;
}
