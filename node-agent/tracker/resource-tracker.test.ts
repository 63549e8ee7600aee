import { describe, expect, it } from 'vitest';
import type { Claim, ClaimKind } from '../../common/api/types.js';
import { API_VERSION } from '../../common/api/types.js';
import { FakeCluster } from '../../common/kube/fake.js';
import { CAPACITY, Clock, silentLog } from '../testing.js';
import { ClaimFailed } from './claims.js';
import { ResourceTracker } from './resource-tracker.js';

const HOST = 'host-a';

const claim = (consumer: string, over: Partial<Claim> = {}): Claim => ({
  consumer,
  kind: 'instance',
  instance: `default/${consumer}`,
  vcpus: 1,
  memoryMiB: 1024,
  diskGiB: 1,
  ...over,
});

function tracker(
  cluster: FakeCluster,
  clock = new Clock(),
  heartbeatIntervalMs = 0,
  lease?: { renew(): Promise<void> },
  statusReportIntervalMs?: number,
) {
  const told: { kind: ClaimKind; failed: boolean }[] = [];
  const t = new ResourceTracker(
    cluster.client(),
    {
      host: HOST,
      driverKind: 'fake',
      labels: { rack: 'r1' },
      now: clock.now,
      heartbeatIntervalMs,
      lease,
      statusReportIntervalMs,
      onClaim: (kind, failure) => told.push({ kind, failed: failure !== undefined }),
    },
    silentLog,
  );
  return { t, told };
}

const node = (cluster: FakeCluster) => cluster.get('ComputeNode', HOST)!;
const writesTo = (cluster: FakeCluster) => cluster.writes.filter((w) => w.kind === 'ComputeNode').length;

describe('ResourceTracker against the in-memory API server', () => {
  it('register creates the ComputeNode: labels, capacity, allocatable after reserve and ratio, Ready', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    t.setMigrationEndpoint('10.0.0.1:7000');
    await t.register(CAPACITY);
    const cn = node(cluster);
    expect(cn.metadata.labels).toEqual({ rack: 'r1' });
    expect(cn.status?.capacity).toEqual(CAPACITY);
    // vCPUs x4 (default cpu ratio), memory minus the default 512 MiB reserve, disk x1.
    expect(cn.status?.allocatable).toEqual({ vcpus: 16, memoryMiB: 8192, diskGiB: 20 });
    expect(cn.status?.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
    expect(cn.status?.claims).toEqual([]);
    expect(cn.status?.driver).toBe('fake');
    expect(cn.status?.migrationEndpoint).toBe('10.0.0.1:7000');
    expect(cn.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('register adopts the claims an existing ComputeNode records and counts them', async () => {
    const cluster = new FakeCluster();
    cluster.seed<'ComputeNode'>({
      apiVersion: API_VERSION,
      kind: 'ComputeNode',
      metadata: { name: HOST, labels: { rack: 'r1' } },
      spec: {},
      status: { claims: [claim('a', { memoryMiB: 8000, createdAt: '2029-12-31T00:00:00.000Z' })] },
    });
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    expect(t.claims().map((c) => c.consumer)).toEqual(['a']);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 1, memoryMiB: 8000, diskGiB: 1 });
    // Only 192 MiB are left: the adopted claim counts against the next one.
    await expect(t.claim(claim('b'))).rejects.toBeInstanceOf(ClaimFailed);
  });

  it('records a claim in the ComputeNode before returning, and repeating it changes no claim', async () => {
    const cluster = new FakeCluster();
    const clock = new Clock();
    const { t, told } = tracker(cluster, clock);
    await t.register(CAPACITY);
    await t.claim(claim('a'));
    const first = node(cluster).status?.claims;
    expect(first).toEqual([{ ...claim('a'), createdAt: clock.now().toISOString() }]);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 1, memoryMiB: 1024, diskGiB: 1 });
    clock.advance(5_000);
    const writes = cluster.writes.length;
    await t.claim(claim('a'));
    expect(cluster.writes.length).toBe(writes);
    // The original record stays, createdAt included, and it is counted once.
    expect(node(cluster).status?.claims).toEqual(first);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 1, memoryMiB: 1024, diskGiB: 1 });
    expect(told).toEqual([{ kind: 'instance', failed: false }]);
  });

  it('refuses a claim over allocatable with ClaimFailed naming every shortfall, and writes nothing', async () => {
    const cluster = new FakeCluster();
    const { t, told } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a', { memoryMiB: 8000 }));
    const before = structuredClone(node(cluster));
    const writes = writesTo(cluster);
    const err = await t.claim(claim('b', { vcpus: 20, memoryMiB: 1024, diskGiB: 2 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClaimFailed);
    const failed = err as ClaimFailed;
    expect(failed.host).toBe(HOST);
    expect(failed.shortfalls).toEqual([
      { resource: 'memoryMiB', free: 192, requested: 1024 },
      { resource: 'vcpus', free: 15, requested: 20 },
    ]);
    expect(failed.message).toBe(
      `claim on ${HOST} failed: free memory 192 MiB < requested 1024 MiB; free vcpus 15 < requested 20`,
    );
    expect(writesTo(cluster)).toBe(writes);
    expect(node(cluster)).toEqual(before);
    expect(t.claims().map((c) => c.consumer)).toEqual(['a']);
    expect(told.at(-1)).toEqual({ kind: 'instance', failed: true });
  });

  it('retries a claim whose write conflicted after re-reading the ComputeNode', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    // An admin raises the memory reserve behind the tracker's back: its next write conflicts.
    await cluster.client().computeNodes.patch({ name: HOST }, { spec: { reserved: { memoryMiB: 1536 } } });
    await t.claim(claim('a'));
    const cn = node(cluster);
    expect(cn.spec.reserved).toEqual({ memoryMiB: 1536 });
    expect(cn.status?.claims?.map((c) => c.consumer)).toEqual(['a']);
    expect(cn.status?.allocatable?.memoryMiB).toBe(8704 - 1536);
    const statusWrites = cluster.writes.filter((w) => w.kind === 'ComputeNode' && w.verb === 'patchStatus').length;
    expect(statusWrites).toBe(3); // register, the refused write, the retry
  });

  it('gives the claim back in memory when its write fails for good, so memory and API agree', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    const boom = Object.assign(new Error('etcd unavailable'), { code: 503 });
    cluster.failNext('ComputeNode', 'patchStatus', boom);
    await expect(t.claim(claim('a'))).rejects.toThrow('etcd unavailable');
    expect(t.claims()).toEqual([]);
    expect(node(cluster).status?.claims).toEqual([]);
  });

  it('release frees exactly the amounts of the claim it removes, and repeating it writes nothing', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a', { vcpus: 2, memoryMiB: 2048, diskGiB: 2 }));
    await t.claim(claim('b'));
    expect(await t.release('a')).toBe(true);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 1, memoryMiB: 1024, diskGiB: 1 });
    expect(node(cluster).status?.claims?.map((c) => c.consumer)).toEqual(['b']);
    const writes = writesTo(cluster);
    expect(await t.release('a')).toBe(false);
    expect(writesTo(cluster)).toBe(writes);
  });

  it('releaseWhere frees every matching claim in one write and returns them', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a'));
    await t.claim(claim('mig-1', { kind: 'migration', instance: 'default/a', vcpus: 2, memoryMiB: 2048, diskGiB: 2 }));
    await t.claim(claim('b'));
    const writes = writesTo(cluster);
    const freed = await t.releaseWhere((c) => c.consumer === 'a' || c.instance === 'default/a');
    expect(freed.map((c) => `${c.kind}/${c.consumer}`).sort()).toEqual(['instance/a', 'migration/mig-1']);
    expect(writesTo(cluster)).toBe(writes + 1);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 1, memoryMiB: 1024, diskGiB: 1 });
    expect(await t.releaseWhere((c) => c.consumer === 'a')).toEqual([]);
    expect(writesTo(cluster)).toBe(writes + 1);
  });

  it('convertClaim turns a migration claim into the instance claim, keeping amounts and createdAt', async () => {
    const cluster = new FakeCluster();
    const clock = new Clock();
    const { t } = tracker(cluster, clock);
    await t.register(CAPACITY);
    const migClaim = claim('mig-1', {
      kind: 'migration',
      instance: 'default/a',
      vcpus: 2,
      memoryMiB: 2048,
      diskGiB: 2,
    });
    await t.claim(migClaim);
    const createdAt = clock.now().toISOString();
    clock.advance(60_000);
    const writes = writesTo(cluster);
    await t.convertClaim(
      { consumer: 'mig-1', kind: 'migration' },
      claim('a', { vcpus: 2, memoryMiB: 2048, diskGiB: 2 }),
    );
    expect(writesTo(cluster)).toBe(writes + 1);
    expect(node(cluster).status?.claims).toEqual([
      { ...claim('a', { vcpus: 2, memoryMiB: 2048, diskGiB: 2 }), createdAt },
    ]);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 2 });
    // Repeating it (the migration claim is gone) changes nothing.
    await t.convertClaim(
      { consumer: 'mig-1', kind: 'migration' },
      claim('a', { vcpus: 2, memoryMiB: 2048, diskGiB: 2 }),
    );
    expect(writesTo(cluster)).toBe(writes + 1);
  });

  it("convertClaim replaces the instance's old claim on the same host instead of adding to it", async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a'));
    await t.claim(claim('mig-1', { kind: 'migration', instance: 'default/a', vcpus: 2, memoryMiB: 2048, diskGiB: 2 }));
    await t.convertClaim(
      { consumer: 'mig-1', kind: 'migration' },
      claim('a', { vcpus: 2, memoryMiB: 2048, diskGiB: 2 }),
    );
    expect(node(cluster).status?.claims?.map((c) => `${c.kind}/${c.consumer}`)).toEqual(['instance/a']);
    expect(node(cluster).status?.allocated).toEqual({ vcpus: 2, memoryMiB: 2048, diskGiB: 2 });
  });

  it('re-creates a deleted ComputeNode on its next write, with every claim it holds', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a'));
    await t.claim(claim('b'));
    await cluster.client().computeNodes.delete({ name: HOST });
    expect(cluster.get('ComputeNode', HOST)).toBeUndefined();
    await t.release('b');
    const cn = node(cluster);
    expect(cn.metadata.labels).toEqual({ rack: 'r1' });
    expect(cn.status?.claims?.map((c) => c.consumer)).toEqual(['a']);
    expect(cn.status?.allocatable).toEqual({ vcpus: 16, memoryMiB: 8192, diskGiB: 20 });
  });

  it('re-creates a deleted ComputeNode when the next thing written is a claim', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a'));
    await cluster.client().computeNodes.delete({ name: HOST });
    await t.claim(claim('b'));
    expect(node(cluster).status?.claims?.map((c) => c.consumer)).toEqual(['a', 'b']);
  });

  it('spends no heartbeat write while a claim has just written one, and writes it once that is old', async () => {
    const cluster = new FakeCluster();
    const clock = new Clock();
    const { t } = tracker(cluster, clock, 10_000);
    await t.register(CAPACITY);
    await t.claim(claim('web-1'));
    const writes = writesTo(cluster);

    clock.advance(4_000);
    await t.heartbeat();
    expect(writesTo(cluster)).toBe(writes);

    clock.advance(2_000);
    await t.heartbeat();
    expect(writesTo(cluster)).toBe(writes + 1);
    expect(node(cluster).status?.heartbeatTime).toBe(clock.now().toISOString());
  });

  it('re-creates a deleted ComputeNode on the heartbeat', async () => {
    const cluster = new FakeCluster();
    const { t } = tracker(cluster);
    await t.register(CAPACITY);
    await t.claim(claim('a'));
    await cluster.client().computeNodes.delete({ name: HOST });
    await t.heartbeat();
    expect(node(cluster).status?.claims?.map((c) => c.consumer)).toEqual(['a']);
  });

  describe('with a node Lease', () => {
    /** A Lease that counts its renewals and fails while `down` is set. */
    const countingLease = () => {
      const lease = {
        renewals: 0,
        down: false,
        renew(): Promise<void> {
          if (lease.down) return Promise.reject(new Error('leases "host-a" is forbidden'));
          lease.renewals++;
          return Promise.resolve();
        },
      };
      return lease;
    };
    const setup = () => {
      const cluster = new FakeCluster();
      const clock = new Clock();
      const lease = countingLease();
      const { t } = tracker(cluster, clock, 10_000, lease, 60_000);
      return { cluster, clock, lease, t };
    };

    it('renews the Lease on each heartbeat and writes the ComputeNode status only once its report is due', async () => {
      const { cluster, clock, lease, t } = setup();
      await t.register(CAPACITY);
      const writes = writesTo(cluster);
      for (let i = 0; i < 5; i++) {
        clock.advance(10_000);
        await t.heartbeat();
      }
      expect(lease.renewals).toBe(5);
      expect(writesTo(cluster)).toBe(writes);

      clock.advance(10_000);
      await t.heartbeat();
      expect(lease.renewals).toBe(6);
      expect(writesTo(cluster)).toBe(writes + 1);
      expect(node(cluster).status?.heartbeatTime).toBe(clock.now().toISOString());
    });

    it('spends neither a renewal nor a status write while a claim has just written the status', async () => {
      const { cluster, clock, lease, t } = setup();
      await t.register(CAPACITY);
      clock.advance(10_000);
      await t.claim(claim('web-1'));
      const writes = writesTo(cluster);
      clock.advance(4_000);
      await t.heartbeat();
      expect(lease.renewals).toBe(0);
      expect(writesTo(cluster)).toBe(writes);
    });

    it('writes the status as the heartbeat while the Lease cannot be renewed, and leaves it to the Lease again once it can', async () => {
      const { cluster, clock, lease, t } = setup();
      await t.register(CAPACITY);
      const writes = writesTo(cluster);
      lease.down = true;
      clock.advance(10_000);
      await t.heartbeat();
      expect(writesTo(cluster)).toBe(writes + 1);
      expect(node(cluster).status?.heartbeatTime).toBe(clock.now().toISOString());

      lease.down = false;
      clock.advance(10_000);
      await t.heartbeat();
      expect(lease.renewals).toBe(1);
      expect(writesTo(cluster)).toBe(writes + 1);
    });

    it('writes the status at once when it comes back from a silence the operator may have judged: that write sets Ready again', async () => {
      const { cluster, clock, lease, t } = setup();
      await t.register(CAPACITY);
      clock.advance(10_000);
      await t.heartbeat();
      // The agent stalls; the operator marks the node Unknown meanwhile.
      await cluster.client().computeNodes.patchStatus(node(cluster), {
        conditions: [
          {
            type: 'Ready',
            status: 'Unknown',
            reason: 'NodeAgentNotResponding',
            lastTransitionTime: clock.now().toISOString(),
          },
        ],
      });
      clock.advance(45_000);
      await t.heartbeat();
      expect(lease.renewals).toBe(2);
      expect(node(cluster).status?.heartbeatTime).toBe(clock.now().toISOString());
      expect(node(cluster).status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    });

    it("puts back someone else's change to its status, and follows an admin's spec, at the next report", async () => {
      const { cluster, clock, t } = setup();
      await t.register(CAPACITY);
      await cluster.client().computeNodes.patch({ name: HOST }, { spec: { allocationRatio: { cpu: 2 } } });
      await cluster.client().computeNodes.patchStatus({ metadata: { name: HOST } }, { capacity: { vcpus: 1 } });
      for (let i = 0; i < 5; i++) {
        clock.advance(10_000);
        await t.heartbeat();
      }
      expect(node(cluster).status?.capacity?.vcpus).toBe(1);
      clock.advance(10_000);
      await t.heartbeat();
      expect(node(cluster).status?.capacity).toEqual(CAPACITY);
      expect(node(cluster).status?.allocatable?.vcpus).toBe(CAPACITY.vcpus * 2);
    });
  });
});
