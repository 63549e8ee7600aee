// A resize's quota over its life: the increase reserved at start becomes usage once the resize
// has finished (Nova commits at finish_resize); on confirm the instance's allocation becomes its
// new flavor (a downsize lowers what is used); revert or failure gives back only what was reserved.
import { resourcesOf } from '../../common/api/flavor.js';
import type { Instance, Migration } from '../../common/api/types.js';
import { bootAmounts, type QuotaService } from '../quota/quota-service.js';

export class MigrationQuota {
  constructor(private readonly quota: QuotaService) {}

  /** finish_resize succeeded: the reserved increase becomes usage. */
  async commitFinished(mig: Migration): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const uid = mig.metadata.uid ?? '';
    if (this.quota.allocation(namespace, uid)?.state === 'reserved') await this.quota.commit(namespace, uid);
  }

  /**
   * Confirm: the instance's allocation becomes what it now has, the new flavor (folding the
   * resize's allocation into it). Revert and failure give back only what the resize reserved.
   */
  async settle(mig: Migration, inst?: Instance): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const uid = mig.metadata.uid ?? '';
    if (!this.quota.allocation(namespace, uid)) return;
    const newFlavor = mig.status?.newFlavor;
    if (mig.status?.status === 'confirmed' && inst && newFlavor) {
      await this.quota.fold(namespace, uid, inst.metadata.uid ?? '', bootAmounts(resourcesOf(newFlavor)));
    } else await this.quota.release(namespace, (a) => a.consumer === uid);
  }
}
