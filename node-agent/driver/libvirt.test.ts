// The libvirt driver's parts that need no libvirtd: capacity (measured, or overridden per
// resource) and the answer check the agent waits on. Domains are proven against a real
// libvirtd in e2e/libvirt.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LibvirtDriver } from './libvirt.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kubenova-libvirt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const MACHINE = { vcpus: 12, memoryMiB: 64_000, diskGiB: 900 };

describe('LibvirtDriver capacity', () => {
  it('measures the machine once, for the filesystem of its instance directories', async () => {
    const asked: string[] = [];
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: join(dir, 'node-a'),
      images: {},
      detectCapacity: async (d) => {
        asked.push(d);
        return MACHINE;
      },
    });
    expect(await driver.capacity()).toEqual(MACHINE);
    expect(await driver.capacity()).toEqual(MACHINE);
    expect(asked).toEqual([join(dir, 'node-a', 'instances')]);
  });

  it('keeps each resource given (a flag or chart value) and measures only the others', async () => {
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: dir,
      images: {},
      capacity: { memoryMiB: 4096 },
      detectCapacity: async () => MACHINE,
    });
    expect(await driver.capacity()).toEqual({ vcpus: 12, memoryMiB: 4096, diskGiB: 900 });
  });

  it('does not measure at all when every resource is given', async () => {
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: dir,
      images: {},
      capacity: { vcpus: 2, memoryMiB: 2048, diskGiB: 20 },
      detectCapacity: () => Promise.reject(new Error('measured')),
    });
    expect(await driver.capacity()).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 20 });
  });

  it('measures again after a failed measurement', async () => {
    let calls = 0;
    const driver = new LibvirtDriver({
      host: 'node-a',
      stateDir: dir,
      images: {},
      detectCapacity: async () => {
        calls++;
        if (calls === 1) throw new Error('statfs failed');
        return MACHINE;
      },
    });
    await expect(driver.capacity()).rejects.toThrow(/statfs failed/);
    expect(await driver.capacity()).toEqual(MACHINE);
  });
});

describe('LibvirtDriver answers', () => {
  it('is undefined when virsh reaches libvirtd, and says which URI failed otherwise', async () => {
    const ok = new LibvirtDriver({ host: 'node-a', stateDir: dir, images: {}, virsh: 'true' });
    expect(await ok.answers()).toBeUndefined();
    const uri = 'qemu:///system?socket=/nowhere/libvirt-sock';
    const down = new LibvirtDriver({ host: 'node-a', stateDir: dir, images: {}, uri, virsh: 'false' });
    expect(await down.answers()).toBe(`virsh -c ${uri} version failed on host node-a: exit 1`);
    const missing = new LibvirtDriver({ host: 'node-a', stateDir: dir, images: {}, virsh: join(dir, 'no-virsh') });
    expect(await missing.answers()).toMatch(/version failed on host node-a: cannot run .*no-virsh/);
  });
});
