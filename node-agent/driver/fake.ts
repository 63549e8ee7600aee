// A hypervisor made of directories: every domain is a real instance directory with a
// definition and a disk file, so migrations can copy and checksum real bytes and an agent
// restart finds its domains again, without needing KVM on the test machine.
//
// Its own small files (definition, new disk) are written with plain synchronous calls and no
// fsync. They stand in for a hypervisor's and only have to outlive the agent process, which the
// page cache does; and each asynchronous file operation cost more of the agent's CPU than the
// bytes it moved (a quarter of a simulated host's boot went to the file system).
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { copyFile, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { injectedFailureMessage, type FailStep } from '../../common/api/fault-injection.js';
import type { FlavorSnapshot, ResourceAmounts } from '../../common/api/types.js';
import { DriverError } from './driver.js';
import { domainDirProblems, InstanceDirs, isNotFound, syncAndClose, tempPathFor } from './instance-dirs.js';
import type { DomainInfo, DomainSpec, GuestInfo, MigrationExport, NicSpec, VirtDriver } from './driver.js';
import { MigrationSteps } from './migration-steps.js';
import { checkNics, normalizeNic } from './nics.js';
import { UidQueue } from '../../common/runtime/uid-queue.js';

/**
 * The fake disk is a scaled-down model of the real one: 64 KiB on the host per GiB of
 * flavor root disk. Large enough that copies, checksums and growth are real work, small
 * enough that a test host can hold hundreds of instances.
 */
export const FAKE_DISK_BYTES_PER_GIB = 64 * 1024;

const GIB = 1024 ** 3;
const AES_BLOCK = 16;
const WRITE_CHUNK = 1024 * 1024;
const DEFINITION = 'domain.json';
const DISK = 'disk.img';
// No '_' so a uid can never collide with a `<uid>_resize` directory, and no '/' or leading '.'
// so a uid cannot point outside the instances directory.
const UID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;

/** Size of the fake disk for a flavor's root disk; a 0 GiB root disk still has an image. */
export function fakeDiskSize(rootDiskGiB: number): number {
  return Math.max(1, rootDiskGiB) * FAKE_DISK_BYTES_PER_GIB;
}

/**
 * The bytes of `uid`'s fake disk at [offset, offset + length): the AES-256-CTR keystream under
 * the key SHA-256(uid), its counter starting at offset / 16. Depending only on uid and offset
 * makes every spawn of a uid identical and makes growth a pure append, so tests can tell a
 * copied or reverted disk from a freshly created one by content alone. (A SHA-256 per 32 bytes
 * did the same at a hundredth of the speed, and was most of a simulated host's CPU per boot.)
 */
export function fakeDiskContent(uid: string, offset: number, length: number): Buffer {
  const skip = offset % AES_BLOCK;
  const counter = Buffer.alloc(AES_BLOCK);
  counter.writeBigUInt64BE(BigInt(Math.floor(offset / AES_BLOCK)), 8);
  const key = createHash('sha256').update(uid).digest();
  const stream = createCipheriv('aes-256-ctr', key, counter).update(Buffer.alloc(skip + length));
  return stream.subarray(skip);
}

type FakePowerState = 'running' | 'shutdown';

interface DomainDefinition {
  uid: string;
  name: string;
  flavor: FlavorSnapshot;
  image: string;
  powerState: FakePowerState;
  /** Written once at first boot; a new marker means the guest was recreated, not restarted or moved. */
  marker: string;
  createdAt: string;
  /**
   * The ports bound to the domain, as libvirt's definition would hold them: what the host's
   * data plane must offer it. A definition written before NICs existed reads as none.
   */
  nics: NicSpec[];
}

export interface FakeDriverOptions {
  /** Time a boot takes, so tests can observe the spawning task state. */
  spawnDelayMs?: number;
  /** Time finishing a migration takes, so tests can observe the resize_finish task state. */
  finishDelayMs?: number;
  /** spawn of this image throws DriverError, so tests can exercise a failed spawn. */
  failSpawnForImage?: string;
  /**
   * The steps that fail for an instance (its fake.kubenova.io/fail annotation, see
   * common/api/fault-injection.ts), asked on every call so that removing the annotation lets
   * the next retry succeed. Must be cheap: it is called on every spawn, power-on and migration step.
   */
  injectedFailures?: (uid: string) => ReadonlySet<FailStep>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isFlavorSnapshot(v: unknown): v is FlavorSnapshot {
  return (
    isRecord(v) &&
    typeof v.name === 'string' &&
    typeof v.vcpus === 'number' &&
    typeof v.memoryMiB === 'number' &&
    typeof v.rootDiskGiB === 'number' &&
    typeof v.ephemeralDiskGiB === 'number'
  );
}

function isNicSpec(v: unknown): v is NicSpec {
  return (
    isRecord(v) &&
    typeof v.port === 'string' &&
    typeof v.network === 'string' &&
    typeof v.mac === 'string' &&
    typeof v.ip === 'string' &&
    typeof v.prefixLength === 'number' &&
    (v.gateway === undefined || typeof v.gateway === 'string') &&
    typeof v.mtu === 'number' &&
    typeof v.bridge === 'string'
  );
}

function parseDefinition(text: string, uid: string): DomainDefinition {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (
    !isRecord(v) ||
    v.uid !== uid ||
    typeof v.name !== 'string' ||
    !isFlavorSnapshot(v.flavor) ||
    typeof v.image !== 'string' ||
    (v.powerState !== 'running' && v.powerState !== 'shutdown') ||
    typeof v.marker !== 'string' ||
    typeof v.createdAt !== 'string' ||
    (v.nics !== undefined && !(Array.isArray(v.nics) && v.nics.every(isNicSpec)))
  ) {
    throw new DriverError('read', uid, `${DEFINITION} is not a valid domain definition`);
  }
  return {
    uid,
    name: v.name,
    flavor: v.flavor,
    image: v.image,
    powerState: v.powerState,
    marker: v.marker,
    createdAt: v.createdAt,
    nics: Array.isArray(v.nics) ? v.nics.filter(isNicSpec).map(normalizeNic) : [],
  };
}

/** The definition in `dir`, or undefined when there is none; a corrupt one is a DriverError. */
async function readDefinitionIn(dir: string, uid: string): Promise<DomainDefinition | undefined> {
  let text: string;
  try {
    text = readFileSync(join(dir, DEFINITION), 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  return parseDefinition(text, uid);
}

/** Writes `data` under a temp name and renames it over `path`, so a crash never leaves half a file. */
function writeFileReplacing(path: string, data: string | Buffer): void {
  const tmp = tempPathFor(path);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function writeDiskRange(fh: FileHandle, uid: string, from: number, to: number): Promise<void> {
  for (let off = from; off < to; off += WRITE_CHUNK) {
    const len = Math.min(WRITE_CHUNK, to - off);
    await fh.write(fakeDiskContent(uid, off, len), 0, len, off);
  }
}

export class FakeDriver implements VirtDriver {
  readonly kind = 'fake' as const;
  readonly #dirs: InstanceDirs;
  readonly #capacity: ResourceAmounts;
  readonly #options: FakeDriverOptions;
  #injectedFailures: ((uid: string) => ReadonlySet<FailStep>) | undefined;
  readonly #queue = new UidQueue();
  readonly #steps: MigrationSteps;

  constructor(stateDir: string, capacity: ResourceAmounts, options: FakeDriverOptions = {}) {
    // Absolute, because instanceDir() is handed to the migration transfer, which may run elsewhere.
    this.#dirs = new InstanceDirs(join(resolve(stateDir), 'instances'), DEFINITION);
    this.#capacity = { ...capacity };
    this.#options = { ...options };
    this.#injectedFailures = options.injectedFailures;
    this.#steps = new MigrationSteps({
      dirs: this.#dirs,
      disk: DISK,
      checkUid: (op, uid) => this.#checkUid(op, uid),
      serial: (uid, fn) => this.#queue.run(uid, fn),
      checkSpec: (op, spec) => {
        if (spec.nics) checkNics(op, spec.uid, spec.nics);
      },
      definitionUid: async (dir, uid) => (await readDefinitionIn(dir, uid))?.uid,
      powerOff: async (_op, uid) => {
        const def = await this.#read(uid);
        if (def?.powerState === 'running') await this.#setPower(def, 'shutdown');
        return def !== undefined;
      },
      isRunning: async (_op, uid) => {
        try {
          return (await this.#read(uid))?.powerState === 'running';
        } catch (err) {
          // A corrupt leftover of the original is deleted all the same.
          if (err instanceof DriverError) return false;
          throw err;
        }
      },
      inspect: (op, spec, dir) => this.#inspect(op, spec, dir),
      growDisk: (_op, uid, rootDiskGiB) => this.#growDisk(uid, rootDiskGiB),
      settle: async (op, spec, powerOn) => {
        const def = await this.#read(spec.uid);
        if (!def) throw new DriverError(op, spec.uid, 'no such domain');
        return this.#info(await this.#settle(def, spec.flavor, spec.nics, powerOn));
      },
      names: () => ({ domain: 'the domain', host: 'this host' }),
    });
  }

  maxDiskBytes(flavor: FlavorSnapshot): number {
    return fakeDiskSize(flavor.rootDiskGiB);
  }

  async capacity(): Promise<ResourceAmounts> {
    return { ...this.#capacity };
  }

  /**
   * Sets where the driver asks which steps fail for an instance (the injectedFailures option),
   * for a process that builds its index of annotated instances after the driver.
   */
  setInjectedFailures(lookup: (uid: string) => ReadonlySet<FailStep>): void {
    this.#injectedFailures = lookup;
  }

  instanceDir(uid: string): string {
    this.#checkUid('instanceDir', uid);
    return this.#dirs.dir(uid);
  }

  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    this.#checkUid('spawn', spec.uid);
    if (spec.nics) checkNics('spawn', spec.uid, spec.nics);
    this.#failIfInjected('spawn', spec.uid, 'spawn');
    return this.#queue.run(spec.uid, async () => {
      if (this.#options.failSpawnForImage !== undefined && spec.image === this.#options.failSpawnForImage) {
        throw new DriverError('spawn', spec.uid, `image ${spec.image} failed to boot`);
      }
      const existing = await this.#read(spec.uid);
      if (existing?.powerState === 'running') return this.#info(existing);
      await this.#bootDelay();
      if (existing) return this.#info(await this.#setPower(existing, 'running'));

      const dir = this.instanceDir(spec.uid);
      mkdirSync(dir, { recursive: true });
      // The disk goes first and the definition last: a definition on disk means the domain
      // is complete, and a spawn interrupted before it simply starts over.
      writeFileReplacing(join(dir, DISK), fakeDiskContent(spec.uid, 0, fakeDiskSize(spec.flavor.rootDiskGiB)));
      const def: DomainDefinition = {
        uid: spec.uid,
        name: spec.name,
        flavor: structuredClone(spec.flavor),
        image: spec.image,
        powerState: 'running',
        marker: randomBytes(16).toString('hex'),
        createdAt: new Date().toISOString(),
        nics: (spec.nics ?? []).map(normalizeNic),
      };
      await this.#write(def);
      return this.#info(def);
    });
  }

  async powerOff(uid: string): Promise<DomainInfo> {
    return this.#power('powerOff', uid, 'shutdown');
  }

  async powerOn(uid: string): Promise<DomainInfo> {
    this.#failIfInjected('powerOn', uid, 'power-on');
    return this.#power('powerOn', uid, 'running');
  }

  async destroy(uid: string): Promise<void> {
    this.#checkUid('destroy', uid);
    await this.#queue.run(uid, async () => {
      await this.#dirs.removeDomainDir(uid);
      await rm(this.#dirs.backupDir(uid), { recursive: true, force: true });
      await this.#dirs.removeStrayTempDirs(uid);
    });
  }

  async get(uid: string): Promise<DomainInfo | undefined> {
    this.#checkUid('get', uid);
    const def = await this.#read(uid);
    return def && this.#info(def);
  }

  async list(): Promise<DomainInfo[]> {
    let names: string[];
    try {
      const entries = await readdir(this.#dirs.root, { withFileTypes: true });
      names = entries.filter((e) => e.isDirectory() && UID_PATTERN.test(e.name)).map((e) => e.name);
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const infos: DomainInfo[] = [];
    for (const uid of names.sort()) {
      const def = await this.#read(uid);
      if (def) infos.push(await this.#info(def));
    }
    return infos;
  }

  async guestReport(uid: string): Promise<GuestInfo | undefined> {
    this.#checkUid('guestReport', uid);
    const def = await this.#read(uid);
    if (def?.powerState !== 'running') return undefined;
    const report: GuestInfo = {
      vcpus: def.flavor.vcpus,
      memoryKiB: def.flavor.memoryMiB * 1024,
      // The guest sees the flavor's full-size disk, not the scaled-down file.
      diskBytes: def.flavor.rootDiskGiB * GIB,
      marker: def.marker,
    };
    // What the tiny guest would see on its interfaces: its ports' addresses.
    if (def.nics.length > 0) report.ips = def.nics.map((n) => n.ip);
    return report;
  }

  /**
   * Grows the disk to the size for `rootDiskGiB` by appending the uid's deterministic bytes,
   * as finish_migration grows a disk for a bigger flavor. Existing bytes are never touched
   * and a smaller size is ignored, because Nova never shrinks a root disk.
   */
  async resizeDisk(uid: string, rootDiskGiB: number): Promise<DomainInfo> {
    this.#checkUid('resizeDisk', uid);
    return this.#queue.run(uid, async () => {
      const def = await this.#read(uid);
      if (!def) throw new DriverError('resizeDisk', uid, 'no such domain');
      await this.#growDisk(uid, rootDiskGiB);
      return this.#info(def);
    });
  }

  async migrateOut(uid: string): Promise<MigrationExport> {
    this.#failIfInjected('migrateOut', uid, 'migrate-out');
    return this.#steps.migrateOut(uid);
  }

  async finishMigration(spec: DomainSpec, opts: { receivedDir?: string; powerOn: boolean }): Promise<DomainInfo> {
    this.#failIfInjected('finishMigration', spec.uid, 'finish-migration');
    const ms = this.#options.finishDelayMs ?? 0;
    if (ms > 0) await sleep(ms);
    return this.#steps.finishMigration(spec, opts);
  }

  confirmMigration(uid: string, sameHost: boolean): Promise<void> {
    return this.#steps.confirmMigration(uid, sameHost);
  }

  async revertMigration(spec: DomainSpec, opts: { powerOn: boolean }): Promise<DomainInfo> {
    this.#failIfInjected('revertMigration', spec.uid, 'revert');
    return this.#steps.revertMigration(spec, opts);
  }

  hasBackup(uid: string): Promise<boolean> {
    return this.#steps.hasBackup(uid);
  }

  /**
   * What applies of the libvirt driver's disk inspection to a fake disk: the directory holds
   * only the definition and the disk, as regular files, and the disk is no bigger than the
   * fake disk of spec.flavor's root disk (there is no format or backing file to check).
   */
  async #inspect(op: string, spec: DomainSpec, dir: string): Promise<void> {
    const problems = await domainDirProblems(dir, { definition: DEFINITION, disk: DISK });
    if (problems.length === 0) {
      const size = (await stat(join(dir, DISK))).size;
      const limit = fakeDiskSize(spec.flavor.rootDiskGiB);
      if (size > limit) {
        const what = `the ${limit} bytes of flavor ${spec.flavor.name}'s ${spec.flavor.rootDiskGiB} GiB root disk here`;
        problems.push(`its ${DISK} is ${size} bytes, more than ${what}`);
      }
    }
    if (problems.length > 0) throw new DriverError(op, spec.uid, `refusing ${dir}: ${problems.join('; ')}`);
  }

  /** Appends the uid's deterministic bytes up to the size for `rootDiskGiB`; never shrinks. */
  async #growDisk(uid: string, rootDiskGiB: number): Promise<void> {
    const disk = join(this.instanceDir(uid), DISK);
    const current = (await stat(disk)).size;
    const target = fakeDiskSize(rootDiskGiB);
    if (target <= current) return;
    // Grown on a copy and renamed over, so a crash leaves the old disk whole.
    const tmp = tempPathFor(disk);
    await copyFile(disk, tmp);
    const fh = await open(tmp, 'r+');
    try {
      await writeDiskRange(fh, uid, current, target);
    } finally {
      await syncAndClose(fh);
    }
    await rename(tmp, disk);
  }

  /**
   * Puts `flavor` (and `nics`, when given; else the domain keeps its own) into the definition
   * and the guest into the asked power state, writing only on change.
   */
  async #settle(
    def: DomainDefinition,
    flavor: FlavorSnapshot,
    nics: NicSpec[] | undefined,
    powerOn: boolean,
  ): Promise<DomainDefinition> {
    const next: DomainDefinition = {
      ...def,
      flavor: structuredClone(flavor),
      powerState: powerOn ? 'running' : 'shutdown',
      nics: nics ? nics.map(normalizeNic) : def.nics,
    };
    if (isDeepStrictEqual(next, def)) return def;
    if (powerOn && def.powerState !== 'running') await this.#bootDelay();
    await this.#write(next);
    return next;
  }

  async #power(operation: string, uid: string, state: FakePowerState): Promise<DomainInfo> {
    this.#checkUid(operation, uid);
    return this.#queue.run(uid, async () => {
      const def = await this.#read(uid);
      if (!def) throw new DriverError(operation, uid, 'no such domain');
      if (def.powerState === state) return this.#info(def);
      if (state === 'running') await this.#bootDelay();
      return this.#info(await this.#setPower(def, state));
    });
  }

  async #setPower(def: DomainDefinition, state: FakePowerState): Promise<DomainDefinition> {
    const next = { ...def, powerState: state };
    await this.#write(next);
    return next;
  }

  async #bootDelay(): Promise<void> {
    const ms = this.#options.spawnDelayMs ?? 0;
    if (ms > 0) await sleep(ms);
  }

  async #read(uid: string): Promise<DomainDefinition | undefined> {
    return readDefinitionIn(this.instanceDir(uid), uid);
  }

  async #write(def: DomainDefinition): Promise<void> {
    writeFileReplacing(join(this.instanceDir(def.uid), DEFINITION), `${JSON.stringify(def, null, 2)}\n`);
  }

  async #info(def: DomainDefinition): Promise<DomainInfo> {
    let diskBytes = 0;
    try {
      diskBytes = statSync(join(this.instanceDir(def.uid), DISK)).size;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return {
      uid: def.uid,
      name: def.name,
      flavor: structuredClone(def.flavor),
      image: def.image,
      powerState: def.powerState,
      diskBytes,
      nics: structuredClone(def.nics),
    };
  }

  /** Throws the injected DriverError when the instance's annotation makes `step` fail; changes nothing. */
  #failIfInjected(operation: string, uid: string, step: FailStep): void {
    if (this.#injectedFailures?.(uid).has(step)) throw new DriverError(operation, uid, injectedFailureMessage(step));
  }

  #checkUid(operation: string, uid: string): void {
    if (!UID_PATTERN.test(uid))
      throw new DriverError(operation, uid, 'uid must be letters, digits, "-" or "." and not start with "."');
  }
}
