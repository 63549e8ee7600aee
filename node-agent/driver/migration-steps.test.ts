// The shared migration steps on a stand-in driver: real directories (the steps are about
// them), a definition that is a small JSON file, and a guest whose power state lives outside
// its directory, as a libvirt guest's does. Every hook call is logged, so the tests can check
// what the steps ask of a driver and in which order.
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FlavorSnapshot } from '../../common/api/types.js';
import { DriverError } from './driver.js';
import type { DomainInfo, DomainSpec } from './driver.js';
import { InstanceDirs } from './instance-dirs.js';
import { MigrationSteps } from './migration-steps.js';
import { UidQueue } from '../../common/runtime/uid-queue.js';

const DEFINITION = 'def.json';
const DISK = 'disk.bin';
/** The stand-in's disk: 16 bytes per GiB of root disk. */
const BYTES_PER_GIB = 16;
const SMALL: FlavorSnapshot = { name: 'small', vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const LARGE: FlavorSnapshot = { name: 'large', vcpus: 2, memoryMiB: 1024, rootDiskGiB: 2, ephemeralDiskGiB: 0 };
const spec = (uid: string, flavor = LARGE): DomainSpec => ({ uid, name: `default/${uid}`, flavor, image: 'img' });

/** A driver reduced to its hooks. */
class StandIn {
  readonly dirs: InstanceDirs;
  readonly running = new Set<string>();
  readonly calls: string[] = [];
  readonly queue = new UidQueue();
  serialCalls = 0;
  /** checkSpec rejects this image. */
  badImage: string | undefined;
  /** The directories inspect was asked about, in order. */
  readonly inspected: string[] = [];
  /** inspect refuses these directories. */
  readonly refuse = new Set<string>();
  readonly steps: MigrationSteps;

  constructor(root: string) {
    this.dirs = new InstanceDirs(root, DEFINITION);
    this.steps = new MigrationSteps({
      dirs: this.dirs,
      disk: DISK,
      checkUid: (op, uid) => {
        if (!/^[a-z0-9]+$/.test(uid)) throw new DriverError(op, uid, 'bad uid');
      },
      serial: (uid, fn) => {
        this.serialCalls++;
        return this.queue.run(uid, fn);
      },
      definitionUid: async (dir) => {
        try {
          return (JSON.parse(await readFile(join(dir, DEFINITION), 'utf8')) as { uid: string }).uid;
        } catch {
          return undefined;
        }
      },
      powerOff: async (_op, uid) => {
        this.calls.push(`powerOff ${uid}`);
        this.running.delete(uid);
        return exists(this.dirs.dir(uid));
      },
      isRunning: async (_op, uid) => this.running.has(uid),
      stopBeforeReplace: async (_op, uid) => {
        this.calls.push(`stop ${uid}`);
        this.running.delete(uid);
      },
      checkSpec: (op, s) => {
        if (s.image === this.badImage) throw new DriverError(op, s.uid, `image ${s.image} is not registered`);
      },
      inspect: async (op, s, dir) => {
        this.inspected.push(dir);
        if (this.refuse.has(dir)) throw new DriverError(op, s.uid, `refusing ${dir}: it has a backing file`);
      },
      growDisk: async (_op, uid, rootDiskGiB) => {
        this.calls.push(`growDisk ${uid} ${rootDiskGiB}`);
        const disk = join(this.dirs.dir(uid), DISK);
        const bytes = await readFile(disk);
        const target = rootDiskGiB * BYTES_PER_GIB;
        if (target <= bytes.length) return;
        await writeFile(disk, Buffer.concat([bytes, Buffer.alloc(target - bytes.length, 0xee)]));
      },
      settle: async (_op, s, powerOn) => {
        this.calls.push(`settle ${s.uid} ${s.flavor.name} ${powerOn ? 'on' : 'off'}`);
        const dir = this.dirs.dir(s.uid);
        const def = JSON.parse(await readFile(join(dir, DEFINITION), 'utf8')) as { marker: string };
        await writeFile(join(dir, DEFINITION), JSON.stringify({ ...def, uid: s.uid, flavor: s.flavor.name }));
        if (powerOn) this.running.add(s.uid);
        else this.running.delete(s.uid);
        return this.info(s.uid);
      },
      undefine: async (_op, uid) => {
        this.calls.push(`undefine ${uid}`);
      },
      names: (uid) => ({ domain: `domain dom-${uid}`, host: 'host h1' }),
    });
  }

  /** Creates a running domain: a definition naming uid and a disk of the flavor's size. */
  async create(uid: string, flavor = SMALL, fill = 0xaa): Promise<void> {
    const dir = this.dirs.dir(uid);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, DISK), Buffer.alloc(flavor.rootDiskGiB * BYTES_PER_GIB, fill));
    await writeFile(join(dir, DEFINITION), JSON.stringify({ uid, flavor: flavor.name, marker: `m-${uid}-${fill}` }));
    this.running.add(uid);
  }

  async info(uid: string): Promise<DomainInfo> {
    const def = JSON.parse(await readFile(join(this.dirs.dir(uid), DEFINITION), 'utf8')) as { flavor: string };
    const flavor = [SMALL, LARGE].find((f) => f.name === def.flavor) ?? SMALL;
    const diskBytes = (await stat(join(this.dirs.dir(uid), DISK))).size;
    const powerState = this.running.has(uid) ? 'running' : 'shutdown';
    return { uid, name: `default/${uid}`, flavor, image: 'img', powerState, diskBytes, nics: [] };
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every file of a directory with its bytes. */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = (await readFile(join(dir, name))).toString('hex');
  return out;
}

/** The message of the DriverError a step fails with. */
async function failure(p: Promise<unknown>): Promise<string> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DriverError);
  return (err as DriverError).message;
}

let base: string;
let src: StandIn;
let dst: StandIn;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'kubenova-migration-steps-'));
  src = new StandIn(join(base, 'src'));
  dst = new StandIn(join(base, 'dst'));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** migrateOut on the source and a copy of what it exports into the destination's incoming directory. */
async function sendToDst(uid: string): Promise<string> {
  const exp = await src.steps.migrateOut(uid);
  const received = join(base, 'dst-incoming', uid);
  await mkdir(received, { recursive: true });
  for (const f of exp.files) await writeFile(join(received, f), await readFile(join(exp.dir, f)));
  return received;
}

describe('MigrationSteps', () => {
  it('migrateOut powers the guest off before it copies, and the backup is byte-exact', async () => {
    await src.create('u1');
    const exp = await src.steps.migrateOut('u1');
    expect(exp).toEqual({ dir: src.dirs.backupDir('u1'), files: [DEFINITION, DISK] });
    expect(src.calls).toEqual(['powerOff u1']);
    expect(src.running.has('u1')).toBe(false);
    expect(await contents(exp.dir)).toEqual(await contents(src.dirs.dir('u1')));
  });

  it('a second migrateOut reuses the existing backup', async () => {
    await src.create('u1');
    const first = await src.steps.migrateOut('u1');
    const backup = await contents(first.dir);
    // Whatever happens to the instance directory since, the revert point stays the first copy.
    await writeFile(join(src.dirs.dir('u1'), DISK), 'changed');
    src.running.add('u1');
    const second = await src.steps.migrateOut('u1');
    expect(second).toEqual(first);
    expect(await contents(second.dir)).toEqual(backup);
    expect(src.running.has('u1')).toBe(false);
  });

  it('migrateOut of a domain that does not exist is a DriverError and makes no backup', async () => {
    expect(await failure(src.steps.migrateOut('u1'))).toBe('migrateOut u1: no such domain');
    expect(await exists(src.dirs.backupDir('u1'))).toBe(false);
  });

  it('every step first removes temp directories an interrupted step left, keeping only the received one', async () => {
    await src.create('u1');
    const stray = join(src.dirs.root, 'u1_resize.1234.0123abcd.tmp');
    await mkdir(stray);
    await src.steps.migrateOut('u1');
    expect(await exists(stray)).toBe(false);
    expect((await readdir(src.dirs.root)).sort()).toEqual(['u1', 'u1_resize']);
  });

  it('finishMigration moves the received dir into place, grows the disk, then settles flavor and power', async () => {
    await src.create('u1');
    const sent = await contents(src.dirs.dir('u1'));
    const received = await sendToDst('u1');
    const info = await dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    expect(dst.calls).toEqual(['stop u1', 'growDisk u1 2', 'settle u1 large on']);
    expect(info).toMatchObject({ flavor: LARGE, powerState: 'running', diskBytes: 2 * BYTES_PER_GIB });
    expect(await exists(received)).toBe(false);
    // The original bytes are the start of the grown disk.
    const disk = (await contents(dst.dirs.dir('u1')))[DISK];
    expect(disk?.startsWith(sent[DISK] ?? '-')).toBe(true);
  });

  it('finishMigration after the received dir was already moved carries on with what is there', async () => {
    await src.create('u1');
    const received = await sendToDst('u1');
    await dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: false });
    const inPlace = await contents(dst.dirs.dir('u1'));
    dst.calls.length = 0;
    const info = await dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    expect(dst.calls).toEqual(['growDisk u1 2', 'settle u1 large on']);
    expect(info.powerState).toBe('running');
    expect(await contents(dst.dirs.dir('u1'))).toEqual(inPlace);
  });

  it('finishMigration stops and replaces a domain left by an earlier try with the received one', async () => {
    await src.create('u1');
    const received = await sendToDst('u1');
    await dst.create('u1', SMALL, 0x11);
    await dst.steps.finishMigration(spec('u1', SMALL), { receivedDir: received, powerOn: false });
    expect(dst.calls).toEqual(['stop u1', 'growDisk u1 1', 'settle u1 small off']);
    expect(dst.running.has('u1')).toBe(false);
    const inPlace = await contents(dst.dirs.dir('u1'));
    expect(inPlace[DISK]).toBe((await contents(src.dirs.backupDir('u1')))[DISK]);
    expect(Buffer.from(inPlace[DEFINITION] ?? '', 'hex').toString()).toContain('"marker":"m-u1-170"');
    expect((await readdir(dst.dirs.root)).sort()).toEqual(['u1']);
  });

  it('finishMigration with the domain in place removes what is left of a received dir without definition', async () => {
    await src.create('u1');
    const received = await sendToDst('u1');
    await dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    // What an interrupted cross-device move leaves: the received disk without its definition.
    await mkdir(received);
    await writeFile(join(received, DISK), 'rest');
    await dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    expect(await exists(received)).toBe(false);
  });

  it('finishMigration never replaces a domain with an incomplete or foreign received directory', async () => {
    await dst.create('u1');
    const before = await contents(dst.dirs.dir('u1'));
    const incomplete = join(base, 'incoming-incomplete');
    await mkdir(incomplete);
    await writeFile(join(incomplete, DEFINITION), JSON.stringify({ uid: 'u1' }));
    expect(await failure(dst.steps.finishMigration(spec('u1'), { receivedDir: incomplete, powerOn: true }))).toBe(
      `finishMigration u1: received directory ${incomplete} does not hold a complete domain`,
    );
    const foreign = join(base, 'incoming-foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, DEFINITION), JSON.stringify({ uid: 'u2' }));
    await writeFile(join(foreign, DISK), 'x');
    expect(await failure(dst.steps.finishMigration(spec('u1'), { receivedDir: foreign, powerOn: true }))).toBe(
      `finishMigration u1: received directory ${foreign} holds instance u2`,
    );
    expect(await contents(dst.dirs.dir('u1'))).toEqual(before);
    expect(dst.calls).toEqual([]);
  });

  it('finishMigration with neither a received directory nor a domain in place is a DriverError', async () => {
    const noDomain = await failure(dst.steps.finishMigration(spec('u1'), { powerOn: true }));
    expect(noDomain).toBe('finishMigration u1: no such domain');
    const gone = join(base, 'gone');
    expect(await failure(dst.steps.finishMigration(spec('u1'), { receivedDir: gone, powerOn: true }))).toBe(
      `finishMigration u1: neither the received directory ${gone} nor the domain exists`,
    );
  });

  it('finishMigration checks the spec before anything moves: the received files stay, nothing is stopped or grown', async () => {
    await src.create('u1');
    const received = await sendToDst('u1');
    dst.badImage = 'img';
    expect(await failure(dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true }))).toMatch(
      /not registered/,
    );
    expect(dst.calls).toEqual([]);
    expect(await exists(join(received, DISK))).toBe(true);
    expect(await exists(dst.dirs.dir('u1'))).toBe(false);
  });

  it('finishMigration has the driver inspect the received directory before it replaces anything, and the disk in place before it grows it', async () => {
    await src.create('u1');
    const received = await sendToDst('u1');
    await dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true });
    expect(dst.inspected).toEqual([received, dst.dirs.dir('u1')]);
    dst.inspected.length = 0;
    await dst.steps.finishMigration(spec('u1'), { powerOn: true });
    expect(dst.inspected).toEqual([dst.dirs.dir('u1')]);
  });

  it('a received directory the driver refuses replaces nothing: the domain in place and the received files stay, nothing is stopped, grown or settled', async () => {
    await src.create('u1');
    const received = await sendToDst('u1');
    const sent = await contents(received);
    await dst.create('u1', SMALL, 0x11);
    const before = await contents(dst.dirs.dir('u1'));
    dst.refuse.add(received);
    expect(await failure(dst.steps.finishMigration(spec('u1'), { receivedDir: received, powerOn: true }))).toBe(
      `finishMigration u1: refusing ${received}: it has a backing file`,
    );
    expect(dst.calls).toEqual([]);
    expect(dst.running.has('u1')).toBe(true);
    expect(await contents(dst.dirs.dir('u1'))).toEqual(before);
    expect(await contents(received)).toEqual(sent);
  });

  it('a same-host finish whose disk in place the driver refuses neither grows nor settles it', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    src.calls.length = 0;
    src.refuse.add(src.dirs.dir('u1'));
    expect(await failure(src.steps.finishMigration(spec('u1'), { powerOn: true }))).toMatch(/refusing/);
    expect(src.calls).toEqual([]);
    expect((await src.info('u1')).diskBytes).toBe(SMALL.rootDiskGiB * BYTES_PER_GIB);
  });

  it('confirm on another host drops the backup, undefines and removes the original; safe to repeat', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await src.steps.confirmMigration('u1', false);
    expect(src.calls).toEqual(['powerOff u1', 'undefine u1']);
    expect(await readdir(src.dirs.root)).toEqual([]);
    await src.steps.confirmMigration('u1', false);
    expect(await readdir(src.dirs.root)).toEqual([]);
  });

  it('confirm on the same host drops only the backup', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await src.steps.finishMigration(spec('u1'), { powerOn: true });
    await src.steps.confirmMigration('u1', true);
    expect(await readdir(src.dirs.root)).toEqual(['u1']);
    expect(src.calls).not.toContain('undefine u1');
  });

  it('confirm refuses to delete a domain running here as the migrated-away original', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    src.running.add('u1');
    expect(await failure(src.steps.confirmMigration('u1', false))).toBe(
      'confirmMigration u1: domain dom-u1 is running on host h1; refusing to delete it as the migrated-away original',
    );
    expect((await readdir(src.dirs.root)).sort()).toEqual(['u1', 'u1_resize']);
  });

  it('revert restores the backup byte for byte and replaces what is there', async () => {
    await src.create('u1');
    const original = await contents(src.dirs.dir('u1'));
    await src.steps.migrateOut('u1');
    await src.steps.finishMigration(spec('u1'), { powerOn: true });
    expect(await contents(src.dirs.dir('u1'))).not.toEqual(original);
    src.calls.length = 0;
    // The definition is settled afterwards (the stand-in rewrites it); the disk is the backup's.
    const info = await src.steps.revertMigration(spec('u1', SMALL), { powerOn: true });
    expect(src.calls).toEqual(['stop u1', 'settle u1 small on']);
    expect((await contents(src.dirs.dir('u1')))[DISK]).toBe(original[DISK]);
    expect(info).toMatchObject({ flavor: SMALL, powerState: 'running', diskBytes: SMALL.rootDiskGiB * BYTES_PER_GIB });
    expect(await readdir(src.dirs.root)).toEqual(['u1']);
  });

  it('revert once the backup is gone only settles flavor and power of the domain in place', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await src.steps.revertMigration(spec('u1', SMALL), { powerOn: false });
    src.calls.length = 0;
    const info = await src.steps.revertMigration(spec('u1', SMALL), { powerOn: true });
    expect(src.calls).toEqual(['settle u1 small on']);
    expect(info.powerState).toBe('running');
  });

  it('revert has the driver inspect the backup before it restores it, and the domain in place when the backup is gone', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await src.steps.revertMigration(spec('u1', SMALL), { powerOn: true });
    expect(src.inspected).toEqual([src.dirs.backupDir('u1')]);
    src.inspected.length = 0;
    await src.steps.revertMigration(spec('u1', SMALL), { powerOn: true });
    expect(src.inspected).toEqual([src.dirs.dir('u1')]);
  });

  it('a backup the driver refuses is not restored: the domain in place and the backup stay as they were', async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await src.steps.finishMigration(spec('u1'), { powerOn: true });
    const inPlace = await contents(src.dirs.dir('u1'));
    const backup = await contents(src.dirs.backupDir('u1'));
    src.calls.length = 0;
    src.refuse.add(src.dirs.backupDir('u1'));
    expect(await failure(src.steps.revertMigration(spec('u1', SMALL), { powerOn: true }))).toBe(
      `revertMigration u1: refusing ${src.dirs.backupDir('u1')}: it has a backing file`,
    );
    expect(src.calls).toEqual([]);
    expect(src.running.has('u1')).toBe(true);
    expect(await contents(src.dirs.dir('u1'))).toEqual(inPlace);
    expect(await contents(src.dirs.backupDir('u1'))).toEqual(backup);
  });

  it('revert with neither a backup nor the domain, or with a backup lacking its disk, is a DriverError', async () => {
    expect(await failure(src.steps.revertMigration(spec('u1'), { powerOn: true }))).toBe(
      'revertMigration u1: neither a resize backup nor the domain exists',
    );
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await rm(join(src.dirs.backupDir('u1'), DISK));
    expect(await failure(src.steps.revertMigration(spec('u1'), { powerOn: true }))).toBe(
      `revertMigration u1: ${src.dirs.backupDir('u1')} does not hold a domain definition and disk`,
    );
    expect(await exists(src.dirs.dir('u1'))).toBe(true);
  });

  it("every step runs in the driver's per-uid queue, and a bad uid is refused before it is queued", async () => {
    await src.create('u1');
    await src.steps.migrateOut('u1');
    await src.steps.finishMigration(spec('u1'), { powerOn: true });
    await src.steps.revertMigration(spec('u1', SMALL), { powerOn: true });
    await src.steps.confirmMigration('u1', true);
    expect(src.serialCalls).toBe(4);
    for (const step of [
      () => src.steps.migrateOut('U_1'),
      () => src.steps.finishMigration(spec('U_1'), { powerOn: true }),
      () => src.steps.confirmMigration('U_1', true),
      () => src.steps.revertMigration(spec('U_1'), { powerOn: true }),
      () => src.steps.hasBackup('U_1'),
    ]) {
      await expect(step()).rejects.toThrow(DriverError);
    }
    expect(src.serialCalls).toBe(4);
  });

  it('hasBackup tells whether <uid>_resize exists', async () => {
    await src.create('u1');
    expect(await src.steps.hasBackup('u1')).toBe(false);
    await src.steps.migrateOut('u1');
    expect(await src.steps.hasBackup('u1')).toBe(true);
  });
});

describe('UidQueue', () => {
  it('runs the operations on one uid in call order, and a failed one does not stop the next', async () => {
    const queue = new UidQueue();
    const order: string[] = [];
    const slow = queue.run('u1', async () => {
      await new Promise((r) => setTimeout(r, 20));
      order.push('slow');
      throw new Error('boom');
    });
    const next = queue.run('u1', async () => {
      order.push('next');
      return 1;
    });
    const other = queue.run('u2', async () => {
      order.push('other uid');
    });
    await expect(slow).rejects.toThrow('boom');
    expect(await next).toBe(1);
    await other;
    expect(order).toEqual(['other uid', 'slow', 'next']);
  });
});
