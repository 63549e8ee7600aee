import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FlavorSnapshot, ResourceAmounts } from '../../common/api/types.js';
import { DriverError } from './driver.js';
import type { DomainSpec } from './driver.js';
import { FAKE_DISK_BYTES_PER_GIB, FakeDriver, fakeDiskContent, fakeDiskSize } from './fake.js';

const CAPACITY: ResourceAmounts = { vcpus: 8, memoryMiB: 16384, diskGiB: 200 };
const SMALL: FlavorSnapshot = { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 2, ephemeralDiskGiB: 0 };
const spec = (uid: string, over: Partial<DomainSpec> = {}): DomainSpec => ({ uid, name: `default/${uid}`, flavor: SMALL, image: 'cirros', ...over });
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let stateDir: string;
let driver: FakeDriver;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kubenova-fake-driver-'));
  driver = new FakeDriver(stateDir, CAPACITY);
});

afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<DriverError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DriverError) return err;
    throw err;
  }
  throw new Error('expected DriverError');
}

describe('FakeDriver', () => {
  it('reports the capacity it was given', async () => {
    expect(driver.kind).toBe('fake');
    expect(await driver.capacity()).toEqual(CAPACITY);
  });

  it('spawn creates a running domain with a definition and a disk of the scaled size', async () => {
    const info = await driver.spawn(spec('u1'));
    expect(info).toEqual({ uid: 'u1', name: 'default/u1', flavor: SMALL, image: 'cirros', powerState: 'running', diskBytes: 2 * FAKE_DISK_BYTES_PER_GIB });
    const dir = driver.instanceDir('u1');
    expect(dir).toBe(join(stateDir, 'instances', 'u1'));
    expect((await readdir(dir)).sort()).toEqual(['disk.img', 'domain.json']);
    const def: unknown = JSON.parse(await readFile(join(dir, 'domain.json'), 'utf8'));
    expect(def).toMatchObject({ uid: 'u1', name: 'default/u1', flavor: SMALL, image: 'cirros', powerState: 'running' });
    expect(def).toHaveProperty('marker', expect.stringMatching(/^[0-9a-f]{32}$/));
    expect(def).toHaveProperty('createdAt', expect.any(String));
  });

  it('gives a 0 GiB root disk a one-unit image', async () => {
    const info = await driver.spawn(spec('u0', { flavor: { ...SMALL, rootDiskGiB: 0 } }));
    expect(info.diskBytes).toBe(FAKE_DISK_BYTES_PER_GIB);
    expect(fakeDiskSize(0)).toBe(FAKE_DISK_BYTES_PER_GIB);
  });

  it('spawn is idempotent: spawning again returns the same domain without recreating it', async () => {
    await driver.spawn(spec('u1'));
    const marker = (await driver.guestReport('u1'))?.marker;
    const again = await driver.spawn(spec('u1'));
    expect(again.powerState).toBe('running');
    expect((await driver.guestReport('u1'))?.marker).toBe(marker);
    expect(await driver.list()).toHaveLength(1);
  });

  it('spawn of a stopped domain starts it and keeps its first-boot marker', async () => {
    await driver.spawn(spec('u1'));
    const marker = (await driver.guestReport('u1'))?.marker;
    await driver.powerOff('u1');
    expect((await driver.spawn(spec('u1'))).powerState).toBe('running');
    expect((await driver.guestReport('u1'))?.marker).toBe(marker);
  });

  it('operations on one uid apply in call order, so a destroy issued after a slow spawn leaves no domain', async () => {
    const slow = new FakeDriver(stateDir, CAPACITY, { spawnDelayMs: 50 });
    const spawned = slow.spawn(spec('u1'));
    await slow.destroy('u1');
    await spawned;
    expect(await slow.list()).toEqual([]);
  });

  it('power off and on are idempotent and keep the first-boot marker across power cycles', async () => {
    await driver.spawn(spec('u1'));
    const marker = (await driver.guestReport('u1'))?.marker;
    expect((await driver.powerOff('u1')).powerState).toBe('shutdown');
    expect((await driver.powerOff('u1')).powerState).toBe('shutdown');
    expect((await driver.get('u1'))?.powerState).toBe('shutdown');
    expect((await driver.powerOn('u1')).powerState).toBe('running');
    expect((await driver.powerOn('u1')).powerState).toBe('running');
    expect((await driver.guestReport('u1'))?.marker).toBe(marker);
  });

  it('powering a domain that does not exist is a DriverError naming the operation and uid', async () => {
    const err = await rejection(driver.powerOn('missing'));
    expect(err.operation).toBe('powerOn');
    expect(err.uid).toBe('missing');
    expect(err.message).toBe('powerOn missing: no such domain');
  });

  it('guestReport shows the flavor and marker while running and nothing while stopped', async () => {
    await driver.spawn(spec('u1'));
    const report = await driver.guestReport('u1');
    expect(report).toEqual({ vcpus: 1, memoryKiB: 2048 * 1024, diskBytes: 2 * 1024 ** 3, marker: expect.stringMatching(/^[0-9a-f]{32}$/) });
    await driver.powerOff('u1');
    expect(await driver.guestReport('u1')).toBeUndefined();
    expect(await driver.guestReport('missing')).toBeUndefined();
  });

  it('destroy removes the domain and all its files including <uid>_resize, and is safe to repeat', async () => {
    await driver.spawn(spec('u1'));
    await driver.spawn(spec('u2'));
    const resizeDir = `${driver.instanceDir('u1')}_resize`;
    await mkdir(resizeDir);
    await writeFile(join(resizeDir, 'disk.img'), 'old');
    await driver.destroy('u1');
    await driver.destroy('u1');
    await driver.destroy('never-existed');
    expect(await driver.get('u1')).toBeUndefined();
    expect(await readdir(join(stateDir, 'instances'))).toEqual(['u2']);
  });

  it('list returns every complete domain sorted by uid and ignores resize backups and half-made directories', async () => {
    expect(await driver.list()).toEqual([]);
    await driver.spawn(spec('u2'));
    await driver.spawn(spec('u1'));
    await mkdir(`${driver.instanceDir('u1')}_resize`);
    await mkdir(join(stateDir, 'instances', 'u3'));
    expect((await driver.list()).map((d) => d.uid)).toEqual(['u1', 'u2']);
  });

  it('domains survive a restart: a new driver on the same directory lists them with their state', async () => {
    await driver.spawn(spec('u1'));
    await driver.spawn(spec('u2', { image: 'tiny' }));
    await driver.powerOff('u2');
    const marker = (await driver.guestReport('u1'))?.marker;
    const restarted = new FakeDriver(stateDir, CAPACITY);
    expect(await restarted.list()).toEqual(await driver.list());
    expect((await restarted.get('u2'))?.powerState).toBe('shutdown');
    expect((await restarted.guestReport('u1'))?.marker).toBe(marker);
  });

  it('two spawns of the same uid produce identical disk bytes, and another uid different ones', async () => {
    await driver.spawn(spec('u1'));
    const first = await readFile(join(driver.instanceDir('u1'), 'disk.img'));
    await driver.destroy('u1');
    const otherDir = await mkdtemp(join(tmpdir(), 'kubenova-fake-driver-'));
    try {
      const other = new FakeDriver(otherDir, CAPACITY);
      await other.spawn(spec('u1'));
      await driver.spawn(spec('u1'));
      const second = await readFile(join(driver.instanceDir('u1'), 'disk.img'));
      const third = await readFile(join(other.instanceDir('u1'), 'disk.img'));
      expect(sha256(second)).toBe(sha256(first));
      expect(sha256(third)).toBe(sha256(first));
      expect(first.equals(fakeDiskContent('u1', 0, first.length))).toBe(true);
      expect(first.equals(fakeDiskContent('u2', 0, first.length))).toBe(false);
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
  });

  it('disk content is a counter-mode SHA-256 stream, so any slice matches the whole', () => {
    const whole = fakeDiskContent('u1', 0, 200);
    expect(whole.subarray(0, 32).equals(createHash('sha256').update('u1:0').digest())).toBe(true);
    expect(fakeDiskContent('u1', 45, 100).equals(whole.subarray(45, 145))).toBe(true);
  });

  it('resizeDisk appends deterministic bytes without changing existing ones, as if spawned at the new size', async () => {
    await driver.spawn(spec('u1'));
    const disk = join(driver.instanceDir('u1'), 'disk.img');
    const before = await readFile(disk);
    const info = await driver.resizeDisk('u1', 5);
    expect(info.diskBytes).toBe(5 * FAKE_DISK_BYTES_PER_GIB);
    const after = await readFile(disk);
    expect(after.subarray(0, before.length).equals(before)).toBe(true);
    expect(after.equals(fakeDiskContent('u1', 0, 5 * FAKE_DISK_BYTES_PER_GIB))).toBe(true);
  });

  it('resizeDisk never shrinks a disk', async () => {
    await driver.spawn(spec('u1', { flavor: { ...SMALL, rootDiskGiB: 4 } }));
    const disk = join(driver.instanceDir('u1'), 'disk.img');
    const before = await readFile(disk);
    expect((await driver.resizeDisk('u1', 1)).diskBytes).toBe(4 * FAKE_DISK_BYTES_PER_GIB);
    expect((await readFile(disk)).equals(before)).toBe(true);
  });

  it('resizeDisk of a domain that does not exist is a DriverError', async () => {
    expect((await rejection(driver.resizeDisk('missing', 4))).operation).toBe('resizeDisk');
  });

  it('leaves no temporary files behind after spawn, power cycles and resize', async () => {
    await driver.spawn(spec('u1'));
    await driver.powerOff('u1');
    await driver.powerOn('u1');
    await driver.resizeDisk('u1', 3);
    expect((await readdir(driver.instanceDir('u1'))).sort()).toEqual(['disk.img', 'domain.json']);
  });

  it('a spawn of the failing image throws DriverError and leaves no domain behind', async () => {
    const failing = new FakeDriver(stateDir, CAPACITY, { failSpawnForImage: 'broken' });
    const err = await rejection(failing.spawn(spec('u1', { image: 'broken' })));
    expect(err.operation).toBe('spawn');
    expect(err.uid).toBe('u1');
    expect(await failing.get('u1')).toBeUndefined();
    expect(await failing.list()).toEqual([]);
    expect((await failing.spawn(spec('u2'))).powerState).toBe('running');
  });

  it('spawn takes the configured boot time, and a repeat spawn of a running domain does not', async () => {
    const slow = new FakeDriver(stateDir, CAPACITY, { spawnDelayMs: 200 });
    let t = performance.now();
    await slow.spawn(spec('u1'));
    expect(performance.now() - t).toBeGreaterThanOrEqual(190);
    t = performance.now();
    await slow.spawn(spec('u1'));
    expect(performance.now() - t).toBeLessThan(190);
  });

  it('rejects a uid that could escape the instances directory or clash with a resize backup', async () => {
    for (const uid of ['../etc', 'a/b', '.hidden', 'u1_resize', '']) {
      expect((await rejection(driver.spawn(spec(uid)))).operation).toBe('spawn');
      expect(() => driver.instanceDir(uid)).toThrow(DriverError);
    }
  });

  it('reports a corrupt definition instead of silently hiding the domain', async () => {
    await driver.spawn(spec('u1'));
    await writeFile(join(driver.instanceDir('u1'), 'domain.json'), '{"uid":"u1"');
    await expect(driver.get('u1')).rejects.toThrow(DriverError);
    await expect(driver.list()).rejects.toThrow(/not a valid domain definition/);
  });
});
