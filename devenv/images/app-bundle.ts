// The application as the image holds it at /app: the compiled operator, node agent and their
// shared code from `npm run build`, package.json and the lockfile, and the production
// dependencies installed by `npm ci --omit=dev` (cached per lockfile).
import { cp, mkdir, rename, rm, copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pruneCache } from './cache.js';
import { run } from './exec.js';
import { hashFiles, hashTree, inputsTag } from './inputs.js';
import { workDir } from './oci.js';

/** The parts of dist/ the product is made of (devenv/, e2e/, bench/ and tools/ stay out). */
export const DIST_DIRS = ['common', 'operator', 'node-agent'];
/** Entry points the image's users start: the operator by default, the agent by the chart. */
const ENTRY_POINTS = ['dist/operator/main.js', 'dist/node-agent/main.js'];
const PACKAGE_FILES = ['package.json', 'package-lock.json'];
/**
 * --ignore-scripts: the production dependencies are plain JavaScript, and an install script
 * would run as root on the build machine. The Dockerfile installs them the same way.
 */
export const NPM_CI_ARGS = ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'];
/**
 * What `find` deletes from node_modules after the install: type declarations and source maps
 * are for compilers and debuggers, and they are half of its size (@kubernetes/client-node
 * alone ships 40 MB of them). The Dockerfile runs the same `find`.
 */
export const PRUNE_FIND_ARGS = [
  '-type',
  'f',
  '(',
  '-name',
  '*.d.ts',
  '-o',
  '-name',
  '*.d.?ts',
  '-o',
  '-name',
  '*.map',
  ')',
  '-delete',
];

export interface AppInputs {
  /** Hash of the dist/ folders the image holds. */
  dist: string;
  /** Hash of package.json and package-lock.json: they decide node_modules. */
  packages: string;
}

function checkBuilt(repoRoot: string): void {
  for (const f of ENTRY_POINTS)
    if (!existsSync(join(repoRoot, f)))
      throw new Error(`${f} is missing in ${repoRoot}: run \`npm run build\` there before building the image`);
}

export async function appInputs(repoRoot: string): Promise<AppInputs> {
  checkBuilt(repoRoot);
  const dist: Record<string, string> = {};
  for (const d of DIST_DIRS) dist[d] = await hashTree(join(repoRoot, 'dist', d));
  return {
    dist: inputsTag(dist),
    packages: await hashFiles(Object.fromEntries(PACKAGE_FILES.map((f) => [f, join(repoRoot, f)]))),
  };
}

/** What decides node_modules: the package files and how they are installed and pruned. */
export function modulesKey(inputs: AppInputs): string {
  return inputsTag({ packages: inputs.packages, npm: NPM_CI_ARGS, prune: PRUNE_FIND_ARGS });
}

/** A directory holding the production node_modules for the repo's lockfile, installed once per lockfile. */
export async function ensureProductionModules(
  cacheDir: string,
  repoRoot: string,
  inputs: AppInputs,
  log: (line: string) => void,
): Promise<string> {
  const dir = join(cacheDir, `app-modules-${modulesKey(inputs)}`);
  if (existsSync(join(dir, 'node_modules'))) return dir;
  log('installing the production dependencies (npm ci --omit=dev)');
  const work = await workDir(cacheDir, 'app-modules');
  try {
    for (const f of PACKAGE_FILES) await copyFile(join(repoRoot, f), join(work, f));
    await run('npm', NPM_CI_ARGS, {
      cwd: work,
      // npm ci honours NODE_ENV; the production set is chosen by --omit=dev alone.
      env: { ...process.env, NODE_ENV: 'production' },
      hint: 'npm could not install the production dependencies from the lockfile',
    });
    await run('find', [join(work, 'node_modules'), ...PRUNE_FIND_ARGS]);
    await rm(dir, { recursive: true, force: true });
    await rename(work, dir);
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  await pruneCache(cacheDir, /^app-modules-[0-9a-f]+$/, dir, 2);
  return dir;
}

/** Writes /app's contents into `appDir`. */
export async function stageApp(repoRoot: string, modulesDir: string, appDir: string): Promise<void> {
  checkBuilt(repoRoot);
  await mkdir(join(appDir, 'dist'), { recursive: true });
  for (const f of PACKAGE_FILES) await copyFile(join(repoRoot, f), join(appDir, f));
  for (const d of DIST_DIRS) await cp(join(repoRoot, 'dist', d), join(appDir, 'dist', d), { recursive: true });
  await cp(join(modulesDir, 'node_modules'), join(appDir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
}
