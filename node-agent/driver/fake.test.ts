import { createCipheriv, createHash } from 'node:crypto';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import type { PathLike } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FlavorSnapshot, ResourceAmounts } from '../../common/api/types.js';
import { DriverError } from './driver.js';
import type { DomainSpec, MigrationExport, NicSpec } from './driver.js';
import type { FailStep } from '../../common/api/fault-injection.js';
import { FAKE_DISK_BYTES_PER_GIB, FakeDriver, fakeDiskContent, fakeDiskSize } from './fake.js';

// Filesystem faults for the migration tests: a rename that crosses filesystems and a copy
// that fails half way. Everything passes through unchanged unless a test sets a fault.
const faults = vi.hoisted(() => ({
  exdevFrom: new Set<string>(),
  exdevThrown: 0,
  failCopyTo: undefined as ((dest: string) => boolean) | undefined,
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    rename: async (from: PathLike, to: PathLike): Promise<void> => {
      if (faults.exdevFrom.has(String(from))) {
        faults.exdevThrown++;
        throw Object.assign(new Error(`EXDEV: cross-device link not permitted, rename '${String(from)}'`), {
          code: 'EXDEV',
        });
      }
      return actual.rename(from, to);
    },
    copyFile: async (src: PathLike, dest: PathLike, mode?: number): Promise<void> => {
      if (faults.failCopyTo?.(String(dest)))
        throw Object.assign(new Error(`EIO: i/o error, copyfile '${String(dest)}'`), { code: 'EIO' });
      return actual.copyFile(src, dest, mode);
    },
  };
});

const CAPACITY: ResourceAmounts = { vcpus: 8, memoryMiB: 16384, diskGiB: 200 };
const SMALL: FlavorSnapshot = { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 2, ephemeralDiskGiB: 0 };
const spec = (uid: string, over: Partial<DomainSpec> = {}): DomainSpec => ({
  uid,
  name: `default/${uid}`,
  flavor: SMALL,
  image: 'cirros',
  ...over,
});
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let stateDir: string;
let driver: FakeDriver;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kubenova-fake-driver-'));
  driver = new FakeDriver(stateDir, CAPACITY);
});

afterEach(async () => {
  faults.exdevFrom.clear();
  faults.exdevThrown = 0;
  faults.failCopyTo = undefined;
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
    expect(info).toEqual({
      uid: 'u1',
      name: 'default/u1',
      flavor: SMALL,
      image: 'cirros',
      powerState: 'running',
      diskBytes: 2 * FAKE_DISK_BYTES_PER_GIB,
      nics: [],
    });
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
    expect(report).toEqual({
      vcpus: 1,
      memoryKiB: 2048 * 1024,
      diskBytes: 2 * 1024 ** 3,
      marker: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
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

  it('disk content is the AES-256-CTR keystream under SHA-256(uid), so any slice matches the whole', () => {
    const whole = fakeDiskContent('u1', 0, 200);
    const key = createHash('sha256').update('u1').digest();
    const stream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(200));
    expect(whole.equals(stream)).toBe(true);
    expect(fakeDiskContent('u1', 45, 100).equals(whole.subarray(45, 145))).toBe(true);
    expect(fakeDiskContent('u1', 160, 40).equals(whole.subarray(160, 200))).toBe(true);
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

const MEDIUM: FlavorSnapshot = { name: 'm1.medium', vcpus: 2, memoryMiB: 4096, rootDiskGiB: 5, ephemeralDiskGiB: 0 };
const UNIT = FAKE_DISK_BYTES_PER_GIB;

/** SHA-256 of every file in dir, by name. */
async function dirHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = sha256(await readFile(join(dir, name)));
  return out;
}

async function markerIn(dir: string): Promise<string> {
  const def = JSON.parse(await readFile(join(dir, 'domain.json'), 'utf8')) as { marker: string };
  return def.marker;
}

/** What the migration transfer does: the exported files land in a directory on the destination. */
async function transfer(exp: MigrationExport, target: string): Promise<string> {
  await mkdir(target, { recursive: true });
  for (const f of exp.files) await copyFile(join(exp.dir, f), join(target, f));
  return target;
}

async function instancesListing(dir: string): Promise<string[]> {
  return (await readdir(join(dir, 'instances'))).sort();
}

describe('FakeDriver migration', () => {
  let destDir: string;
  let dest: FakeDriver;

  beforeEach(async () => {
    destDir = await mkdtemp(join(tmpdir(), 'kubenova-fake-driver-dest-'));
    dest = new FakeDriver(destDir, CAPACITY);
  });

  afterEach(async () => {
    await rm(destDir, { recursive: true, force: true });
  });

  /** Spawns u1 (2 GiB) on the source, migrates it out and transfers the backup to the destination. */
  async function migrateToDest(): Promise<{ received: string; diskBefore: Buffer; marker: string }> {
    await driver.spawn(spec('u1'));
    const diskBefore = await readFile(join(driver.instanceDir('u1'), 'disk.img'));
    const marker = await markerIn(driver.instanceDir('u1'));
    const received = await transfer(await driver.migrateOut('u1'), join(destDir, 'incoming', 'u1'));
    return { received, diskBefore, marker };
  }

  it('migrateOut powers the guest off and returns a <uid>_resize backup byte-identical to the instance directory', async () => {
    await driver.spawn(spec('u1'));
    const diskBefore = sha256(await readFile(join(driver.instanceDir('u1'), 'disk.img')));
    const exp = await driver.migrateOut('u1');
    expect(exp).toEqual({ dir: `${driver.instanceDir('u1')}_resize`, files: ['disk.img', 'domain.json'] });
    expect((await driver.get('u1'))?.powerState).toBe('shutdown');
    const backup = await dirHashes(exp.dir);
    expect(backup).toEqual(await dirHashes(driver.instanceDir('u1')));
    expect(backup['disk.img']).toBe(diskBefore);
    expect(await driver.hasBackup('u1')).toBe(true);
    expect(await instancesListing(stateDir)).toEqual(['u1', 'u1_resize']);
  });

  it('migrateOut twice is a no-op that returns the same, unchanged backup', async () => {
    await driver.spawn(spec('u1'));
    const first = await driver.migrateOut('u1');
    const hashes = await dirHashes(first.dir);
    const mtime = (await stat(join(first.dir, 'disk.img'))).mtimeMs;
    expect(await driver.migrateOut('u1')).toEqual(first);
    expect(await dirHashes(first.dir)).toEqual(hashes);
    expect((await stat(join(first.dir, 'disk.img'))).mtimeMs).toBe(mtime);
    expect(await instancesListing(stateDir)).toEqual(['u1', 'u1_resize']);
  });

  it('migrateOut of a domain that does not exist is a DriverError and makes no backup', async () => {
    const err = await rejection(driver.migrateOut('missing'));
    expect(err.operation).toBe('migrateOut');
    expect(await driver.hasBackup('missing')).toBe(false);
  });

  it('a migrateOut that fails half way through the copy leaves no <uid>_resize and no temp directory', async () => {
    await driver.spawn(spec('u1'));
    faults.failCopyTo = (d) => d.endsWith('disk.img') && !d.includes(`${driver.instanceDir('u1')}/`);
    await expect(driver.migrateOut('u1')).rejects.toThrow(/EIO/);
    expect(await driver.hasBackup('u1')).toBe(false);
    expect(await instancesListing(stateDir)).toEqual(['u1']);
    faults.failCopyTo = undefined;
    expect((await driver.migrateOut('u1')).files).toEqual(['disk.img', 'domain.json']);
  });

  it('a half-made backup left by a crash is neither a backup nor a domain, and the next migrateOut replaces it with a complete one', async () => {
    await driver.spawn(spec('u1'));
    const stray = join(stateDir, 'instances', 'u1_resize.4242.deadbeef.tmp');
    await mkdir(stray);
    await writeFile(join(stray, 'disk.img'), 'partial');
    expect(await driver.hasBackup('u1')).toBe(false);
    expect((await driver.list()).map((d) => d.uid)).toEqual(['u1']);
    const exp = await driver.migrateOut('u1');
    expect(await dirHashes(exp.dir)).toEqual(await dirHashes(driver.instanceDir('u1')));
    expect(await instancesListing(stateDir)).toEqual(['u1', 'u1_resize']);
  });

  it('list never reports a <uid>_resize backup as a domain', async () => {
    await driver.spawn(spec('u1'));
    await driver.spawn(spec('u2'));
    await driver.migrateOut('u1');
    expect((await driver.list()).map((d) => [d.uid, d.powerState])).toEqual([
      ['u1', 'shutdown'],
      ['u2', 'running'],
    ]);
  });

  it('finishMigration on another host moves the received directory in, grows the disk keeping the original bytes, applies the flavor, keeps the marker and starts the guest', async () => {
    const { received, diskBefore, marker } = await migrateToDest();
    const info = await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true });
    expect(info).toEqual({
      uid: 'u1',
      name: 'default/u1',
      flavor: MEDIUM,
      image: 'cirros',
      powerState: 'running',
      diskBytes: 5 * UNIT,
      nics: [],
    });
    const disk = await readFile(join(dest.instanceDir('u1'), 'disk.img'));
    expect(sha256(disk.subarray(0, diskBefore.length))).toBe(sha256(diskBefore));
    expect(disk.subarray(2 * UNIT).equals(fakeDiskContent('u1', 2 * UNIT, 3 * UNIT))).toBe(true);
    expect(await dest.guestReport('u1')).toEqual({
      vcpus: 2,
      memoryKiB: 4096 * 1024,
      diskBytes: 5 * 1024 ** 3,
      marker,
    });
    await expect(stat(received)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(dest.instanceDir('u1'))).sort()).toEqual(['disk.img', 'domain.json']);
    expect(await instancesListing(destDir)).toEqual(['u1']);
    // The source still has its powered-off original and the backup, for a revert.
    expect((await driver.get('u1'))?.powerState).toBe('shutdown');
    expect(await driver.hasBackup('u1')).toBe(true);
  });

  it('finishMigration with powerOn false leaves the guest shut down, and a cold migration keeps the disk byte for byte', async () => {
    const { received, diskBefore, marker } = await migrateToDest();
    const info = await dest.finishMigration(spec('u1'), { receivedDir: received, powerOn: false });
    expect(info).toMatchObject({ flavor: SMALL, powerState: 'shutdown', diskBytes: 2 * UNIT });
    expect(await dest.guestReport('u1')).toBeUndefined();
    expect(sha256(await readFile(join(dest.instanceDir('u1'), 'disk.img')))).toBe(sha256(diskBefore));
    expect(await markerIn(dest.instanceDir('u1'))).toBe(marker);
  });

  it('finishMigration repeated after success, with the received directory gone, carries on with what is in place', async () => {
    const { received } = await migrateToDest();
    const first = await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true });
    const hashes = await dirHashes(dest.instanceDir('u1'));
    expect(
      await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true }),
    ).toEqual(first);
    expect(await dirHashes(dest.instanceDir('u1'))).toEqual(hashes);
  });

  it('finishMigration replaces a directory left by an earlier interrupted try with the received one', async () => {
    const { received } = await migrateToDest();
    const stale = dest.instanceDir('u1');
    await mkdir(stale, { recursive: true });
    await writeFile(join(stale, 'disk.img'), 'stale');
    const info = await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true });
    expect(info.diskBytes).toBe(5 * UNIT);
    expect((await readFile(join(stale, 'disk.img'))).equals(fakeDiskContent('u1', 0, 5 * UNIT))).toBe(true);
    expect(await instancesListing(destDir)).toEqual(['u1']);
  });

  it('finishMigration copies and then removes the received directory when rename crosses filesystems (EXDEV)', async () => {
    const { received, diskBefore } = await migrateToDest();
    faults.exdevFrom.add(resolve(received));
    const info = await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true });
    expect(info).toMatchObject({ powerState: 'running', diskBytes: 5 * UNIT });
    expect(faults.exdevThrown).toBe(1);
    const disk = await readFile(join(dest.instanceDir('u1'), 'disk.img'));
    expect(disk.subarray(0, diskBefore.length).equals(diskBefore)).toBe(true);
    await expect(stat(received)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await instancesListing(destDir)).toEqual(['u1']);
  });

  it('finishMigration carries on when a cross-device move was interrupted while removing the received directory', async () => {
    const { received } = await migrateToDest();
    faults.exdevFrom.add(resolve(received));
    const first = await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true });
    // What the interrupted removal leaves: the definition went first, part of the rest stays.
    await mkdir(received, { recursive: true });
    await writeFile(join(received, 'disk.img'), 'left over');
    expect(
      await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true }),
    ).toEqual(first);
    await expect(stat(received)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('finishMigration refuses an incomplete received directory, and one that is gone when no domain is in place', async () => {
    const incomplete = join(destDir, 'incoming', 'u1');
    await mkdir(incomplete, { recursive: true });
    await writeFile(join(incomplete, 'disk.img'), 'half');
    expect(
      (await rejection(dest.finishMigration(spec('u1'), { receivedDir: incomplete, powerOn: true }))).operation,
    ).toBe('finishMigration');
    expect(await dest.list()).toEqual([]);
    const gone = join(destDir, 'incoming', 'nothing');
    expect((await rejection(dest.finishMigration(spec('u9'), { receivedDir: gone, powerOn: true }))).operation).toBe(
      'finishMigration',
    );
    expect((await rejection(dest.finishMigration(spec('u9'), { powerOn: true }))).operation).toBe('finishMigration');
  });

  it('finishMigration refuses a received directory holding another instance', async () => {
    const { received } = await migrateToDest();
    await expect(dest.finishMigration(spec('u2'), { receivedDir: received, powerOn: true })).rejects.toThrow(
      DriverError,
    );
    expect(await dest.list()).toEqual([]);
  });

  it('same-host finishMigration without a received directory grows the disk in place, applies the flavor and keeps the backup', async () => {
    await driver.spawn(spec('u1'));
    const marker = (await driver.guestReport('u1'))?.marker;
    const exp = await driver.migrateOut('u1');
    const backup = await dirHashes(exp.dir);
    const info = await driver.finishMigration(spec('u1', { flavor: MEDIUM }), { powerOn: true });
    expect(info).toMatchObject({ flavor: MEDIUM, powerState: 'running', diskBytes: 5 * UNIT });
    expect(
      (await readFile(join(driver.instanceDir('u1'), 'disk.img'))).equals(fakeDiskContent('u1', 0, 5 * UNIT)),
    ).toBe(true);
    expect((await driver.guestReport('u1'))?.marker).toBe(marker);
    expect(await dirHashes(exp.dir)).toEqual(backup);
    expect(await instancesListing(stateDir)).toEqual(['u1', 'u1_resize']);
  });

  it('finishMigration never shrinks the disk: a flavor whose root disk is smaller than the disk is refused, the disk left as it was', async () => {
    await driver.spawn(spec('u1', { flavor: MEDIUM }));
    const before = await readFile(join(driver.instanceDir('u1'), 'disk.img'));
    await driver.migrateOut('u1');
    expect((await rejection(driver.finishMigration(spec('u1'), { powerOn: false }))).message).toBe(
      `finishMigration u1: refusing ${driver.instanceDir('u1')}: its disk.img is ${5 * UNIT} bytes, more than the ${2 * UNIT} bytes of flavor m1.small's 2 GiB root disk here`,
    );
    expect((await readFile(join(driver.instanceDir('u1'), 'disk.img'))).equals(before)).toBe(true);
    expect((await driver.get('u1'))?.flavor).toEqual(MEDIUM);
  });

  it('finishMigration refuses a received disk bigger than the flavor allows; the received files stay where they are and nothing is defined', async () => {
    const { received } = await migrateToDest();
    await writeFile(join(received, 'disk.img'), Buffer.alloc(3 * UNIT, 1));
    const before = await dirHashes(received);
    expect((await rejection(dest.finishMigration(spec('u1'), { receivedDir: received, powerOn: true }))).message).toBe(
      `finishMigration u1: refusing ${received}: its disk.img is ${3 * UNIT} bytes, more than the ${2 * UNIT} bytes of flavor m1.small's 2 GiB root disk here`,
    );
    expect(await dirHashes(received)).toEqual(before);
    expect(await dest.list()).toEqual([]);
    expect(await instancesListing(destDir)).toEqual([]);
  });

  it('finishMigration refuses a received directory holding a stray file or links instead of its files, naming each', async () => {
    const { received } = await migrateToDest();
    await writeFile(join(received, 'extra.sh'), 'echo');
    await rm(join(received, 'disk.img'));
    await symlink('/etc/hostname', join(received, 'disk.img'));
    expect((await rejection(dest.finishMigration(spec('u1'), { receivedDir: received, powerOn: true }))).message).toBe(
      `finishMigration u1: refusing ${received}: its disk.img is not a regular file; it holds "extra.sh", which is no part of a domain`,
    );
    await rm(join(received, 'extra.sh'));
    await rm(join(received, 'disk.img'));
    await writeFile(join(destDir, 'host-file'), 'x');
    await link(join(destDir, 'host-file'), join(received, 'disk.img'));
    expect((await rejection(dest.finishMigration(spec('u1'), { receivedDir: received, powerOn: true }))).message).toBe(
      `finishMigration u1: refusing ${received}: its disk.img has 2 hard links`,
    );
    expect(await dest.list()).toEqual([]);
  });

  it('revertMigration refuses a backup that is no longer what migrateOut made, and keeps the domain in place', async () => {
    await driver.spawn(spec('u1'));
    const exp = await driver.migrateOut('u1');
    await writeFile(join(exp.dir, 'disk.img'), Buffer.alloc(4 * UNIT, 2));
    expect((await rejection(driver.revertMigration(spec('u1'), { powerOn: true }))).message).toMatch(
      /^revertMigration u1: refusing .*u1_resize: its disk\.img is \d+ bytes, more than/,
    );
    expect(await driver.hasBackup('u1')).toBe(true);
    expect((await driver.get('u1'))?.powerState).toBe('shutdown');
  });

  it('confirmMigration on the same host removes only the backup, and is safe to repeat', async () => {
    await driver.spawn(spec('u1'));
    await driver.migrateOut('u1');
    await driver.finishMigration(spec('u1', { flavor: MEDIUM }), { powerOn: true });
    await driver.confirmMigration('u1', true);
    await driver.confirmMigration('u1', true);
    expect(await driver.hasBackup('u1')).toBe(false);
    expect(await driver.get('u1')).toMatchObject({ flavor: MEDIUM, powerState: 'running' });
    expect(await instancesListing(stateDir)).toEqual(['u1']);
  });

  it('confirmMigration on the source of a cross-host migration removes the backup and the powered-off original, and is safe to repeat', async () => {
    const { received } = await migrateToDest();
    await dest.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    await driver.confirmMigration('u1', false);
    await driver.confirmMigration('u1', false);
    expect(await driver.hasBackup('u1')).toBe(false);
    expect(await driver.get('u1')).toBeUndefined();
    expect(await instancesListing(stateDir)).toEqual([]);
    expect((await dest.get('u1'))?.powerState).toBe('running');
  });

  it('confirmMigration for another host refuses to delete a domain running here', async () => {
    await driver.spawn(spec('u1'));
    await driver.migrateOut('u1');
    await driver.finishMigration(spec('u1', { flavor: MEDIUM }), { powerOn: true });
    expect((await rejection(driver.confirmMigration('u1', false))).operation).toBe('confirmMigration');
    expect((await driver.get('u1'))?.powerState).toBe('running');
    expect(await driver.hasBackup('u1')).toBe(true);
  });

  it('revertMigration after a same-host resize restores the exact disk bytes and the old flavor and starts the guest', async () => {
    await driver.spawn(spec('u1'));
    const marker = (await driver.guestReport('u1'))?.marker;
    const exp = await driver.migrateOut('u1');
    const backupDisk = sha256(await readFile(join(exp.dir, 'disk.img')));
    await driver.finishMigration(spec('u1', { flavor: MEDIUM }), { powerOn: true });
    expect((await driver.get('u1'))?.diskBytes).toBe(5 * UNIT);
    const info = await driver.revertMigration(spec('u1'), { powerOn: true });
    expect(info).toEqual({
      uid: 'u1',
      name: 'default/u1',
      flavor: SMALL,
      image: 'cirros',
      powerState: 'running',
      diskBytes: 2 * UNIT,
      nics: [],
    });
    expect(sha256(await readFile(join(driver.instanceDir('u1'), 'disk.img')))).toBe(backupDisk);
    expect((await driver.guestReport('u1'))?.marker).toBe(marker);
    expect(await driver.hasBackup('u1')).toBe(false);
    expect(await instancesListing(stateDir)).toEqual(['u1']);
    // Repeating it finds no backup and the restored domain, and changes nothing.
    expect(await driver.revertMigration(spec('u1'), { powerOn: true })).toEqual(info);
    expect(sha256(await readFile(join(driver.instanceDir('u1'), 'disk.img')))).toBe(backupDisk);
  });

  it('revertMigration on the source of a cross-host migration restores the backup, and leaves it shut down with powerOn false', async () => {
    const { received, diskBefore } = await migrateToDest();
    await dest.finishMigration(spec('u1', { flavor: MEDIUM }), { receivedDir: received, powerOn: true });
    const info = await driver.revertMigration(spec('u1'), { powerOn: false });
    expect(info).toMatchObject({ flavor: SMALL, powerState: 'shutdown', diskBytes: 2 * UNIT });
    expect((await readFile(join(driver.instanceDir('u1'), 'disk.img'))).equals(diskBefore)).toBe(true);
    expect(await driver.hasBackup('u1')).toBe(false);
  });

  it('revertMigration without a backup but with the domain only ensures the flavor and power state', async () => {
    await driver.spawn(spec('u1', { flavor: MEDIUM }));
    await driver.powerOff('u1');
    const disk = sha256(await readFile(join(driver.instanceDir('u1'), 'disk.img')));
    // The old flavor had the same root disk (root disks never shrink) and fewer vCPUs.
    const old: FlavorSnapshot = { ...MEDIUM, name: 'm1.medium-1cpu', vcpus: 1 };
    const info = await driver.revertMigration(spec('u1', { flavor: old }), { powerOn: true });
    expect(info).toMatchObject({ flavor: old, powerState: 'running', diskBytes: 5 * UNIT });
    expect(sha256(await readFile(join(driver.instanceDir('u1'), 'disk.img')))).toBe(disk);
    expect((await driver.revertMigration(spec('u1', { flavor: old }), { powerOn: false })).powerState).toBe('shutdown');
  });

  it('revertMigration with neither a backup nor the domain is a DriverError', async () => {
    const err = await rejection(driver.revertMigration(spec('u1'), { powerOn: true }));
    expect(err.operation).toBe('revertMigration');
    expect(err.uid).toBe('u1');
  });

  it('destroy also removes temp directories left by an interrupted migration step', async () => {
    await driver.spawn(spec('u1'));
    await driver.migrateOut('u1');
    await mkdir(join(stateDir, 'instances', 'u1_old.4242.deadbeef.tmp'));
    await driver.destroy('u1');
    expect(await instancesListing(stateDir)).toEqual([]);
    expect(await driver.hasBackup('u1')).toBe(false);
  });

  it('migration steps reject a uid that could escape the instances directory', async () => {
    await expect(driver.migrateOut('../x')).rejects.toThrow(DriverError);
    await expect(driver.hasBackup('a/b')).rejects.toThrow(DriverError);
    await expect(driver.confirmMigration('.x', true)).rejects.toThrow(DriverError);
    await expect(driver.finishMigration(spec('u_1'), { powerOn: true })).rejects.toThrow(DriverError);
    await expect(driver.revertMigration(spec(''), { powerOn: true })).rejects.toThrow(DriverError);
  });
});

describe('FakeDriver fault injection (fake.kubenova.io/fail)', () => {
  /** Which steps fail for which uid; tests change it between calls, as the annotation would change. */
  let failing: Map<string, FailStep[]>;
  let injected: FakeDriver;

  beforeEach(() => {
    failing = new Map();
    injected = new FakeDriver(stateDir, CAPACITY, {
      injectedFailures: (uid) => new Set(failing.get(uid) ?? []),
    });
  });

  const injectedError = async (p: Promise<unknown>, operation: string, step: FailStep) => {
    const err = await rejection(p);
    expect(err.operation).toBe(operation);
    expect(err.uid).toBe('u1');
    expect(err.message).toBe(
      `${operation} u1: injected failure: the instance's annotation fake.kubenova.io/fail makes ${step} fail`,
    );
  };

  it('an injected spawn fails with a DriverError naming the annotation and creates nothing', async () => {
    failing.set('u1', ['spawn']);
    await injectedError(injected.spawn(spec('u1')), 'spawn', 'spawn');
    expect(await injected.list()).toEqual([]);
  });

  it('the lookup is asked on every call: once the step is no longer listed, the next try succeeds', async () => {
    failing.set('u1', ['spawn']);
    await rejection(injected.spawn(spec('u1')));
    failing.delete('u1');
    expect((await injected.spawn(spec('u1'))).powerState).toBe('running');
  });

  it('only the listed steps of the listed instance fail', async () => {
    failing.set('u1', ['power-on']);
    expect((await injected.spawn(spec('u1'))).powerState).toBe('running');
    expect((await injected.spawn(spec('u2'))).powerState).toBe('running');
    await injected.powerOff('u1');
    await injected.powerOff('u2');
    await injectedError(injected.powerOn('u1'), 'powerOn', 'power-on');
    expect((await injected.get('u1'))?.powerState).toBe('shutdown');
    expect((await injected.powerOn('u2')).powerState).toBe('running');
  });

  it('an injected migrate-out leaves the guest running and makes no backup', async () => {
    await injected.spawn(spec('u1'));
    failing.set('u1', ['migrate-out']);
    await injectedError(injected.migrateOut('u1'), 'migrateOut', 'migrate-out');
    expect((await injected.get('u1'))?.powerState).toBe('running');
    expect(await injected.hasBackup('u1')).toBe(false);
  });

  it('an injected finish-migration and revert change nothing, and succeed once no longer listed', async () => {
    await injected.spawn(spec('u1'));
    await injected.migrateOut('u1');
    failing.set('u1', ['finish-migration', 'revert']);
    await injectedError(
      injected.finishMigration(spec('u1', { flavor: MEDIUM }), { powerOn: true }),
      'finishMigration',
      'finish-migration',
    );
    await injectedError(injected.revertMigration(spec('u1'), { powerOn: true }), 'revertMigration', 'revert');
    expect(await injected.get('u1')).toMatchObject({ flavor: SMALL, powerState: 'shutdown' });
    expect(await injected.hasBackup('u1')).toBe(true);
    failing.delete('u1');
    expect(await injected.revertMigration(spec('u1'), { powerOn: true })).toMatchObject({ powerState: 'running' });
  });

  it('a lookup set after construction replaces the one given as an option', async () => {
    injected.setInjectedFailures(() => new Set<FailStep>(['spawn']));
    await injectedError(injected.spawn(spec('u1')), 'spawn', 'spawn');
  });
});

describe('FakeDriver NICs', () => {
  const NIC: NicSpec = {
    port: 'u1-net-a',
    network: 'net-a',
    mac: '52:54:00:12:34:56',
    ip: '10.20.0.5',
    prefixLength: 24,
    gateway: '10.20.0.1',
    mtu: 1450,
    bridge: 'kn-0123456789ab',
  };
  let destDir: string;
  let dest: FakeDriver;

  beforeEach(async () => {
    destDir = await mkdtemp(join(tmpdir(), 'kubenova-fake-driver-dest-'));
    dest = new FakeDriver(destDir, CAPACITY);
  });

  afterEach(async () => {
    await rm(destDir, { recursive: true, force: true });
  });

  it("records the ports bound to a domain in its definition, and the guest reports the ports' addresses", async () => {
    const info = await driver.spawn(spec('u1', { nics: [NIC] }));
    expect(info.nics).toEqual([NIC]);
    const def: unknown = JSON.parse(await readFile(join(driver.instanceDir('u1'), 'domain.json'), 'utf8'));
    expect(def).toMatchObject({ nics: [NIC] });
    expect((await driver.guestReport('u1'))?.ips).toEqual(['10.20.0.5']);
    expect((await driver.list()).map((d) => d.nics)).toEqual([[NIC]]);
  });

  it('keeps the NICs through a move to another host when the finish names none, and a revert restores them', async () => {
    await driver.spawn(spec('u1', { nics: [NIC] }));
    const received = await transfer(await driver.migrateOut('u1'), join(destDir, 'incoming', 'u1'));
    const landed = await dest.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    expect(landed.nics).toEqual([NIC]);
    expect((await dest.guestReport('u1'))?.ips).toEqual(['10.20.0.5']);
    const back = await driver.revertMigration(spec('u1'), { powerOn: true });
    expect(back.nics).toEqual([NIC]);
  });

  it('replaces the NICs when a step names them, [] taking them all away', async () => {
    await driver.spawn(spec('u1', { nics: [NIC] }));
    await driver.migrateOut('u1');
    const moved = { ...NIC, bridge: 'kn-other' };
    expect((await driver.finishMigration(spec('u1', { nics: [moved] }), { powerOn: true })).nics).toEqual([moved]);
    expect((await driver.revertMigration(spec('u1', { nics: [] }), { powerOn: true })).nics).toEqual([]);
    expect(await driver.guestReport('u1')).not.toHaveProperty('ips');
  });

  it('refuses a bad NIC with a DriverError naming it, and defines nothing', async () => {
    const err = await driver.spawn(spec('u1', { nics: [{ ...NIC, mac: 'nope' }] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as Error).message).toBe(
      'spawn u1: refusing the NICs: port "u1-net-a": MAC "nope" is not lower-case aa:bb:cc:dd:ee:ff',
    );
    expect(await driver.get('u1')).toBeUndefined();
  });

  it('reads a definition written before NICs existed as a domain without any', async () => {
    await driver.spawn(spec('u1'));
    const file = join(driver.instanceDir('u1'), 'domain.json');
    const def = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    delete def.nics;
    await writeFile(file, JSON.stringify(def));
    expect((await driver.get('u1'))?.nics).toEqual([]);
  });
});
