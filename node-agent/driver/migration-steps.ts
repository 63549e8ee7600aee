// The directory half of a cold migration or resize, written once for every driver: Nova's
// migrate_disk_and_power_off (migrateOut), finish_migration, confirm_resize and
// finish_revert_resize over the layout of instance-dirs.ts. Keeping the byte-exact
// `<uid>_resize` revert point, moving a received directory into place and the order that makes
// every step safe to repeat after a crash do not depend on what runs the guest; a driver
// supplies only what touches the guest and its definition (MigrationHooks).
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DriverError } from './driver.js';
import type { DomainInfo, DomainSpec, MigrationExport } from './driver.js';
import { copyDirAtomic, domainFiles, isDirectory, isFile } from './instance-dirs.js';
import type { InstanceDirs } from './instance-dirs.js';

export interface MigrationHooks {
  /** The driver's instances directory; its definition file marks a domain directory as complete. */
  readonly dirs: InstanceDirs;
  /** The disk's file name in a domain directory. */
  readonly disk: string;
  /** Throws DriverError for a uid the driver does not accept. */
  checkUid(op: string, uid: string): void;
  /** Runs fn once every earlier operation on uid has finished: the driver's own per-uid queue. */
  serial<T>(uid: string, fn: () => Promise<T>): Promise<T>;
  /**
   * The uid of the instance whose definition `dir` holds; undefined when there is none (or
   * none of this driver's). `uid` is the one expected; a driver may throw for a corrupt one.
   */
  definitionUid(dir: string, uid: string): Promise<string | undefined>;
  /** Powers the guest off (hard) when there is a domain; false when there is none. */
  powerOff(op: string, uid: string): Promise<boolean>;
  /** Whether the guest of uid runs here. */
  isRunning(op: string, uid: string): Promise<boolean>;
  /**
   * Stops the guest before its directory is replaced. Only for a driver whose guest runs
   * outside the directory; the fake's power state is in the definition that is replaced.
   */
  stopBeforeReplace?(op: string, uid: string): Promise<void>;
  /** Throws DriverError when spec cannot be applied on this host (libvirt: an unregistered image). */
  checkSpec?(op: string, spec: DomainSpec): void;
  /**
   * Throws DriverError, saying what is wrong, unless the domain directory `dir` is fit to define
   * spec from: its files only, no links, and a disk no bigger than spec.flavor allows (libvirt:
   * in the pinned format, with no backing or data file). Asked before a received directory or
   * a backup replaces the domain, and before the domain in place is redefined, so a refused
   * disk changes nothing.
   */
  inspect(op: string, spec: DomainSpec, dir: string): Promise<void>;
  /** Grows the disk to a root disk of rootDiskGiB: never shrinks, existing bytes unchanged. */
  growDisk(op: string, uid: string, rootDiskGiB: number): Promise<void>;
  /**
   * Puts spec.flavor into the definition of the domain in place and brings the guest to the
   * asked power state, writing only what differs.
   */
  settle(op: string, spec: DomainSpec, powerOn: boolean): Promise<DomainInfo>;
  /** Forgets what the driver keeps of the domain outside its directory (libvirt: its definition, console log). */
  undefine?(op: string, uid: string): Promise<void>;
  /** For messages: how the driver calls the domain of uid and this host. */
  names(uid: string): { domain: string; host: string };
}

/** The VirtDriver migration steps (see their promises in driver.ts) on a driver's hooks. */
export class MigrationSteps {
  readonly #h: MigrationHooks;

  constructor(hooks: MigrationHooks) {
    this.#h = hooks;
  }

  async migrateOut(uid: string): Promise<MigrationExport> {
    const h = this.#h;
    h.checkUid('migrateOut', uid);
    return h.serial(uid, async () => {
      await h.dirs.removeStrayTempDirs(uid);
      const backup = h.dirs.backupDir(uid);
      // Off before the copy, so the backup is a consistent image of a stopped guest.
      const exists = await h.powerOff('migrateOut', uid);
      // An existing backup is this migration's revert point: a repeat sends it unchanged.
      if (!(await isDirectory(backup))) {
        if (!exists) throw new DriverError('migrateOut', uid, 'no such domain');
        await copyDirAtomic(h.dirs.dir(uid), backup, h.dirs.tempDir(uid, 'resize'));
      }
      return { dir: backup, files: await domainFiles(backup) };
    });
  }

  async finishMigration(spec: DomainSpec, opts: { receivedDir?: string; powerOn: boolean }): Promise<DomainInfo> {
    const h = this.#h;
    const op = 'finishMigration';
    const uid = spec.uid;
    h.checkUid(op, uid);
    return h.serial(uid, async () => {
      const dir = h.dirs.dir(uid);
      const received = opts.receivedDir === undefined ? undefined : resolve(opts.receivedDir);
      // Before anything moves, so a spec this host cannot apply leaves the received files as they are.
      h.checkSpec?.(op, spec);
      await mkdir(h.dirs.root, { recursive: true });
      await h.dirs.removeStrayTempDirs(uid, received);
      if (received !== undefined && received !== dir && (await isDirectory(received))) {
        await this.#moveReceivedIntoPlace(spec, received);
      }
      if (!(await isFile(join(dir, h.disk))) || !(await isFile(join(dir, h.dirs.definition)))) {
        if (received === undefined) throw new DriverError(op, uid, 'no such domain');
        throw new DriverError(op, uid, `neither the received directory ${received} nor the domain exists`);
      }
      // A same-host resize, or a received directory moved in before a crash: the disk in place
      // is inspected like a received one.
      await h.inspect(op, spec, dir);
      // The disk first, the definition last: a crash in between leaves the old flavor with a
      // grown disk, which the retry completes.
      await h.growDisk(op, uid, spec.flavor.rootDiskGiB);
      return h.settle(op, spec, opts.powerOn);
    });
  }

  async #moveReceivedIntoPlace(spec: DomainSpec, received: string): Promise<void> {
    const h = this.#h;
    const op = 'finishMigration';
    const uid = spec.uid;
    const dir = h.dirs.dir(uid);
    // Checked before anything moves, so an incomplete or foreign transfer never replaces a domain.
    const receivedUid = await h.definitionUid(received, uid);
    if (receivedUid !== undefined && receivedUid !== uid) {
      throw new DriverError(op, uid, `received directory ${received} holds instance ${receivedUid}`);
    }
    if (receivedUid === undefined && (await isFile(join(dir, h.dirs.definition)))) {
      // The rest of a received directory whose cross-device move was interrupted while
      // removing it (its definition goes first): the domain is already in place.
      await rm(received, { recursive: true, force: true });
    } else if (receivedUid === undefined || !(await isFile(join(received, h.disk)))) {
      throw new DriverError(op, uid, `received directory ${received} does not hold a complete domain`);
    } else {
      // Refused as it was received, so a disk that may not be defined never replaces anything.
      await h.inspect(op, spec, received);
      // What was received is the truth: a domain left from an earlier try is stopped and replaced.
      await h.stopBeforeReplace?.(op, uid);
      const aside = await h.dirs.moveAside(uid);
      await h.dirs.moveInto(uid, received, dir);
      if (aside !== undefined) await rm(aside, { recursive: true, force: true });
    }
  }

  async confirmMigration(uid: string, sameHost: boolean): Promise<void> {
    const h = this.#h;
    const op = 'confirmMigration';
    h.checkUid(op, uid);
    await h.serial(uid, async () => {
      await h.dirs.removeStrayTempDirs(uid);
      if (!sameHost) {
        // The original here was powered off by migrateOut; a running one is the live instance
        // (a reverted resize, or the destination is this host after all).
        if (await h.isRunning(op, uid)) {
          const { domain, host } = h.names(uid);
          const refusal = 'refusing to delete it as the migrated-away original';
          throw new DriverError(op, uid, `${domain} is running on ${host}; ${refusal}`);
        }
        await h.undefine?.(op, uid);
        await h.dirs.removeDomainDir(uid);
      }
      await rm(h.dirs.backupDir(uid), { recursive: true, force: true });
    });
  }

  async revertMigration(spec: DomainSpec, opts: { powerOn: boolean }): Promise<DomainInfo> {
    const h = this.#h;
    const op = 'revertMigration';
    const uid = spec.uid;
    h.checkUid(op, uid);
    return h.serial(uid, async () => {
      await h.dirs.removeStrayTempDirs(uid);
      h.checkSpec?.(op, spec);
      const backup = h.dirs.backupDir(uid);
      if (await isDirectory(backup)) {
        if ((await h.definitionUid(backup, uid)) !== uid || !(await isFile(join(backup, h.disk)))) {
          throw new DriverError(op, uid, `${backup} does not hold a domain definition and disk`);
        }
        await h.inspect(op, spec, backup);
        // The running resized guest (same host) stops before its directory is replaced. The
        // backup is renamed, not copied, so the disk is the backup's bytes; the moved-aside
        // directory is removed last, and a crash before that leaves only a stray temp directory.
        await h.stopBeforeReplace?.(op, uid);
        const aside = await h.dirs.moveAside(uid);
        await rename(backup, h.dirs.dir(uid));
        if (aside !== undefined) await rm(aside, { recursive: true, force: true });
      } else {
        if (!(await isFile(join(h.dirs.dir(uid), h.dirs.definition)))) {
          throw new DriverError(op, uid, 'neither a resize backup nor the domain exists');
        }
        await h.inspect(op, spec, h.dirs.dir(uid));
      }
      return h.settle(op, spec, opts.powerOn);
    });
  }

  async hasBackup(uid: string): Promise<boolean> {
    this.#h.checkUid('hasBackup', uid);
    return isDirectory(this.#h.dirs.backupDir(uid));
  }
}
