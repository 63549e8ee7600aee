import type { V1Lease } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../log.js';
import { LeaderElector, type LeaderElectionConfig, type LeaseApi } from './leader-election.js';

const log = createLogger({ component: 'test', level: 'silent' });

const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/** One Lease in memory, with the API server's answers: 404 when missing, 409 on a stale resourceVersion. */
class FakeLeases implements LeaseApi {
  lease?: V1Lease;
  private version = 0;

  readNamespacedLease = async (): Promise<V1Lease> => {
    if (!this.lease) throw apiError(404);
    return structuredClone(this.lease);
  };

  createNamespacedLease = async ({ body }: { body: V1Lease }): Promise<V1Lease> => {
    if (this.lease) throw apiError(409);
    return this.store(body);
  };

  replaceNamespacedLease = async ({ body }: { body: V1Lease }): Promise<V1Lease> => {
    if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw apiError(409);
    return this.store(body);
  };

  get holder(): string | undefined {
    return this.lease?.spec?.holderIdentity;
  }

  get renewedAt(): number {
    return new Date(String(this.lease?.spec?.renewTime)).getTime();
  }

  private store(body: V1Lease): V1Lease {
    this.lease = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: String(++this.version) } };
    return structuredClone(this.lease);
  }
}

interface Replica {
  elector: LeaderElector;
  started: number;
  stopped: number;
}

function replica(leases: FakeLeases, identity: string, onStart: () => void | Promise<void> = () => {}): Replica {
  const config: LeaderElectionConfig = { namespace: 'default', name: 'kubenova-operator', identity, ...TIMING };
  const r: Replica = { elector: undefined as unknown as LeaderElector, started: 0, stopped: 0 };
  r.elector = new LeaderElector(
    leases,
    config,
    {
      onStartedLeading: () => {
        r.started++;
        return onStart();
      },
      onStoppedLeading: () => {
        r.stopped++;
      },
    },
    log,
    // The fake timers' clock: time moves only when the test moves it, however fast the machine.
    () => Date.now(),
  );
  return r;
}

describe('LeaderElector', () => {
  let electors: LeaderElector[] = [];
  const started = (r: Replica) => {
    electors.push(r.elector);
    r.elector.start();
    return r;
  };

  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2025-01-01T12:00:00Z') });
  });
  afterEach(() => {
    for (const e of electors) e.stop();
    electors = [];
    vi.useRealTimers();
  });

  it('a leader whose caches take many lease durations to sync keeps renewing and keeps its lease', async () => {
    const leases = new FakeLeases();
    let synced!: () => void;
    const sync = new Promise<void>((resolve) => (synced = resolve));
    const a = started(replica(leases, 'a', () => sync));
    await vi.advanceTimersByTimeAsync(0);
    expect(a.started).toBe(1);
    expect(leases.holder).toBe('a');
    const b = started(replica(leases, 'b'));

    // The sync has not finished after four lease durations.
    for (let t = 0; t < 4 * TIMING.leaseDurationMs; t += TIMING.retryPeriodMs) {
      await vi.advanceTimersByTimeAsync(TIMING.retryPeriodMs);
      expect(Date.now() - leases.renewedAt).toBeLessThanOrEqual(TIMING.retryPeriodMs);
    }

    expect(a.elector.isLeader()).toBe(true);
    expect(a.stopped).toBe(0);
    expect(leases.holder).toBe('a');
    expect(b.elector.isLeader()).toBe(false);
    expect(b.started).toBe(0);

    synced();
    await vi.advanceTimersByTimeAsync(4 * TIMING.leaseDurationMs);
    expect(a.elector.isLeader()).toBe(true);
    expect(a.started).toBe(1);
    expect(a.stopped).toBe(0);
    expect(leases.holder).toBe('a');
  });

  it('a leader that cannot start gives up its lease at once instead of leading without acting', async () => {
    const leases = new FakeLeases();
    const a = started(replica(leases, 'a', () => Promise.reject(new Error('caches never synced'))));
    await vi.advanceTimersByTimeAsync(0);
    expect(a.started).toBe(1);
    expect(a.stopped).toBe(1);
    expect(a.elector.isLeader()).toBe(false);
  });

  it('a leader that shuts down releases the lease, and a follower takes it on its next try', async () => {
    const leases = new FakeLeases();
    const a = started(replica(leases, 'a'));
    await vi.advanceTimersByTimeAsync(0);
    const b = started(replica(leases, 'b'));

    await a.elector.release();
    expect(leases.holder).toBe('');
    expect(a.elector.isLeader()).toBe(false);

    await vi.advanceTimersByTimeAsync(TIMING.retryPeriodMs);
    expect(leases.holder).toBe('b');
    expect(b.elector.isLeader()).toBe(true);
    expect(a.stopped).toBe(0);
  });

  it('a follower takes the lease once the leader has stopped renewing for a lease duration', async () => {
    const leases = new FakeLeases();
    const a = started(replica(leases, 'a'));
    await vi.advanceTimersByTimeAsync(0);
    const b = started(replica(leases, 'b'));
    a.elector.stop();

    await vi.advanceTimersByTimeAsync(TIMING.leaseDurationMs - TIMING.retryPeriodMs);
    expect(leases.holder).toBe('a');
    await vi.advanceTimersByTimeAsync(2 * TIMING.retryPeriodMs);
    expect(leases.holder).toBe('b');
    expect(b.elector.isLeader()).toBe(true);
    expect(b.started).toBe(1);
  });
});
