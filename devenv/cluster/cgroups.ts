// The nodes' cgroups. With cgroup v1 the kubelet (cgroupDriver: cgroupfs) refuses a
// cgroupRoot that does not already exist in every hierarchy, so each node's is made here
// first, under one parent per environment; the same parent is how a cleanup finds every
// container and shim the environment ever started, even after its containerd died.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll } from './processes.js';

/** Mount points of every cgroup hierarchy (v1 controllers, named ones, and a v2 one if mounted). */
export function cgroupMounts(): { path: string; options: string }[] {
  const mounts: { path: string; options: string }[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // ... mountpoint ... - fstype source superoptions
    const [left = '', right = ''] = line.split(' - ');
    const [fstype = '', , superOptions = ''] = right.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const mountPoint = left.split(' ')[4];
    if (mountPoint) mounts.push({ path: unescapeMount(mountPoint), options: superOptions });
  }
  return mounts;
}

export function unescapeMount(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Creates the cgroup (and its parents) in every hierarchy; cpuset ones get their parent's CPUs and memory nodes. */
export function createCgroup(path: string): void {
  const mounts = cgroupMounts();
  if (mounts.length === 0) throw new Error('no cgroup hierarchy is mounted; the kubelet cannot run here');
  for (const mount of mounts) {
    let dir = mount.path;
    for (const part of path.split('/').filter(Boolean)) {
      const parent = dir;
      dir = join(dir, part);
      if (existsSync(dir)) continue;
      mkdirSync(dir);
      // A new v1 cpuset cgroup has no CPUs: nothing could run in it.
      if (mount.options.split(',').includes('cpuset'))
        for (const file of ['cpuset.cpus', 'cpuset.mems'])
          writeFileSync(join(dir, file), readFileSync(join(parent, file), 'utf8').trim() || '0');
    }
  }
}

/** Every process in the cgroup or below it, in any hierarchy. */
export function cgroupProcesses(path: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n'))
        if (line.trim()) pids.add(Number(line));
      for (const entry of readdirSync(dir, { withFileTypes: true }))
        if (entry.isDirectory()) walk(join(dir, entry.name));
    } catch {
      // Removed while we looked.
    }
  };
  for (const mount of cgroupMounts()) walk(join(mount.path, path));
  return [...pids];
}

/** Kills everything in the cgroup tree, then removes the tree from every hierarchy, deepest first. */
export async function removeCgroupTree(path: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let pids = cgroupProcesses(path); pids.length > 0; pids = cgroupProcesses(path)) {
    // A process may fork while we kill; go round until nothing is left.
    await killAll(pids, Math.max(1_000, deadline - Date.now()));
    if (Date.now() > deadline) throw new Error(`processes keep appearing in cgroup ${path}: ${pids.join(', ')}`);
  }
  const failures: string[] = [];
  const remove = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true }))
      if (entry.isDirectory()) remove(join(dir, entry.name));
    try {
      rmdirSync(dir);
    } catch (err) {
      failures.push(`${dir}: ${(err as Error).message}`);
    }
  };
  for (const mount of cgroupMounts()) remove(join(mount.path, path));
  if (failures.length > 0) throw new Error(`could not remove cgroups:\n${failures.join('\n')}`);
}

/** Directories of the cgroup tree still present in any hierarchy (for the tests' cleanliness check). */
export function leftoverCgroups(path: string): string[] {
  return cgroupMounts()
    .map((m) => join(m.path, path))
    .filter((dir) => existsSync(dir));
}
