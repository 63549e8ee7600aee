// What Prometheus scrapes from kubenova: controller-runtime's metric names (so existing
// dashboards work) and kubenova's own, on the operator and on every node agent, after a
// scenario that boots, fails to place, fails a claim, loses a host and resizes across hosts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance, Migration } from '../common/api/types.js';
import { localOnly } from './harness/mode.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';

const AGENTS = ['node-a', 'node-b', 'node-c'];

// The agent's three queues: its instances, and the two sides of a migration.
const AGENT_CONTROLLERS = ['agent-instance', 'agent-migration-source', 'agent-migration-destination'];
const CONTROLLER_RUNTIME = [
  'controller_runtime_reconcile_total',
  'controller_runtime_reconcile_errors_total',
  'controller_runtime_reconcile_time_seconds',
  'workqueue_depth',
  'workqueue_adds_total',
  'workqueue_queue_duration_seconds',
  'workqueue_work_duration_seconds',
  'workqueue_retries_total',
  'workqueue_unfinished_work_seconds',
  'workqueue_longest_running_processor_seconds',
  'rest_client_requests_total',
];
const NODE_GAUGES = ['kubenova_node_allocated', 'kubenova_node_allocatable'];
const OPERATOR_METRICS = [
  'kubenova_scheduling_duration_seconds',
  'kubenova_boot_time_to_active_seconds',
  'kubenova_reschedules_total',
  'kubenova_migrations_total',
  'kubenova_resize_duration_seconds',
  'kubenova_instances',
  'kubenova_migrations',
  'kubenova_migrations_past_deadline',
  'kubenova_node_ready',
  'leader_election_master_status',
  ...NODE_GAUGES,
];
const AGENT_METRICS = [
  'kubenova_claims_total',
  'kubenova_claim_failures_total',
  'kubenova_disk_transfer_bytes_total',
  'kubenova_disk_transfer_duration_seconds',
  ...NODE_GAUGES,
];
// The node gauges' resource and unit labels, and what turns the ComputeNode's amount into that unit.
const RESOURCES = [
  { resource: 'cpu', unit: 'cores', key: 'vcpus', factor: 1 },
  { resource: 'memory', unit: 'bytes', key: 'memoryMiB', factor: 1024 ** 2 },
  { resource: 'disk', unit: 'bytes', key: 'diskGiB', factor: 1024 ** 3 },
] as const;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  types: Map<string, string>;
  samples: Sample[];
}

let env: TestEnv;
let watcher: InvariantWatcher;
let web: Instance;
let resize: Migration;
let sourceHost: string;
let destHost: string;

/** host:port of a component's metrics server, from the "running" line it logged last. */
function metricsAddress(logName: string): string {
  const lines = readFileSync(join(env.dir, `${logName}.log`), 'utf8').split('\n');
  let address: string | undefined;
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; metrics?: string };
    if ((entry.msg === 'operator running' || entry.msg === 'node agent running') && entry.metrics)
      address = entry.metrics;
  }
  if (!address) throw new Error(`${logName} logged no metrics address`);
  return address;
}

function parseExposition(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

async function scrape(logName: string): Promise<Scrape> {
  const res = await fetch(`http://${metricsAddress(logName)}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

/** Sum of the samples of `name` whose labels include `labels`. */
function sum(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return s.samples
    .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
    .reduce((acc, x) => acc + x.value, 0);
}

function has(s: Scrape, name: string, labels: Record<string, string> = {}): boolean {
  return s.samples.some((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
}

const agentScrapes = () => Promise.all(AGENTS.map((a) => scrape(`agent-${a}`)));
const total = (scrapes: Scrape[], name: string, labels: Record<string, string> = {}) =>
  scrapes.reduce((acc, s) => acc + sum(s, name, labels), 0);

const bootInstance = (name: string, spec: Record<string, unknown>) =>
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name },
    spec: { flavor: 'm1.tiny', image: 'cirros', ...spec },
  });
const isActive = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';
const isError = (i: Instance) => i.status?.vmState === 'error';
const migrationIn = (name: string, phase: string) =>
  env.waitFor(
    `migration ${name} ${phase}`,
    async () => {
      const m = await env.migration(name);
      return m?.status?.status === phase ? m : undefined;
    },
    60_000,
    100,
  );

/** Gauge values equal to the ComputeNode status of each host, once the component caught up. */
async function expectNodeGauges(logName: string, hosts: string[]): Promise<void> {
  await env.waitFor(
    `${logName}'s node gauges to match ComputeNode status of ${hosts.join(', ')}`,
    async () => {
      const s = await scrape(logName);
      for (const host of hosts) {
        const status = (await env.computeNode(host))?.status;
        for (const { resource, unit, key, factor } of RESOURCES) {
          const labels = { node: host, resource, unit };
          const allocated = status?.allocated?.[key];
          const allocatable = status?.allocatable?.[key];
          if (allocated === undefined || allocatable === undefined) return false;
          if (
            !has(s, 'kubenova_node_allocated', labels) ||
            sum(s, 'kubenova_node_allocated', labels) !== allocated * factor
          )
            return false;
          if (
            !has(s, 'kubenova_node_allocatable', labels) ||
            sum(s, 'kubenova_node_allocatable', labels) !== allocatable * factor
          )
            return false;
        }
      }
      return true;
    },
    15_000,
    250,
  );
}

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a', zone: 'az1' },
      { name: 'node-b', zone: 'az1' },
      { name: 'node-c', zone: 'az2' },
    ],
  });
  await Promise.all(['operator', ...AGENTS.map((a) => `agent-${a}`)].map((l) => env.waitForRunning(l)));
  watcher = new InvariantWatcher(env.kube, env.stateDir).start();
  // More memory and disk than any host has, and a single vCPU: its claim fails on two resources.
  env.apply({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'm1.huge' },
    spec: { vcpus: 1, memoryMiB: 65536, rootDiskGiB: 1000 },
  });

  // One that boots, one no host can take, one whose forced host cannot claim it.
  bootInstance('web', { flavor: 'm1.small', availabilityZone: 'az1' });
  bootInstance('nowhere', { availabilityZone: 'az9' });
  bootInstance('too-big', { flavor: 'm1.huge', host: 'node-c' });
  web = await env.waitForInstance('web', isActive, 'active');
  expect((await env.waitForInstance('nowhere', isError, 'error')).status?.fault?.reason).toBe('NoValidHost');
  expect((await env.waitForInstance('too-big', isError, 'error')).status?.fault?.reason).toBe('ClaimFailed');

  // A host lost between placement and claim: the only host of az2 stops answering, so the
  // placement is retried (a reschedule) and then finds no host.
  const nodeC = env.agents.get('node-c')!;
  nodeC.child.kill('SIGSTOP');
  try {
    bootInstance('lost-host', { availabilityZone: 'az2' });
    const lost = await env.waitForInstance('lost-host', isError, 'error', 30_000);
    expect(lost.status?.scheduling?.triedHosts).toEqual(['node-c']);
  } finally {
    nodeC.child.kill('SIGCONT');
  }
  await env.waitForNodesReady(AGENTS);

  // A resize to the other host of az1, confirmed.
  sourceHost = web.status?.host ?? '';
  env.kubectl(['patch', 'instance', 'web', '--type', 'merge', '-p', JSON.stringify({ spec: { flavor: 'm1.medium' } })]);
  const migName = `web-resize-${(web.metadata.generation ?? 1) + 1}`;
  destHost = (await migrationIn(migName, 'finished')).status?.destHost ?? '';
  expect(destHost).not.toBe(sourceHost);
  env.kubectl([
    'patch',
    'migration',
    migName,
    '--type',
    'merge',
    '-p',
    JSON.stringify({ spec: { decision: 'Confirm' } }),
  ]);
  resize = await migrationIn(migName, 'confirmed');
  await env.waitForInstance('web', (i) => isActive(i) && i.status?.host === destHost, `active on ${destHost}`);
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

localOnly('metrics', () => {
  it('the operator and every agent answer /healthz and /readyz with 200', async () => {
    for (const logName of ['operator', ...AGENTS.map((a) => `agent-${a}`)]) {
      for (const path of ['/healthz', '/readyz']) {
        const res = await fetch(`http://${metricsAddress(logName)}${path}`);
        expect(res.status, `${logName} ${path}`).toBe(200);
      }
    }
  });

  it('the operator exports every controller-runtime metric for its instance and migration controllers, and their reconciles moved', async () => {
    const s = await scrape('operator');
    for (const name of CONTROLLER_RUNTIME) expect(s.types.has(name), name).toBe(true);
    for (const controller of ['instance', 'migration']) {
      expect(sum(s, 'controller_runtime_reconcile_total', { controller })).toBeGreaterThan(0);
      expect(has(s, 'controller_runtime_reconcile_errors_total', { controller })).toBe(true);
      expect(sum(s, 'controller_runtime_reconcile_time_seconds_count', { controller })).toBeGreaterThan(0);
      expect(has(s, 'workqueue_depth', { name: controller })).toBe(true);
      expect(sum(s, 'workqueue_adds_total', { name: controller })).toBeGreaterThan(0);
      expect(sum(s, 'workqueue_queue_duration_seconds_count', { name: controller })).toBeGreaterThan(0);
      expect(sum(s, 'workqueue_work_duration_seconds_count', { name: controller })).toBeGreaterThan(0);
      expect(has(s, 'workqueue_retries_total', { name: controller })).toBe(true);
    }
  });

  it('every agent exports every controller-runtime metric for its instance and migration controllers, and the busy ones moved', async () => {
    const scrapes = await agentScrapes();
    for (const s of scrapes) {
      for (const name of CONTROLLER_RUNTIME) expect(s.types.has(name), name).toBe(true);
      for (const controller of AGENT_CONTROLLERS) {
        expect(has(s, 'controller_runtime_reconcile_errors_total', { controller })).toBe(true);
        expect(has(s, 'workqueue_depth', { name: controller })).toBe(true);
        expect(has(s, 'workqueue_retries_total', { name: controller })).toBe(true);
      }
    }
    for (const controller of AGENT_CONTROLLERS) {
      expect(total(scrapes, 'controller_runtime_reconcile_total', { controller })).toBeGreaterThan(0);
      expect(total(scrapes, 'controller_runtime_reconcile_time_seconds_count', { controller })).toBeGreaterThan(0);
      expect(total(scrapes, 'workqueue_adds_total', { name: controller })).toBeGreaterThan(0);
      expect(total(scrapes, 'workqueue_queue_duration_seconds_count', { name: controller })).toBeGreaterThan(0);
      expect(total(scrapes, 'workqueue_work_duration_seconds_count', { name: controller })).toBeGreaterThan(0);
    }
  });

  it('the operator exports every kubenova metric: scheduler decisions by result, boot time, reschedules, each resize phase once and the resize duration', async () => {
    const s = await scrape('operator');
    for (const name of OPERATOR_METRICS) expect(s.types.has(name), name).toBe(true);
    // web, too-big (forced), lost-host and the resize destination were placed; nowhere and lost-host's retry were not.
    expect(sum(s, 'kubenova_scheduling_duration_seconds_count', { result: 'success' })).toBeGreaterThanOrEqual(4);
    expect(sum(s, 'kubenova_scheduling_duration_seconds_count', { result: 'no_valid_host' })).toBeGreaterThanOrEqual(2);
    // Only web became active; its boot took at most as long as the test waited for it.
    expect(sum(s, 'kubenova_boot_time_to_active_seconds_count')).toBe(1);
    const bootSeconds = sum(s, 'kubenova_boot_time_to_active_seconds_sum');
    expect(bootSeconds).toBeGreaterThan(0);
    expect(bootSeconds).toBeLessThan(60);
    expect(sum(s, 'kubenova_reschedules_total', { kind: 'instance' })).toBeGreaterThanOrEqual(1);
    expect(has(s, 'kubenova_reschedules_total', { kind: 'migration' })).toBe(true);
    for (const status of ['pre-migrating', 'migrating', 'post-migrating', 'finished', 'confirming', 'confirmed']) {
      expect(sum(s, 'kubenova_migrations_total', { type: 'resize', status }), status).toBe(1);
    }
    expect(sum(s, 'kubenova_migrations_total', { type: 'resize', status: 'error' })).toBe(0);
    expect(sum(s, 'kubenova_migrations_total', { type: 'migration' })).toBe(0);
    expect(sum(s, 'kubenova_resize_duration_seconds_count', { type: 'resize' })).toBe(1);
    const resizeSeconds = sum(s, 'kubenova_resize_duration_seconds_sum', { type: 'resize' });
    const startToConfirmed =
      (Date.parse(resize.status?.finishedAt ?? '') - Date.parse(resize.status?.startedAt ?? '')) / 1000;
    expect(resizeSeconds).toBeGreaterThan(0);
    expect(resizeSeconds).toBeLessThanOrEqual(startToConfirmed);
  });

  it("the operator's node gauges equal every ComputeNode's allocated and allocatable, in cores and bytes", async () => {
    await expectNodeGauges('operator', AGENTS);
  });

  it("every agent exports every kubenova metric and its own host's allocated and allocatable, equal to its ComputeNode in cores and bytes", async () => {
    for (const host of AGENTS) {
      const s = await scrape(`agent-${host}`);
      for (const name of AGENT_METRICS) expect(s.types.has(name), `${host}: ${name}`).toBe(true);
      expect(s.samples.filter((x) => NODE_GAUGES.includes(x.name)).every((x) => x.labels.node === host)).toBe(true);
      await expectNodeGauges(`agent-${host}`, [host]);
    }
  });

  it('agents count claims by kind and result, one failure per short resource, and the disk transfer of the resize on its source', async () => {
    const [a, b, c] = await agentScrapes();
    const byHost = new Map([
      ['node-a', a!],
      ['node-b', b!],
      ['node-c', c!],
    ]);
    const source = byHost.get(sourceHost)!;
    const dest = byHost.get(destHost)!;
    // web on its first host; the resize's destination.
    expect(sum(source, 'kubenova_claims_total', { kind: 'instance', result: 'success' })).toBeGreaterThanOrEqual(1);
    expect(sum(dest, 'kubenova_claims_total', { kind: 'migration', result: 'success' })).toBe(1);
    // too-big on node-c: short of memory and disk, not of vCPUs.
    const failures = sum(c!, 'kubenova_claims_total', { kind: 'instance', result: 'failure' });
    expect(failures).toBeGreaterThanOrEqual(1);
    expect(sum(c!, 'kubenova_claim_failures_total', { resource: 'memory' })).toBe(failures);
    expect(sum(c!, 'kubenova_claim_failures_total', { resource: 'disk' })).toBe(failures);
    expect(sum(c!, 'kubenova_claim_failures_total', { resource: 'vcpus' })).toBe(0);
    expect(total([a!, b!], 'kubenova_claims_total', { result: 'failure' })).toBe(0);
    // The disk went from the source to the destination, every byte of each completed send
    // counted. (A second send of the same Migration today finds it already committed and is
    // counted again: the source re-runs `migrating` from a cache that has not yet seen its own
    // post-migrating write, and SendResult does not say the upload was refused.)
    const bytes = resize.status?.transfer?.bytes ?? 0;
    const transfers = sum(source, 'kubenova_disk_transfer_duration_seconds_count');
    expect(bytes).toBeGreaterThan(0);
    expect(transfers).toBeGreaterThanOrEqual(1);
    expect(sum(source, 'kubenova_disk_transfer_bytes_total')).toBe(bytes * transfers);
    expect(sum(dest, 'kubenova_disk_transfer_bytes_total')).toBe(0);
  });
  it('the operator counts instances by namespace and vmState, migrations by phase with none past its deadline, and every node Ready', async () => {
    await env.waitFor(
      "the operator's instance, migration and node gauges to match the cluster",
      async () => {
        const s = await scrape('operator');
        const instances = (state: string) => sum(s, 'kubenova_instances', { namespace: 'default', state });
        // web runs; nowhere, too-big and lost-host failed to boot.
        return (
          instances('active') === 1 &&
          instances('error') === 3 &&
          instances('building') === 0 &&
          sum(s, 'kubenova_migrations', { phase: 'confirmed' }) === 1 &&
          sum(s, 'kubenova_migrations') === 1 &&
          AGENTS.every((node) => sum(s, 'kubenova_node_ready', { node }) === 1)
        );
      },
      15_000,
      250,
    );
    const s = await scrape('operator');
    // Every state of a namespace with instances is there, at zero when none is in it.
    for (const state of ['building', 'active', 'stopped', 'resized', 'error', 'deleted'])
      expect(has(s, 'kubenova_instances', { namespace: 'default', state }), state).toBe(true);
    for (const phase of ['pre-migrating', 'migrating', 'post-migrating', 'finished', 'confirming', 'reverting'])
      expect(has(s, 'kubenova_migrations_past_deadline', { phase }), phase).toBe(true);
    expect(sum(s, 'kubenova_migrations_past_deadline')).toBe(0);
  });

  it('the operator reports itself as the leader, and both components their work in progress per queue', async () => {
    const s = await scrape('operator');
    const leader = s.samples.filter((x) => x.name === 'leader_election_master_status');
    expect(leader.map((x) => [x.labels.name, x.value])).toEqual([['kubenova-operator', 1]]);
    const scrapes = [s, ...(await agentScrapes())];
    for (const [i, sc] of scrapes.entries()) {
      for (const name of i === 0 ? ['instance', 'migration'] : AGENT_CONTROLLERS) {
        for (const metric of ['workqueue_unfinished_work_seconds', 'workqueue_longest_running_processor_seconds']) {
          expect(has(sc, metric, { name }), `${metric}{name=${name}}`).toBe(true);
          const v = sum(sc, metric, { name });
          expect(v >= 0 && Number.isFinite(v), `${metric}{name=${name}} = ${v}`).toBe(true);
        }
      }
    }
  });

  it('the operator and every agent count their API requests by code, method and the API server they went to', async () => {
    const apiServer = new URL(env.kube.config.getCurrentCluster()!.server).host;
    for (const logName of ['operator', ...AGENTS.map((a) => `agent-${a}`)]) {
      const s = await scrape(logName);
      const requests = s.samples.filter((x) => x.name === 'rest_client_requests_total');
      expect(new Set(requests.map((x) => x.labels.host)), logName).toEqual(new Set([apiServer]));
      // Lists and watches of the caches, and status written as merge patches.
      expect(sum(s, 'rest_client_requests_total', { method: 'GET', code: '200' }), logName).toBeGreaterThan(0);
      expect(sum(s, 'rest_client_requests_total', { method: 'PATCH', code: '200' }), logName).toBeGreaterThan(0);
      for (const x of requests) expect(x.labels.code, logName).toMatch(/^([1-5]\d\d|<error>)$/);
    }
    // The operator records Events (POST, 201).
    expect(
      sum(await scrape('operator'), 'rest_client_requests_total', { method: 'POST', code: '201' }),
    ).toBeGreaterThan(0);
  });
});
