import { describe, expect, it } from 'vitest';
import { Metrics } from './metrics.js';
import type { InFlight } from './workqueue.js';

async function sample(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

const queue = (inFlight: InFlight) => ({ inFlight: () => inFlight });

describe('controller-runtime and client metrics', () => {
  it("reads the work in progress from the queues at scrape time: seconds summed over a name's queues, the longest one's", async () => {
    const metrics = new Metrics('node-agent');
    let busy: InFlight = { count: 1, unfinishedSeconds: 4, longestSeconds: 4 };
    // Two hosts in one process each have an agent-instance queue.
    metrics.trackQueue('agent-instance', { inFlight: () => busy });
    metrics.trackQueue('agent-instance', queue({ count: 2, unfinishedSeconds: 9, longestSeconds: 6 }));
    metrics.trackQueue('agent-migration-source', queue({ count: 0, unfinishedSeconds: 0, longestSeconds: 0 }));
    const unfinished = 'workqueue_unfinished_work_seconds';
    const longest = 'workqueue_longest_running_processor_seconds';
    expect(await sample(metrics, unfinished, { name: 'agent-instance' })).toBe(13);
    expect(await sample(metrics, longest, { name: 'agent-instance' })).toBe(6);
    expect(await sample(metrics, unfinished, { name: 'agent-migration-source' })).toBe(0);
    busy = { count: 1, unfinishedSeconds: 30, longestSeconds: 30 };
    expect(await sample(metrics, unfinished, { name: 'agent-instance' })).toBe(39);
    expect(await sample(metrics, longest, { name: 'agent-instance' })).toBe(30);
  });

  it('reports leader_election_master_status as the lease holder says at each scrape', async () => {
    const metrics = new Metrics('operator');
    let leading = false;
    metrics.leaderElection('kubenova-operator', () => leading);
    expect(await sample(metrics, 'leader_election_master_status', { name: 'kubenova-operator' })).toBe(0);
    leading = true;
    expect(await sample(metrics, 'leader_election_master_status', { name: 'kubenova-operator' })).toBe(1);
  });

  it('counts API requests by code, method and host', async () => {
    const metrics = new Metrics('operator');
    metrics.apiRequest({ code: '200', method: 'GET', host: '10.0.0.1:6443' });
    metrics.apiRequest({ code: '200', method: 'GET', host: '10.0.0.1:6443' });
    metrics.apiRequest({ code: '409', method: 'PATCH', host: '10.0.0.1:6443' });
    const total = 'rest_client_requests_total';
    expect(await sample(metrics, total, { code: '200', method: 'GET', host: '10.0.0.1:6443' })).toBe(2);
    expect(await sample(metrics, total, { code: '409', method: 'PATCH' })).toBe(1);
  });
});
