// Builds the container images without Docker or a registry and prints, for each, its
// reference and the archive to import (`ctr -n k8s.io images import <archive>`):
//
//   node dist/devenv/images/main.js [--cache-dir DIR] [--only pause|kubenova]
//
// Needs root and the tools devenv/images/setup.sh installs. Archives are cached by their
// inputs: a second run with nothing changed takes seconds.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildKubenovaImage } from './kubenova.js';
import { buildPauseImage } from './pause.js';
import { defaultCacheDir, SOURCE_DIR } from './paths.js';

export type { ImageArchive } from './oci.js';

const IMAGES = ['pause', 'kubenova'] as const;
type ImageKind = (typeof IMAGES)[number];

function isImageKind(v: string): v is ImageKind {
  return (IMAGES as readonly string[]).includes(v);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'cache-dir': { type: 'string' }, only: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write(`usage: node dist/devenv/images/main.js [--cache-dir DIR] [--only ${IMAGES.join('|')}]\n`);
    return;
  }
  const only = values.only;
  if (only !== undefined && !isImageKind(only)) throw new Error(`--only: one of ${IMAGES.join(', ')}`);
  const cacheDir = resolve(values['cache-dir'] ?? defaultCacheDir());
  // The image holds this checkout's dist/ and lockfile.
  const repoRoot = join(SOURCE_DIR, '..', '..');
  const build: Record<ImageKind, () => Promise<{ ref: string; archive: string }>> = {
    pause: () => buildPauseImage(cacheDir),
    kubenova: () => buildKubenovaImage(cacheDir, repoRoot),
  };
  // One after another: the machines this runs on have few cores and the builds are CPU-bound.
  for (const kind of IMAGES) {
    if (only !== undefined && only !== kind) continue;
    const started = Date.now();
    const image = await build[kind]();
    process.stderr.write(`images: ${kind} ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    process.stdout.write(`${image.ref} ${image.archive}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`images: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
