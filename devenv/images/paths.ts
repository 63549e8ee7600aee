// Where the image build finds its source files and keeps its cache.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot } from '../controlplane/binaries.js';

const here = dirname(fileURLToPath(import.meta.url));

/** This folder in the source tree (pause.c, the libvirt config); from dist/ walk back to it. */
export const SOURCE_DIR = existsSync(join(here, 'setup.sh')) ? here : join(here, '..', '..', '..', 'devenv', 'images');

/** The default cache of built archives: beside the control-plane binaries, outside the repo. */
export function defaultCacheDir(): string {
  return join(cacheRoot(), 'images');
}
