import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cgroupCpuLimit, detectHostCapacity, type HostCapacitySources } from './host-capacity.js';

const GiB = 1024 ** 3;
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'kubenova-capacity-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** Writes files under the fake root: /proc/self/cgroup, /proc/self/mountinfo, cgroup files. */
function files(tree: Record<string, string>): void {
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

const mountinfoV2 = (mountRoot = '/') =>
  `24 30 0:22 / /proc rw,nosuid - proc proc rw\n` +
  `30 1 0:27 ${mountRoot} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n`;
const mountinfoV1 = (mountRoot: string) =>
  `40 35 0:35 ${mountRoot} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n` +
  `41 35 0:36 ${mountRoot} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n`;

/** A machine with `cpus` CPUs, `memory` bytes and a 100 GiB filesystem. */
const machine = (cpus: number, memory = 16 * GiB): HostCapacitySources => ({
  root,
  availableParallelism: () => cpus,
  totalMemoryBytes: () => memory,
  statfs: async () => ({ blocks: (100 * GiB) / 4096, bsize: 4096 }),
});

describe('detectHostCapacity', () => {
  it('offers every CPU the agent may run on when no cgroup sets a CPU quota', async () => {
    files({
      '/proc/self/cgroup': '0::/\n',
      '/proc/self/mountinfo': mountinfoV2(),
      '/sys/fs/cgroup/cpu.max': 'max 100000\n',
    });
    expect(await detectHostCapacity(join(root, 'state'), machine(6))).toEqual({
      vcpus: 6,
      memoryMiB: 16384,
      diskGiB: 100,
    });
  });

  it("lowers the CPUs to its own cgroup v2 quota, rounded up (a container's private cgroup namespace)", async () => {
    files({
      '/proc/self/cgroup': '0::/\n',
      '/proc/self/mountinfo': mountinfoV2(),
      '/sys/fs/cgroup/cpu.max': '150000 100000\n',
    });
    expect((await detectHostCapacity(root, machine(8))).vcpus).toBe(2);
  });

  it('takes the tightest quota among the cgroup and its ancestors (cgroup v2, no namespace)', async () => {
    files({
      '/proc/self/cgroup': '0::/kubepods/pod1/ctr\n',
      '/proc/self/mountinfo': mountinfoV2(),
      '/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max': 'max 100000\n',
      '/sys/fs/cgroup/kubepods/pod1/cpu.max': '100000 100000\n',
      '/sys/fs/cgroup/kubepods/cpu.max': '400000 100000\n',
      '/sys/fs/cgroup/cpu.max': 'max 100000\n',
    });
    expect(await cgroupCpuLimit(root)).toBe(1);
    expect((await detectHostCapacity(root, machine(4))).vcpus).toBe(1);
  });

  it("reads a cgroup v1 container's quota where the container sees its own cgroup as the mount's root", async () => {
    files({
      '/proc/self/cgroup': '5:memory:/kubepods/pod1/ctr\n4:cpu,cpuacct:/kubepods/pod1/ctr\n0::/\n',
      '/proc/self/mountinfo': mountinfoV1('/kubepods/pod1/ctr'),
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '300000\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    expect(await cgroupCpuLimit(root)).toBe(3);
    expect((await detectHostCapacity(root, machine(16))).vcpus).toBe(3);
    // CPU affinity (a cpuset) tighter than the quota wins.
    expect((await detectHostCapacity(root, machine(2))).vcpus).toBe(2);
  });

  it('treats a cgroup v1 quota of -1 as no limit', async () => {
    files({
      '/proc/self/cgroup': '4:cpu,cpuacct:/\n',
      '/proc/self/mountinfo': mountinfoV1('/'),
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    expect(await cgroupCpuLimit(root)).toBeUndefined();
    expect((await detectHostCapacity(root, machine(12))).vcpus).toBe(12);
  });

  it('falls back to the CPU count without readable cgroup files, and never offers less than one CPU', async () => {
    expect(await cgroupCpuLimit(root)).toBeUndefined();
    expect((await detectHostCapacity(root, machine(3))).vcpus).toBe(3);
    files({
      '/proc/self/cgroup': '0::/\n',
      '/proc/self/mountinfo': mountinfoV2(),
      '/sys/fs/cgroup/cpu.max': '10000 100000\n',
    });
    expect((await detectHostCapacity(root, machine(3))).vcpus).toBe(1);
  });

  it("reports the machine's total memory in whole MiB", async () => {
    expect((await detectHostCapacity(root, machine(1, 8 * GiB + 123_456))).memoryMiB).toBe(8192);
  });

  it('measures the filesystem of the instance directory, or of its nearest existing parent', async () => {
    const asked: string[] = [];
    const sources: HostCapacitySources = {
      ...machine(1),
      statfs: async (p) => {
        asked.push(p);
        return statfs(p);
      },
    };
    const dir = join(root, 'state', 'node-a', 'instances');
    const real = await statfs(root);
    expect((await detectHostCapacity(dir, sources)).diskGiB).toBe(Math.floor((real.blocks * real.bsize) / GiB));
    expect(asked).toEqual([dir, join(root, 'state', 'node-a'), join(root, 'state'), root]);
  });
});
