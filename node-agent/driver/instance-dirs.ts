// The on-disk layout every driver keeps for its domains — `instances/<uid>/` with a
// definition file and a disk, `<uid>_resize` as the revert point, and `<uid>_<purpose>.*.tmp`
// for copies in flight — and the crash-safe ways to write, copy, move and remove them. A
// half-made directory never looks complete: copies go through a temp dir renamed into place,
// and removals take the definition first.
import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export const RESIZE_SUFFIX = '_resize';
export const TEMP_SUFFIX = '.tmp';
/** `<uid>_<purpose>.<pid>.<hex>.tmp`: never a valid uid (no '_'), so list() never reports one. */
const TEMP_DIR_PATTERN = /^(?:resize|old|recv)\.\d+\.[0-9a-f]{8}\.tmp$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isNotFound(err: unknown): boolean {
  return isRecord(err) && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}

export function isCrossDevice(err: unknown): boolean {
  return isRecord(err) && err.code === 'EXDEV';
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/**
 * What makes `dir` unfit to define a domain from, one phrase each (empty when nothing does): it
 * must be a directory, not a link to one, holding the disk and (when there is one yet) the
 * definition as regular files with one link each, and nothing else but the temp files of
 * interrupted writes. A link could make the hypervisor open, and libvirt chown, a file of the
 * host; anything else was not made by a driver.
 */
export async function domainDirProblems(dir: string, files: { definition: string; disk: string }): Promise<string[]> {
  const top = await lstat(dir).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  if (!top?.isDirectory()) return [top ? 'it is not a directory' : 'it does not exist'];
  const problems: string[] = [];
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const st = await lstat(join(dir, name));
    const known = name === files.definition || name === files.disk;
    if (!known && name.endsWith(TEMP_SUFFIX) && st.isFile()) continue;
    if (!known) problems.push(`it holds ${JSON.stringify(name)}, which is no part of a domain`);
    else if (!st.isFile()) problems.push(`its ${name} is not a regular file`);
    else if (st.nlink !== 1) problems.push(`its ${name} has ${st.nlink} hard links`);
  }
  if (!names.includes(files.disk)) problems.push(`it has no ${files.disk}`);
  return problems;
}

/** The files that make up a domain directory (sorted), leaving out stray temp files of interrupted writes. */
export async function domainFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.endsWith(TEMP_SUFFIX))
    .map((e) => e.name)
    .sort();
}

// Unique per writer so two writers never share a temp file; a crash leaves only a stray
// temp file, never a half-written definition or disk under the real name.
export function tempPathFor(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`;
}

export async function syncAndClose(fh: FileHandle): Promise<void> {
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
  } finally {
    await syncAndClose(fh);
  }
  await rename(tmp, path);
}

/**
 * Copies the domain files of `src` into the fresh directory `tmp`, syncs them and renames
 * `tmp` to `dest`, so `dest` appears whole or not at all. A failed copy removes `tmp`.
 */
export async function copyDirAtomic(src: string, dest: string, tmp: string): Promise<void> {
  // The agent's alone (a libvirt driver opens an instance directory to QEMU's user only to boot it).
  await mkdir(tmp, { mode: 0o700 });
  try {
    for (const name of await domainFiles(src)) {
      await copyFile(join(src, name), join(tmp, name));
      await syncAndClose(await open(join(tmp, name), 'r'));
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** One driver's instances directory. Callers validate uids; these only join and move. */
export class InstanceDirs {
  constructor(
    readonly root: string,
    /** The definition file's name: it marks a domain directory as complete. */
    readonly definition: string,
  ) {}

  dir(uid: string): string {
    return join(this.root, uid);
  }

  /** Renames `from` to `to`; across filesystems (EXDEV) copies through a temp dir, then removes `from`. */
  async moveInto(uid: string, from: string, to: string): Promise<void> {
    try {
      await rename(from, to);
    } catch (err) {
      if (!isCrossDevice(err)) throw err;
      await copyDirAtomic(from, to, this.tempDir(uid, 'recv'));
      // The definition first, so a half-removed `from` never looks like a complete transfer.
      await rm(join(from, this.definition), { force: true });
      await rm(from, { recursive: true, force: true });
    }
  }

  /** Renames instanceDir(uid) out of the way; undefined when there is none. */
  async moveAside(uid: string): Promise<string | undefined> {
    const aside = this.tempDir(uid, 'old');
    try {
      await rename(this.dir(uid), aside);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return aside;
  }

  async removeDomainDir(uid: string): Promise<void> {
    const dir = this.dir(uid);
    // The definition goes first, so an interrupted removal leaves no half a domain that
    // list() would report; the leftover files go on the next try.
    await rm(join(dir, this.definition), { force: true });
    await rm(dir, { recursive: true, force: true });
  }

  async removeStrayTempDirs(uid: string, keep?: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const prefix = `${uid}_`;
    for (const name of names) {
      if (!name.startsWith(prefix) || !TEMP_DIR_PATTERN.test(name.slice(prefix.length))) continue;
      const path = join(this.root, name);
      if (path !== keep) await rm(path, { recursive: true, force: true });
    }
  }

  backupDir(uid: string): string {
    return `${this.dir(uid)}${RESIZE_SUFFIX}`;
  }

  tempDir(uid: string, purpose: 'resize' | 'old' | 'recv'): string {
    return join(this.root, `${uid}_${purpose}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
  }
}
