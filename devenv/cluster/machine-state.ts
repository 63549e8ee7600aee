// What nodes change on the whole machine, outside any environment's own directories, and
// that the last environment to go puts back:
// - the kubelet sets a few kernel settings at start (vm.overcommit_memory=1, kernel.panic=10,
//   kernel.panic_on_oops=1), and an environment with a guest network turns on IPv4 forwarding
//   here (net.ipv4.ip_forward=1), so that nodes reach guests through this machine. The first
//   environment records the machine's values; the record is shared by every environment, so a
//   later one never takes the kubelet's (or another environment's) values for the machine's.
// - the kubelet, libcni, containerd's shims and `ip netns` create directories at fixed paths
//   (/var/lib/kubelet for the device-plugin socket every kubelet opens, /var/log/containers,
//   /var/lib/cni, /run/containerd/s, /run/netns with its bind mount). Each is removed only
//   once empty: another program may be using it.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tryRun } from './exec.js';
import { listProcesses } from './processes.js';

const KEYS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops', 'net/ipv4/ip_forward'];
const RECORD_DIR = '/run/kubenova';
const RECORD = `${RECORD_DIR}/kernel-tunables.json`;

/** Records the machine's values unless an earlier environment already did (its record holds the originals). */
export function recordKernelTunables(): void {
  mkdirSync(RECORD_DIR, { recursive: true });
  const values: Record<string, string> = {};
  for (const key of KEYS) values[key] = readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  try {
    writeFileSync(RECORD, JSON.stringify(values), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Puts the machine back as it was once no kubelet runs on it any more; otherwise leaves it to the last one. */
export async function restoreMachineState(): Promise<void> {
  if (listProcesses().some((p) => p.comm === 'kubelet')) return;
  restoreKernelTunables();
  // Every kubelet opens this socket at the same fixed path; none is left to use it.
  rmSync('/var/lib/kubelet/device-plugins/kubelet.sock', { force: true });
  for (const dir of [
    '/var/lib/kubelet/device-plugins',
    '/var/lib/kubelet',
    '/var/log/containers',
    '/var/lib/cni/results',
    '/var/lib/cni',
    '/run/containerd/s',
    RECORD_DIR,
  ])
    removeIfEmpty(dir);
  // `ip netns add` bind-mounts /run/netns onto itself; undo it when no namespace is left.
  // A plain umount fails while another namespace is mounted below it, so a race is harmless.
  if (existsSync('/run/netns') && readdirSync('/run/netns').length === 0) {
    await tryRun('umount', ['/run/netns']);
    removeIfEmpty('/run/netns');
  }
}

function restoreKernelTunables(): void {
  let values: Record<string, string>;
  try {
    values = JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, string>;
  } catch {
    return;
  }
  for (const key of KEYS) {
    const value = values[key];
    if (value !== undefined) writeFileSync(`/proc/sys/${key}`, value);
  }
  rmSync(RECORD, { force: true });
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not empty (someone else's files), or not there.
  }
}
