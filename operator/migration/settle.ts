// What the operator does once a Migration has ended (confirmed, reverted, error): drop the
// transfer token, stop counting the placement, settle the quota, and set the instance's
// wanted flavor in line with what the instance runs, so no second resize starts. Done once:
// the Migration's Settled condition says so, so a later pass (a resync, a cancel) cannot set
// a flavor back that the user has asked for again since.
import { setCondition } from '../../common/api/conditions.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { Placement } from '../scheduler/placement.js';
import type { MigrationQuota } from './quota.js';
import type { TransferTokens } from './transfer-token.js';

const SETTLED = 'Settled';

export class MigrationSettlement {
  constructor(
    private readonly kube: KubeClient,
    private readonly placement: Placement,
    private readonly quota: MigrationQuota,
    private readonly tokens: TransferTokens,
    private readonly events: EventRecorder,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    await this.settleOnce(mig, inst);
    return {};
  }

  /** Settles an ended Migration unless done already; returns it as written, for a next write. */
  async settleOnce(mig: Migration, inst: Instance | undefined): Promise<Migration> {
    if (mig.status?.conditions?.some((c) => c.type === SETTLED && c.status === 'True')) return mig;
    await this.settle(mig, inst);
    const settled = {
      type: SETTLED,
      status: 'True' as const,
      reason: 'Settled',
      message: 'quota, token and flavor settled',
    };
    return this.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, settled, this.now()),
    });
  }

  private async settle(mig: Migration, inst: Instance | undefined): Promise<void> {
    await this.tokens.drop(mig);
    this.placement.forget(mig.metadata.uid ?? '');
    await this.quota.settle(mig, inst);
    const s = mig.status ?? {};
    if (!inst || s.type !== 'resize' || !s.oldFlavor || !s.newFlavor) return;
    // Spec and status must agree once a resize is over, or the instance controller would start
    // another resize: DESIGN's revert resets spec.flavor, and a confirm of a resize the user asked
    // for with a Migration (spec.flavor untouched) sets it to what the instance now runs.
    const { oldFlavor, newFlavor } = s;
    const backOnOld = inst.status?.flavor?.name === oldFlavor.name;
    if ((s.status === 'reverted' || (s.status === 'error' && backOnOld)) && inst.spec.flavor === newFlavor.name) {
      // A failed resize leaves the instance on its old flavor, like a revert (Nova's failed resize).
      const how = s.status === 'reverted' ? 'resize reverted' : `resize failed (${s.fault?.reason ?? 'error'})`;
      await this.setFlavor(
        inst,
        oldFlavor.name,
        `${how}: spec.flavor set back from ${newFlavor.name} to ${oldFlavor.name}`,
      );
    } else if (s.status === 'confirmed' && inst.spec.flavor === oldFlavor.name) {
      await this.setFlavor(
        inst,
        newFlavor.name,
        `resize confirmed: spec.flavor set from ${oldFlavor.name} to ${newFlavor.name}`,
      );
    }
  }

  private async setFlavor(inst: Instance, flavor: string, message: string): Promise<void> {
    await this.kube.instances.patch(
      { namespace: inst.metadata.namespace, name: inst.metadata.name },
      { metadata: { resourceVersion: inst.metadata.resourceVersion }, spec: { flavor } },
    );
    this.events.record(inst, 'Normal', EventReason.FlavorReset, message);
  }
}
