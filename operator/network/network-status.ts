// The one writer of Network status: whether the Network may hand out addresses (Ready, or
// False with OverlappingCIDR naming the other Network, or InvalidAllocationRange), how many
// it has and holds, and the address handed out last (where the allocator of a restarted
// operator resumes its round robin). Every Network is looked at again when any changes, since
// a new or deleted Network changes who overlaps whom. It also holds each Network with the
// in-use finalizer until no address of it is held (in-use.ts).
import { setCondition } from '../../common/api/conditions.js';
import { EventReason } from '../../common/api/reasons.js';
import type { IPAllocation, Network, NetworkStatus } from '../../common/api/types.js';
import type { KubeClient, WatchedCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { ReconcileResult, Reconciler } from '../../common/runtime/controller.js';
import { parseIp, poolOf, poolSize, type Ipv4 } from './ipv4.js';
import { NetworkInUse } from './in-use.js';
import { judge, NetworkReason } from './validity.js';

export class NetworkStatusController implements Reconciler {
  private readonly startedAt: number;
  private readonly inUse: NetworkInUse;

  constructor(
    private readonly kube: Pick<KubeClient, 'networks'>,
    private readonly networks: WatchedCache<'Network'>,
    private readonly allocations: WatchedCache<'IPAllocation'>,
    private readonly events: EventRecorder,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.startedAt = this.now().getTime();
    this.inUse = new NetworkInUse(kube, events, now);
  }

  watch(enqueue: (key: string) => void): void {
    const everyNetwork = () => {
      for (const n of this.networks.list()) enqueue(n.metadata.name);
    };
    this.networks.on('add', everyNetwork);
    this.networks.on('update', everyNetwork);
    this.networks.on('delete', everyNetwork);
    this.allocations.on('add', (a) => enqueue(a.spec.network));
    this.allocations.on('delete', (a) => enqueue(a.spec.network));
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const found = this.networks.get(name);
    if (!found) return {};
    const held = this.allocations.list().filter((a) => a.spec.network === name);
    if (found.metadata.deletionTimestamp) {
      await this.inUse.deleting(found, held.length);
      return {};
    }
    const net = await this.inUse.hold(found);
    const verdict = judge(net, this.networks.list());
    const pool = poolOf(net.spec);
    const size = poolSize(pool);
    const inPool = held.filter((a) => {
      const ip = parseIp(a.spec.ip);
      return ip >= pool.first && ip <= pool.last && ip !== pool.gateway;
    }).length;
    const ready = verdict.valid
      ? { type: 'Ready', status: 'True' as const, reason: NetworkReason.Valid, message: 'ports may be made on it' }
      : { type: 'Ready', status: 'False' as const, reason: verdict.reason, message: verdict.message };
    const status: NetworkStatus = {
      conditions: setCondition(net.status?.conditions, ready, this.now(), net.metadata.generation),
      size,
      allocated: held.length,
      free: Math.max(0, size - inPool),
      observedGeneration: net.metadata.generation,
    };
    const last = this.lastAllocated(net, held);
    if (last) status.lastAllocated = last;
    if (unchanged(net.status, status)) return {};
    await this.kube.networks.patchStatus(net, status);
    const wasReady = net.status?.conditions?.find((c) => c.type === 'Ready')?.status;
    if (!verdict.valid && wasReady !== 'False') {
      this.events.record(net, 'Warning', EventReason.NetworkInvalid, verdict.message);
    }
    return {};
  }

  /**
   * The newest allocation's address, when it is newer than the one recorded: creation time,
   * then the higher address for ties within the same second. A recorded address whose
   * allocation is gone (released) is kept until an allocation made since this controller
   * started is seen.
   */
  private lastAllocated(net: Network, held: IPAllocation[]): string | undefined {
    const created = (a: IPAllocation) => new Date(a.metadata.creationTimestamp ?? 0).getTime();
    const order = (a: IPAllocation): [number, Ipv4] => [created(a), parseIp(a.spec.ip)];
    const newest = held.reduce<IPAllocation | undefined>((best, a) => {
      if (!best) return a;
      const [ta, ia] = order(a);
      const [tb, ib] = order(best);
      return ta > tb || (ta === tb && ia > ib) ? a : best;
    }, undefined);
    const recorded = net.status?.lastAllocated;
    if (!newest) return recorded;
    if (!recorded) return newest.spec.ip;
    const previous = held.find((a) => a.spec.ip === recorded);
    if (!previous) return created(newest) >= this.startedAt ? newest.spec.ip : recorded;
    const [tn, in_] = order(newest);
    const [tp, ip] = order(previous);
    return tn > tp || (tn === tp && in_ > ip) ? newest.spec.ip : recorded;
  }
}

function unchanged(before: NetworkStatus | undefined, after: NetworkStatus): boolean {
  if (!before) return false;
  const strip = (s: NetworkStatus) => ({
    ...s,
    conditions: s.conditions?.map(({ lastTransitionTime: _t, ...c }) => c),
  });
  return JSON.stringify(strip(before)) === JSON.stringify(strip({ ...before, ...after }));
}
