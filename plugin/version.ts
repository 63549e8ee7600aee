// `kubectl nova version`: the plugin's own version, the Kubernetes server's, and whether the
// server serves the kubenova API.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApisApi, VersionApi } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../common/api/types.js';
import type { IO } from './io.js';
import { fields, formatObjects, type OutputFormat } from './output.js';
import type { Session } from './session.js';

/** The version in the package.json beside the plugin (the repository's, or the release archive's). */
export function pluginVersion(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  while (true) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'kubenova' && pkg.version) return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

export interface VersionInfo {
  client: { plugin: string; node: string };
  server?: { kubernetes: string; kubenovaApi: string };
}

export async function version(session: Session | undefined, io: IO, opts: { output?: OutputFormat }): Promise<void> {
  const info: VersionInfo = { client: { plugin: pluginVersion(), node: process.version } };
  if (session) {
    const server = await session.kc.makeApiClient(VersionApi).getCode();
    const groups = await session.kc.makeApiClient(ApisApi).getAPIVersions();
    const group = groups.groups.find((g) => g.name === GROUP);
    const served = group?.versions.map((v) => v.version) ?? [];
    info.server = {
      kubernetes: server.gitVersion,
      kubenovaApi: served.includes(VERSION)
        ? `${GROUP}/${VERSION}`
        : served.length
          ? `${GROUP}/${served.join(',')} (this plugin speaks ${VERSION})`
          : 'not installed (no kubenova CRDs)',
    };
  }
  if (opts.output) return io.out(formatObjects(info, opts.output));
  io.out(
    fields([
      ['kubectl-nova', `${info.client.plugin} (Node.js ${info.client.node})`],
      ['Kubernetes server', info.server?.kubernetes],
      ['kubenova API', info.server?.kubenovaApi],
    ]),
  );
}
