import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { API_VERSION, type Instance, type Migration, type MigrationStatus } from '../api/types.js';
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

function instance(uid: string, vmState: string | undefined, created = '2025-01-01T12:00:00Z'): Instance {
  return {
    apiVersion: API_VERSION,
    kind: 'Instance',
    metadata: { name: uid, namespace: 'default', uid, creationTimestamp: created as unknown as Date },
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

describe('node and agent domain metrics', () => {
  it("mirrors a host's allocated and allocatable per resource and drops them when the host is gone", async () => {
    const registry = new Registry();
    const m = new NodeResourceMetrics(registry);
    m.set('node-a', {
      allocated: { vcpus: 2, memoryMiB: 4096, diskGiB: 40 },
      allocatable: { vcpus: 32, memoryMiB: 15872, diskGiB: 200 },
    });
    expect(await value(registry, 'kubenova_node_allocated', { node: 'node-a', resource: 'memory_mib' })).toBe(4096);
    expect(await value(registry, 'kubenova_node_allocatable', { node: 'node-a', resource: 'vcpus' })).toBe(32);
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
