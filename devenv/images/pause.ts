// The pod sandbox ("pause") image: our own pause program, compiled static with this machine's
// gcc, alone in one layer. Nothing is downloaded.
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pruneCache } from './cache.js';
import { run, SETUP_HINT } from './exec.js';
import { inputsTag, sha256 } from './inputs.js';
import {
  addLayer,
  archivePath,
  archivePattern,
  imageRef,
  newLayout,
  setConfig,
  workDir,
  writeArchive,
  type ImageArchive,
  type ImageConfig,
} from './oci.js';
import { SOURCE_DIR } from './paths.js';

export const PAUSE_NAME = 'kubenova-pause';
/** -static: the image holds no C library. -s and -Os: it is the smallest binary that does the job. */
const CFLAGS = ['-Os', '-static', '-s', '-Wall', '-Wextra', '-Werror'];
/** The nobody user of upstream's pause image: the sandbox needs no privilege. */
const CONFIG: ImageConfig = { entrypoint: ['/pause'], user: '65535:65535' };
/** Bump when the way the image is put together changes without any input changing. */
const RECIPE = 2;

export async function buildPauseImage(cacheDir: string): Promise<ImageArchive> {
  const source = join(SOURCE_DIR, 'pause', 'pause.c');
  const gcc = (await run('gcc', ['--version'], { hint: SETUP_HINT })).split('\n')[0]?.trim();
  const tag = inputsTag({
    recipe: RECIPE,
    source: sha256(await readFile(source)),
    gcc,
    cflags: CFLAGS,
    config: CONFIG,
  });
  const ref = imageRef(PAUSE_NAME, tag);
  const archive = archivePath(cacheDir, ref);
  if (existsSync(archive)) return { ref, archive };

  const work = await workDir(cacheDir, PAUSE_NAME);
  try {
    const root = join(work, 'rootfs');
    await mkdir(root, { mode: 0o755 });
    await chmod(root, 0o755);
    await run('gcc', [...CFLAGS, '-o', join(root, 'pause'), source], {
      hint: 'the pause program must link statically: libc6-dev provides libc.a (bash devenv/images/setup.sh)',
    });
    const layout = join(work, 'oci');
    await newLayout(layout);
    await addLayer(layout, { dir: root, createdBy: 'gcc -static pause.c', normalize: true });
    await setConfig(layout, CONFIG);
    await writeArchive(layout, ref, archive);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await pruneCache(cacheDir, archivePattern(PAUSE_NAME), archive, 3);
  return { ref, archive };
}
