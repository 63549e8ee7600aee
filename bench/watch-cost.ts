// `npm run bench:watch-cost`: what the node agents' open Instance watches cost kube-apiserver on
// each Instance write. Custom resources have no watch-cache index (pods have one on
// spec.nodeName), so kube-apiserver hands every Instance event to every open Instance watch and
// each checks its field selector. With HOSTS agents, the writes of a booted Instance are timed
// with one field-selected watch per host open (status.scheduling.selectedHost, as the agents
// watch now), with two (status.host as well, as they did before), and with none, interleaved.
// The watches select other hosts' instances, so every event is filtered out, as it is for all
// but one agent in a cluster.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { GROUP, VERSION } from '../common/api/types.js';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { repoRoot } from '../devenv/components.js';
import { HttpClient } from './http.js';
import { cpuSeconds, findPids, median } from './measure.js';

const HOSTS = Number(process.env.HOSTS ?? 100);
const WRITES = Number(process.env.WRITES ?? 1500);
const REPEATS = Number(process.env.REPEATS ?? 5);
const CLIENTS = 8;
// kube-apiserver serves at most 100 concurrent HTTP/2 streams per connection by default.
const WATCHES_PER_CONNECTION = 50;

const SELECTORS = {
  none: [],
  'one per host (selectedHost)': ['status.scheduling.selectedHost'],
  'two per host (+ status.host)': ['status.scheduling.selectedHost', 'status.host'],
} as const satisfies Record<string, readonly string[]>;
type Setup = keyof typeof SELECTORS;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-watch-cost-'));
  const cp = await ControlPlane.start({ dir });
  const ca = readFileSync(cp.caPath);
  const writer = new HttpClient({ server: cp.server, ca, token: cp.adminToken, keepAlive: true });
  const headers = { authorization: `Bearer ${cp.adminToken}` };
  const instances = `/apis/${GROUP}/${VERSION}/namespaces/default/instances`;
  const open: { agent: Agent; abort: AbortController }[] = [];
  try {
    const [apiserver] = findPids('kube-apiserver', dir);
    if (apiserver === undefined) throw new Error(`no kube-apiserver process found for ${dir}`);
    cp.kubectl(['apply', '-f', join(repoRoot, 'crds', `instances.${GROUP}.yaml`)]);
    cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', `instances.${GROUP}`]);
    const patchStatus = (name: string, status: object) =>
      writer.json('PATCH', `${instances}/${name}/status`, { status }, 'application/merge-patch+json');
    // Booted instances on hosts no watch names: every event is filtered out by every watch.
    const names = Array.from({ length: CLIENTS }, (_, k) => `web-${k}`);
    for (const name of names) {
      await writer.json('POST', instances, {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'Instance',
        metadata: { name },
        spec: { flavor: 'm1.small', image: 'cirros' },
      });
      await patchStatus(name, {
        vmState: 'active',
        taskState: '',
        host: 'elsewhere',
        scheduling: { selectedHost: 'elsewhere' },
      });
    }

    const openWatches = async (fields: readonly string[]) => {
      const paths = Array.from({ length: HOSTS }, (_, h) => `host-${h}`).flatMap((host) =>
        fields.map((f) => `/apis/${GROUP}/${VERSION}/instances?watch=1&fieldSelector=${f}%3D${host}`),
      );
      for (let i = 0; i < paths.length; i += WATCHES_PER_CONNECTION) {
        const agent = new Agent({ connect: { ca }, allowH2: true });
        const abort = new AbortController();
        open.push({ agent, abort });
        for (const path of paths.slice(i, i + WATCHES_PER_CONNECTION)) {
          const res = await request(cp.server + path, { dispatcher: agent, headers, signal: abort.signal });
          if (res.statusCode !== 200) throw new Error(`watch ${path}: ${res.statusCode} ${await res.body.text()}`);
          res.body.on('data', () => undefined).on('error', () => undefined);
        }
      }
    };
    const ms = new Map<Setup, number[]>();
    let tick = 0;
    for (let r = 0; r < REPEATS; r++) {
      for (const setup of Object.keys(SELECTORS) as Setup[]) {
        await openWatches(SELECTORS[setup]);
        const before = cpuSeconds(apiserver)!;
        let sent = 0;
        await Promise.all(
          names.map(async (name) => {
            while (sent < WRITES) {
              sent++;
              const at = new Date(Date.UTC(2026, 0, 1) + ++tick * 1000).toISOString();
              await patchStatus(name, { guest: { reportedAt: at } });
            }
          }),
        );
        ms.set(setup, [...(ms.get(setup) ?? []), ((cpuSeconds(apiserver)! - before) * 1000) / WRITES]);
        await closeAll(open);
      }
    }
    console.log(
      `kube-apiserver CPU per Instance status write (ms) with ${HOSTS} hosts' agent watches open, ` +
        `median of ${REPEATS} interleaved runs of ${WRITES}`,
    );
    const none = median(ms.get('none')!);
    for (const [setup, xs] of ms) {
      const watches = HOSTS * SELECTORS[setup].length;
      const perWatch = watches ? `, ${(((median(xs) - none) * 1000) / watches).toFixed(1)} µs per watch` : '';
      const spread = `${Math.min(...xs).toFixed(2)} to ${Math.max(...xs).toFixed(2)}`;
      console.log(`  ${setup.padEnd(30)} ${median(xs).toFixed(2)} (${spread})${perWatch}`);
    }
  } finally {
    await closeAll(open);
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function closeAll(open: { agent: Agent; abort: AbortController }[]): Promise<void> {
  for (const { agent, abort } of open.splice(0)) {
    abort.abort();
    await agent.destroy().catch(() => undefined);
  }
}

await main();
