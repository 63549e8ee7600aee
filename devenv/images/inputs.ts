// Cache keys: an image's tag is a short hash of everything that went into it, so a rebuild
// with the same inputs finds its archive and a changed input can never reuse a stale one.
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { compareCodeUnits } from '../../common/order.js';

/** JSON with object keys sorted, so that the same inputs always hash the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => compareCodeUnits(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Length of an image tag: 12 hex digits (48 bits) cannot collide among one machine's builds. */
export const TAG_LENGTH = 12;

/** The image tag for a set of inputs. */
export function inputsTag(inputs: Record<string, unknown>): string {
  return sha256(canonicalJson(inputs)).slice(0, TAG_LENGTH);
}

/**
 * A hash of a directory tree: every entry's relative path, type, permission bits and content
 * (a symlink's target). Times and owners are left out: they change on every checkout or build
 * without changing what the image would hold.
 */
export async function hashTree(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(dir, path);
      const st = await lstat(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        hash.update(`d ${path} ${mode}\n`);
        await walk(path);
      } else if (st.isSymbolicLink()) {
        hash.update(`l ${path} ${await readlink(full)}\n`);
      } else if (st.isFile()) {
        hash.update(`f ${path} ${mode} ${sha256(await readFile(full))}\n`);
      } else {
        throw new Error(`hashTree: ${full} is neither a file, a directory nor a symlink`);
      }
    }
  };
  await walk('');
  return hash.digest('hex');
}

/** A hash of several files' contents, each under its own name. */
export async function hashFiles(files: Record<string, string>): Promise<string> {
  const parts: Record<string, string> = {};
  for (const [name, path] of Object.entries(files)) parts[name] = sha256(await readFile(path));
  return sha256(canonicalJson(parts));
}
