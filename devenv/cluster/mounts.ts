// Mounts the nodes leave on this machine: containers' root filesystems, pods' volumes (the
// kubelet mounts service-account tokens as tmpfs), pod network namespaces. All of them sit
// under the environment's directories, so a cleanup finds them by path.
import { readFileSync } from 'node:fs';
import { unescapeMount } from './cgroups.js';
import { tryRun } from './exec.js';

export function mountPointsUnder(prefixes: string[]): string[] {
  const points = new Set<string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (!mountPoint) continue;
    const path = unescapeMount(mountPoint);
    if (prefixes.some((p) => path === p || path.startsWith(`${p}/`))) points.add(path);
  }
  return [...points];
}

/** Unmounts everything under the prefixes, deepest first; a busy mount is detached (lazy) instead. */
export async function unmountUnder(prefixes: string[]): Promise<string[]> {
  // A path may be mounted more than once (stacked); go round until nothing is left.
  for (let round = 0; round < 5; round++) {
    const points = mountPointsUnder(prefixes).sort((a, b) => b.length - a.length);
    if (points.length === 0) return [];
    for (const p of points)
      if (!(await tryRun('umount', [p], { timeoutMs: 10_000 }))) await tryRun('umount', ['-l', p]);
  }
  return mountPointsUnder(prefixes);
}
