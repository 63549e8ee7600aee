// What the operator does once a Migration has ended (confirmed, reverted, error): drop the
// transfer token, stop counting the placement, settle the quota, and after a revert set the
// wanted flavor back so spec and status agree and no second resize starts.
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { Placement } from '../scheduler/placement.js';
import type { MigrationQuota } from './quota.js';
import type { TransferTokens } from './transfer-token.js';

export class MigrationSettlement {
  constructor(
    private readonly kube: KubeClient,
    private readonly placement: Placement,
    private readonly quota: MigrationQuota,
    private readonly tokens: TransferTokens,
    private readonly events: EventRecorder,
  ) {}

  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    await this.tokens.drop(mig);
    this.placement.forget(mig.metadata.uid ?? '');
    await this.quota.settle(mig, inst);
    const s = mig.status ?? {};
    // DESIGN: revert resets spec.flavor.
    const reverted = s.status === 'reverted' && s.type === 'resize' && s.oldFlavor && s.newFlavor;
    if (reverted && inst && inst.spec.flavor === s.newFlavor!.name) {
      await this.kube.instances.patch(
        { namespace: inst.metadata.namespace, name: inst.metadata.name },
        { metadata: { resourceVersion: inst.metadata.resourceVersion }, spec: { flavor: s.oldFlavor!.name } },
      );
      const message = `resize reverted: spec.flavor set back from ${s.newFlavor!.name} to ${s.oldFlavor!.name}`;
      this.events.record(inst, 'Normal', EventReason.FlavorReset, message);
    }
    return {};
  }
}
