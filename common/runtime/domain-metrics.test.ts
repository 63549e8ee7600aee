import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { API_VERSION, type ComputeNode, type Instance, type Migration, type MigrationStatus } from '../api/types.js';
import { AgentMetrics, NodeResourceMetrics, OperatorMetrics } from './domain-metrics.js';
import { Metrics } from './metrics.js';

async function value(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      Object.entries(labels).every(([k, l]) => v.labels[k] === l) &&
      (v.labels as Record<string, unknown>).le === undefined,
  );
  return hit?.value;
}

/** A histogram's count and sum for one label set. */
async function histogram(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<{ count?: number; sum?: number }> {
  const { values } = await registry.getSingleMetric(name)!.get();
  const rows = (values as { value: number; labels: Record<string, unknown>; metricName?: string }[]).filter((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return {
    count: rows.find((v) => v.metricName === `${name}_count`)?.value,
    sum: rows.find((v) => v.metricName === `${name}_sum`)?.value,
  };
}

function instance(
  uid: string,
  vmState: string | undefined,
  created = '2025-01-01T12:00:00Z',
  namespace = 'default',
): Instance {
  return {
    apiVersion: API_VERSION,
    kind: 'Instance',
    metadata: { name: uid, namespace, uid, creationTimestamp: created as unknown as Date },
    spec: { flavor: 'm1.small', image: 'cirros' },
    ...(vmState ? { status: { vmState } as Instance['status'] } : {}),
  };
}

function migration(uid: string, status?: Partial<MigrationStatus>): Migration {
  return {
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name: uid, namespace: 'default', uid },
    spec: { instance: 'web-1', flavor: 'm1.large' },
    ...(status ? { status: status as MigrationStatus } : {}),
  };
}

describe('operator domain metrics', () => {
  it('observes boot time once per instance, from creation to the first active it sees after building', async () => {
    const registry = new Registry();
    const m = new OperatorMetrics(registry);
    m.observeInstance(instance('a', undefined));
    m.observeInstance(instance('a', 'building'));
    m.observeInstance(instance('a', 'active'), new Date('2025-01-01T12:00:07Z'));
    m.observeInstance(instance('a', 'active'), new Date('2025-01-01T12:10:00Z'));
    // Already active when first seen (an operator restart): its boot was not watched here.
    m.observeInstance(instance('b', 'active'), new Date('2025-01-01T13:00:00Z'));
    // Failed boots are not boot times.
    m.observeInstance(instance('c', 'building'));
    m.observeInstance(instance('c', 'error'));
    m.observeInstance(instance('c', 'active'), new Date('2025-01-01T13:00:00Z'));
    expect(await histogram(registry, 'kubenova_boot_time_to_active_seconds')).toEqual({ count: 1, sum: 7 });
  });

  it('counts each migration phase once per migration, not the history of migrations already there at start, and times the resize from startedAt to finishedAt', async () => {
    const registry = new Registry();
    const m = new OperatorMetrics(registry);
    const timed = { type: 'resize' as const, startedAt: '2025-01-01T12:00:00Z' };
    m.observeMigration(migration('new'));
    m.observeMigration(migration('new', { ...timed, status: 'pre-migrating' }));
    m.observeMigration(migration('new', { ...timed, status: 'pre-migrating' }));
    m.observeMigration(migration('new', { ...timed, status: 'migrating' }));
    m.observeMigration(migration('new', { ...timed, status: 'finished', finishedAt: '2025-01-01T12:00:12Z' }));
    m.observeMigration(migration('new', { ...timed, status: 'confirming', finishedAt: '2025-01-01T12:00:12Z' }));
    m.observeMigration(migration('new', { ...timed, status: 'confirmed', finishedAt: '2025-01-01T12:05:00Z' }));
    m.observeMigration(migration('new', { ...timed, status: 'confirmed', finishedAt: '2025-01-01T12:05:00Z' }));
    m.observeMigration(migration('old', { ...timed, status: 'confirmed', finishedAt: '2025-01-01T12:05:00Z' }));
    for (const status of ['pre-migrating', 'migrating', 'finished', 'confirming', 'confirmed']) {
      expect(await value(registry, 'kubenova_migrations_total', { type: 'resize', status })).toBe(1);
    }
    expect(await value(registry, 'kubenova_migrations_total', { type: 'migration', status: 'confirmed' })).toBe(0);
    expect(await histogram(registry, 'kubenova_resize_duration_seconds', { type: 'resize' })).toEqual({
      count: 1,
      sum: 12,
    });
  });

  it('exports every label value a dashboard needs at zero before anything happened', async () => {
    const registry = new Registry();
    new OperatorMetrics(registry);
    expect(await value(registry, 'kubenova_reschedules_total', { kind: 'instance' })).toBe(0);
    expect(await value(registry, 'kubenova_reschedules_total', { kind: 'migration' })).toBe(0);
    expect(await value(registry, 'kubenova_migrations_total', { type: 'migration', status: 'error' })).toBe(0);
  });
});

/** The values of a gauge by one label (other labels fixed by `where`). */
async function byLabel(
  registry: Registry,
  name: string,
  label: string,
  where: Record<string, string> = {},
): Promise<Record<string, number>> {
  const { values } = await registry.getSingleMetric(name)!.get();
  return Object.fromEntries(
    values
      .filter((v) => Object.entries(where).every(([k, l]) => v.labels[k] === l))
      .map((v) => [String(v.labels[label]), v.value]),
  );
}

function computeNode(name: string, ready: 'True' | 'False' | 'Unknown' | undefined): ComputeNode {
  return {
    apiVersion: API_VERSION,
    kind: 'ComputeNode',
    metadata: { name },
    spec: {},
    status: ready
      ? { conditions: [{ type: 'Ready', status: ready, reason: 'X', message: '', lastTransitionTime: '' }] }
      : {},
  } as ComputeNode;
}

describe('operator gauges from its caches', () => {
  it('counts the instances of each namespace by vmState at scrape time, every state shown, and forgets deleted ones', async () => {
    const registry = new Registry();
    const m = new OperatorMetrics(registry);
    m.observeInstance(instance('a', 'active'));
    m.observeInstance(instance('b', 'error'));
    m.observeInstance(instance('c', undefined, undefined, 'team-x'));
    m.observeInstance(instance('d', 'error', undefined, 'team-x'));
    m.observeInstance(instance('d', 'error', undefined, 'team-x'));
    expect(await byLabel(registry, 'kubenova_instances', 'state', { namespace: 'default' })).toEqual({
      building: 0,
      active: 1,
      stopped: 0,
      resized: 0,
      error: 1,
      deleted: 0,
    });
    // No vmState yet counts as building.
    expect(await value(registry, 'kubenova_instances', { namespace: 'team-x', state: 'building' })).toBe(1);
    expect(await value(registry, 'kubenova_instances', { namespace: 'team-x', state: 'error' })).toBe(1);
    m.observeInstance(instance('b', 'active'));
    expect(await value(registry, 'kubenova_instances', { namespace: 'default', state: 'error' })).toBe(0);
    expect(await value(registry, 'kubenova_instances', { namespace: 'default', state: 'active' })).toBe(2);
    m.forgetInstance(instance('c', undefined, undefined, 'team-x'));
    m.forgetInstance(instance('d', 'error', undefined, 'team-x'));
    // A namespace without instances leaves no series behind.
    expect(await value(registry, 'kubenova_instances', { namespace: 'team-x' })).toBeUndefined();
  });

  it('counts migrations by phase, and the live ones past their stepDeadline or whose rollback waited past a step timeout', async () => {
    const registry = new Registry();
    let now = Date.parse('2025-01-01T12:00:00Z');
    const m = new OperatorMetrics(registry, () => now);
    m.setStepTimeout(300_000);
    m.observeMigration(migration('new'));
    m.observeMigration(migration('on-time', { status: 'migrating', stepDeadline: '2025-01-01T12:05:00Z' }));
    m.observeMigration(migration('late', { status: 'pre-migrating', stepDeadline: '2025-01-01T11:59:00Z' }));
    // Waiting for a person: no deadline, never late.
    m.observeMigration(migration('waiting', { status: 'finished' }));
    // The guard asked the source to roll back at 11:56; it has until 12:01.
    const rollback = { phase: 'migrating', reason: 'StepTimedOut', message: 'late', time: '2025-01-01T11:56:00Z' };
    m.observeMigration(migration('rolling-back', { status: 'migrating', rollback } as Partial<MigrationStatus>));
    m.observeMigration(migration('done', { status: 'confirmed', stepDeadline: '2025-01-01T11:00:00Z' }));
    expect(await byLabel(registry, 'kubenova_migrations', 'phase')).toMatchObject({
      pending: 1,
      'pre-migrating': 1,
      migrating: 2,
      finished: 1,
      confirmed: 1,
      reverted: 0,
      error: 0,
    });
    expect(await byLabel(registry, 'kubenova_migrations_past_deadline', 'phase')).toEqual({
      'pre-migrating': 1,
      migrating: 0,
      'post-migrating': 0,
      finished: 0,
      confirming: 0,
      reverting: 0,
    });
    now = Date.parse('2025-01-01T12:02:00Z');
    expect(await value(registry, 'kubenova_migrations_past_deadline', { phase: 'migrating' })).toBe(1);
    now = Date.parse('2025-01-01T12:06:00Z');
    expect(await value(registry, 'kubenova_migrations_past_deadline', { phase: 'migrating' })).toBe(2);
    // The guard acts on the late one (a new phase, a new deadline) and a deleted one is forgotten.
    m.observeMigration(migration('late', { status: 'error' }));
    m.forgetMigration(migration('rolling-back'));
    expect(await value(registry, 'kubenova_migrations_past_deadline', { phase: 'pre-migrating' })).toBe(0);
    expect(await value(registry, 'kubenova_migrations_past_deadline', { phase: 'migrating' })).toBe(1);
    expect(await value(registry, 'kubenova_migrations', { phase: 'error' })).toBe(1);
  });

  it('reports each ComputeNode as ready only while its Ready condition is True, and forgets deleted ones', async () => {
    const registry = new Registry();
    const m = new OperatorMetrics(registry);
    m.observeNode(computeNode('node-a', 'True'));
    m.observeNode(computeNode('node-b', 'Unknown'));
    m.observeNode(computeNode('node-c', undefined));
    expect(await byLabel(registry, 'kubenova_node_ready', 'node')).toEqual({ 'node-a': 1, 'node-b': 0, 'node-c': 0 });
    m.observeNode(computeNode('node-a', 'False'));
    m.forgetNode(computeNode('node-b', 'Unknown'));
    expect(await byLabel(registry, 'kubenova_node_ready', 'node')).toEqual({ 'node-a': 0, 'node-c': 0 });
  });
});

describe('node and agent domain metrics', () => {
  it("mirrors a host's allocated and allocatable per resource in base units (cores, bytes) and drops them when the host is gone", async () => {
    const registry = new Registry();
    const m = new NodeResourceMetrics(registry);
    m.set('node-a', {
      allocated: { vcpus: 2, memoryMiB: 4096, diskGiB: 40 },
      allocatable: { vcpus: 32, memoryMiB: 15872, diskGiB: 200 },
    });
    const allocated = (resource: string, unit: string) =>
      value(registry, 'kubenova_node_allocated', { node: 'node-a', resource, unit });
    const allocatable = (resource: string, unit: string) =>
      value(registry, 'kubenova_node_allocatable', { node: 'node-a', resource, unit });
    expect(await allocated('cpu', 'cores')).toBe(2);
    expect(await allocated('memory', 'bytes')).toBe(4096 * 1024 * 1024);
    expect(await allocated('disk', 'bytes')).toBe(40 * 1024 ** 3);
    expect(await allocatable('cpu', 'cores')).toBe(32);
    expect(await allocatable('memory', 'bytes')).toBe(15872 * 1024 * 1024);
    expect(await allocatable('disk', 'bytes')).toBe(200 * 1024 ** 3);
    const { values } = await registry.getSingleMetric('kubenova_node_allocated')!.get();
    expect(values.map((v) => `${v.labels.resource}/${v.labels.unit}`).sort()).toEqual([
      'cpu/cores',
      'disk/bytes',
      'memory/bytes',
    ]);
    m.delete('node-a');
    expect(await value(registry, 'kubenova_node_allocated', { node: 'node-a' })).toBeUndefined();
  });

  it('counts claims by kind and result, one failure per short resource, and transferred bytes', async () => {
    const registry = new Registry();
    const m = new AgentMetrics(registry);
    m.claimed('instance');
    m.claimFailed('migration', ['memory', 'disk']);
    m.transferred(1024, 0.5);
    expect(await value(registry, 'kubenova_claims_total', { kind: 'instance', result: 'success' })).toBe(1);
    expect(await value(registry, 'kubenova_claims_total', { kind: 'migration', result: 'failure' })).toBe(1);
    expect(await value(registry, 'kubenova_claims_total', { kind: 'instance', result: 'failure' })).toBe(0);
    expect(await value(registry, 'kubenova_claim_failures_total', { resource: 'memory' })).toBe(1);
    expect(await value(registry, 'kubenova_claim_failures_total', { resource: 'vcpus' })).toBe(0);
    expect(await value(registry, 'kubenova_disk_transfer_bytes_total')).toBe(1024);
  });

  it('registers each set once per Metrics, however many hosts share it', () => {
    const metrics = new Metrics('node-agent');
    expect(metrics.agent).toBe(metrics.agent);
    expect(metrics.nodes).toBe(metrics.nodes);
    expect(metrics.registry.getSingleMetric('kubenova_claims_total')).toBeDefined();
    expect(metrics.registry.getSingleMetric('kubenova_scheduling_duration_seconds')).toBeUndefined();
  });
});
