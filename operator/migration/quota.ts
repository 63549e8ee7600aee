// A resize's quota over its life: the increase reserved at start becomes usage once the resize
// has finished (Nova commits at finish_resize), is folded into the instance on confirm, and is
// given back on revert or failure.
import type { Instance, Migration } from '../../common/api/types.js';
import type { QuotaService } from '../quota/quota-service.js';

export class MigrationQuota {
  constructor(private readonly quota: QuotaService) {}

  /** finish_resize succeeded: the reserved increase becomes usage. */
  async commitFinished(mig: Migration): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const uid = mig.metadata.uid ?? '';
    if (this.quota.allocation(namespace, uid)?.state === 'reserved') await this.quota.commit(namespace, uid);
  }

  /** Confirm keeps a resize's increase (folded into the instance); revert and failure give it back. */
  async settle(mig: Migration, inst?: Instance): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const uid = mig.metadata.uid ?? '';
    if (!this.quota.allocation(namespace, uid)) return;
    if (mig.status?.status === 'confirmed' && inst) await this.quota.fold(namespace, uid, inst.metadata.uid ?? '');
    else await this.quota.release(namespace, (a) => a.consumer === uid);
  }
}
