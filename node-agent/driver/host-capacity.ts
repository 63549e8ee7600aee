// What a libvirt host really has, measured where the agent runs: the scheduler's capacity for
// a real hypervisor must be the machine's, not a configured number (Nova's libvirt driver reads
// the host the same way in get_available_resource).
//
// - vCPUs: the CPUs this process may run on (os.availableParallelism(), which honours CPU
//   affinity and so a cpuset), lowered to a CPU quota of its cgroup or an ancestor when that is
//   tighter (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up: a
//   fraction of a CPU is still time a guest can use, and a host always has at least one.
// - memory: the machine's total memory. Not a cgroup memory limit: in the Helm chart that limit
//   is the agent container's own, while the guests run in libvirtd's pod.
// - disk: the size of the filesystem holding the instance directories (statfs), since that is
//   where every root disk is written.
import { readFile, statfs } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, posix } from 'node:path';
import type { ResourceAmounts } from '../../common/api/types.js';
import { isNotFound } from './instance-dirs.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Where the measurements come from; tests replace them. */
export interface HostCapacitySources {
  /** Prefix of /proc and /sys/fs/cgroup paths (default '' — the real ones). */
  root?: string;
  availableParallelism?: () => number;
  totalMemoryBytes?: () => number;
  statfs?: (path: string) => Promise<{ blocks: number; bsize: number }>;
}

/** The machine's capacity for guests whose disks go under `diskDir` (which need not exist yet). */
export async function detectHostCapacity(diskDir: string, sources: HostCapacitySources = {}): Promise<ResourceAmounts> {
  const root = sources.root ?? '';
  const cpus = (sources.availableParallelism ?? availableParallelism)();
  const quota = await cgroupCpuLimit(root);
  const vcpus = Math.max(1, quota === undefined ? cpus : Math.min(cpus, Math.ceil(quota)));
  const memoryMiB = Math.floor((sources.totalMemoryBytes ?? totalmem)() / MiB);
  const fs = await statfsOfNearest(diskDir, sources.statfs ?? statfs);
  const diskGiB = Math.floor((fs.blocks * fs.bsize) / GiB);
  return { vcpus, memoryMiB, diskGiB };
}

/** statfs of `path`, or of its nearest existing ancestor: the directory is made only at the first spawn. */
async function statfsOfNearest(
  path: string,
  fn: (p: string) => Promise<{ blocks: number; bsize: number }>,
): Promise<{ blocks: number; bsize: number }> {
  for (let p = path; ; p = dirname(p)) {
    try {
      return await fn(p);
    } catch (err) {
      if (!isNotFound(err) || dirname(p) === p) throw err;
    }
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    // A file the kernel does not offer (no such controller, not permitted) means no limit known.
    if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'EACCES') return undefined;
    throw err;
  }
}

interface CgroupMount {
  /** The cgroup path mounted there (a container sees its own cgroup as the mount's root). */
  root: string;
  mountPoint: string;
  v2: boolean;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The cgroup v2 mount and the v1 mount of the cpu controller, from /proc/self/mountinfo. */
function cgroupMounts(mountinfo: string): { v1?: CgroupMount; v2?: CgroupMount } {
  const out: { v1?: CgroupMount; v2?: CgroupMount } = {};
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields...] - fstype source super-options
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fstype, , superOptions = ''] = right.split(' ');
    if (fields.length < 5) continue;
    const mount = { root: unescapeMountPath(fields[3]!), mountPoint: unescapeMountPath(fields[4]!) };
    if (fstype === 'cgroup2') out.v2 ??= { ...mount, v2: true };
    if (fstype === 'cgroup' && superOptions.split(',').includes('cpu')) out.v1 ??= { ...mount, v2: false };
  }
  return out;
}

/** This process's cgroup path in the v2 hierarchy and in the v1 hierarchy holding cpu, from /proc/self/cgroup. */
function cgroupPaths(procCgroup: string): { v1?: string; v2?: string } {
  const out: { v1?: string; v2?: string } = {};
  for (const line of procCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') out.v2 = m[3];
    else if (m[2]!.split(',').includes('cpu')) out.v1 = m[3];
  }
  return out;
}

/** `path` (a cgroup path from the hierarchy's root) relative to the part of the hierarchy a mount shows. */
function relativeToMount(mountRoot: string, path: string): string {
  if (mountRoot === '/') return path;
  if (path === mountRoot) return '/';
  if (path.startsWith(`${mountRoot}/`)) return path.slice(mountRoot.length);
  // A path outside the mounted part: the mount's root is the closest cgroup we can see.
  return '/';
}

/** The directories from this process's cgroup up to the mount's root, innermost first. */
function cgroupDirs(root: string, mount: CgroupMount, path: string): string[] {
  const dirs: string[] = [];
  for (let rel = posix.normalize(relativeToMount(mount.root, path)); ; rel = posix.dirname(rel)) {
    dirs.push(join(root, mount.mountPoint, rel));
    if (rel === '/' || rel === '.') break;
  }
  return dirs;
}

/** CPUs a limit file allows, or undefined for no limit. */
function v2Limit(cpuMax: string | undefined): number | undefined {
  const [quota, period] = (cpuMax ?? '').trim().split(/\s+/);
  if (!quota || quota === 'max' || !period) return undefined;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : undefined;
}

function v1Limit(quotaUs: string | undefined, periodUs: string | undefined): number | undefined {
  const q = Number((quotaUs ?? '').trim());
  const p = Number((periodUs ?? '').trim());
  // A quota of -1 is "no limit".
  return q > 0 && p > 0 ? q / p : undefined;
}

/**
 * The tightest CPU quota on this process's cgroup and its visible ancestors, in CPUs; undefined
 * when none is set or the cgroup files cannot be read.
 */
export async function cgroupCpuLimit(root = ''): Promise<number | undefined> {
  const [procCgroup, mountinfo] = await Promise.all([
    readIfExists(join(root, '/proc/self/cgroup')),
    readIfExists(join(root, '/proc/self/mountinfo')),
  ]);
  if (procCgroup === undefined || mountinfo === undefined) return undefined;
  const paths = cgroupPaths(procCgroup);
  const mounts = cgroupMounts(mountinfo);
  // A v1 cpu controller, when mounted, is the one that enforces quotas (hybrid hosts mount both).
  const mount = paths.v1 !== undefined && mounts.v1 ? mounts.v1 : paths.v2 !== undefined ? mounts.v2 : undefined;
  const path = mount?.v2 ? paths.v2 : paths.v1;
  if (!mount || path === undefined) return undefined;
  let tightest: number | undefined;
  for (const dir of cgroupDirs(root, mount, path)) {
    const limit = mount.v2
      ? v2Limit(await readIfExists(join(dir, 'cpu.max')))
      : v1Limit(await readIfExists(join(dir, 'cpu.cfs_quota_us')), await readIfExists(join(dir, 'cpu.cfs_period_us')));
    if (limit !== undefined && (tightest === undefined || limit < tightest)) tightest = limit;
  }
  return tightest;
}
