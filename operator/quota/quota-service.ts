// Quota reservations against the API server. Each change reads the namespace's
// ComputeQuotas fresh and writes back with their resourceVersion, so two operator
// replicas or workers reserving at once can never both pass a limit: the second write
// conflicts, re-reads and sees the first reservation (optimistic concurrency, no lock).
import type { ComputeQuota, QuotaAllocation } from '../../common/api/types.js';
import { isConflict } from '../../common/kube/client.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { ObjectCache } from '../../common/kube/api.js';
import type { Logger } from '../../common/log.js';
import { amountsOf, commit, fold, increase, overLimits, release, reserve, statusOf, type Amounts } from './ledger.js';
import { resourcesOf } from '../../common/api/flavor.js';
import type { FlavorSnapshot } from '../../common/api/types.js';

const MAX_ATTEMPTS = 20;

export class QuotaService {
  constructor(
    private readonly kube: KubeClient,
    private readonly quotas: ObjectCache<'ComputeQuota'>,
    private readonly log: Logger,
  ) {}

  /** Whether any ComputeQuota governs the namespace (no API call when none does). */
  governs(namespace: string): boolean {
    return this.quotas.list(namespace).length > 0;
  }

  /** Held for this consumer in the cache, if anything (for cheap idempotency checks). */
  allocation(namespace: string, consumer: string): QuotaAllocation | undefined {
    for (const q of this.quotas.list(namespace)) {
      const a = q.status?.allocations?.find((x) => x.consumer === consumer);
      if (a) return a;
    }
    return undefined;
  }

  /** Every resource a request would take over a limit, judged from the cache (an early, friendly refusal). */
  wouldExceed(namespace: string, amounts: Amounts): string[] {
    return this.quotas.list(namespace).flatMap((q) => overLimits(q.spec.hard, q.status?.allocations ?? [], amounts));
  }

  /** Reserves in every quota of the namespace; throws QuotaExceeded naming each resource over a limit. */
  reserve(namespace: string, consumer: string, instance: string, amounts: Amounts): Promise<void> {
    return this.update(namespace, (q, allocations) => reserve(q.spec.hard, allocations, consumer, instance, amounts));
  }

  commit(namespace: string, consumer: string): Promise<void> {
    return this.update(namespace, (_q, allocations) => commit(allocations, consumer));
  }

  release(namespace: string, match: (a: QuotaAllocation) => boolean): Promise<void> {
    return this.update(namespace, (_q, allocations) => release(allocations, match));
  }

  /** A confirmed resize: the instance's allocation becomes `holds` and the resize's goes. */
  fold(namespace: string, resizeConsumer: string, instanceConsumer: string, holds: Amounts): Promise<void> {
    return this.update(namespace, (_q, allocations) => fold(allocations, resizeConsumer, instanceConsumer, holds));
  }

  private async update(
    namespace: string,
    change: (q: ComputeQuota, allocations: QuotaAllocation[]) => QuotaAllocation[],
  ): Promise<void> {
    for (const cached of this.quotas.list(namespace)) {
      for (let attempt = 1; ; attempt++) {
        const q = await this.kube.quotas.get({ namespace, name: cached.metadata.name });
        if (!q) break;
        const before = q.status?.allocations ?? [];
        const after = change(q, before);
        if (after === before || JSON.stringify(after) === JSON.stringify(before)) break;
        try {
          await this.kube.quotas.patchStatus(q, statusOf(q.spec.hard, after));
          break;
        } catch (err) {
          if (!isConflict(err) || attempt >= MAX_ATTEMPTS) throw err;
          this.log.debug({ quota: `${namespace}/${q.metadata.name}`, attempt }, 'quota changed meanwhile; re-reading');
        }
      }
    }
  }
}

/** What a boot reserves: one instance, its flavor, and one port per network it attaches. */
export const bootAmounts = (r: { vcpus: number; memoryMiB: number; diskGiB: number }, ports = 0): Amounts =>
  amountsOf({ instances: 1, ...r, ports });

/** What a resize reserves: only the increase from the old flavor to the new (no instance). */
export const resizeIncrease = (from: FlavorSnapshot, to: FlavorSnapshot): Amounts =>
  increase(amountsOf(resourcesOf(from)), amountsOf(resourcesOf(to)));
