// Finds KWOK's controller and the Stages it plays, building them on first use (a few minutes)
// with build.sh beside this file; cached outside the repo by version and go.sum.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface KwokBinaries {
  kwok: string;
  /** The Stages (node initialize, heartbeat with lease, pod ready, complete, delete) as one config file. */
  stages: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The Go module lives in the source tree; from dist/ walk back to it. */
const moduleDir = existsSync(join(here, 'build.sh')) ? here : join(here, '..', '..', '..', 'devenv', 'kwok');

let cached: KwokBinaries | undefined;

export function ensureKwok(): KwokBinaries {
  if (cached) return cached;
  const out = execFileSync('bash', [join(moduleDir, 'build.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const dir = out.trim().split('\n').pop() ?? '';
  cached = { kwok: join(dir, 'kwok'), stages: join(dir, 'stages.yaml') };
  return cached;
}
