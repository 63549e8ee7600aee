// What the operator does once a Migration has ended (confirmed, reverted, error): drop the
// transfer token, stop counting the placement, settle the quota, and set the instance's
// wanted flavor in line with what the instance runs, so no second resize starts. Done once:
// the Migration's Settled condition says so, so a later pass (a resync, a cancel) cannot set
// a flavor back that the user has asked for again since. The same status write gives the
// Migration its terminal condition, Complete (confirmed, reverted) or Failed (error, with the
// fault's reason and message), which `kubectl wait --for=condition=...` waits for.
import { getCondition, setCondition, type ConditionInput } from '../../common/api/conditions.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { Placement } from '../scheduler/placement.js';
import type { MigrationQuota } from './quota.js';
import type { TransferTokens } from './transfer-token.js';

const SETTLED = 'Settled';
export const COMPLETE = 'Complete';
export const FAILED = 'Failed';
/** Condition messages are shorter than fault messages (the schema's limits). */
const MAX_CONDITION_MESSAGE = 4096;

/** How an ended Migration ended, as the condition `kubectl wait` looks for. */
export function terminalCondition(mig: Migration): ConditionInput | undefined {
  const s = mig.status ?? {};
  const what = s.type ?? 'migration';
  if (s.status === 'confirmed' || s.status === 'reverted') {
    const flavor = s.status === 'confirmed' ? s.newFlavor : s.oldFlavor;
    const host = s.status === 'confirmed' ? s.destHost : s.sourceHost;
    const where = [host && `on ${host}`, flavor && `with flavor ${flavor.name}`].filter(Boolean).join(' ');
    const reason = s.status === 'confirmed' ? 'Confirmed' : 'Reverted';
    return { type: COMPLETE, status: 'True', reason, message: `${what} ${s.status}${where ? `: runs ${where}` : ''}` };
  }
  if (s.status === 'error') {
    const message = s.fault?.message || `${what} ended in error`;
    return {
      type: FAILED,
      status: 'True',
      reason: s.fault?.reason || 'Error',
      message: message.length > MAX_CONDITION_MESSAGE ? `${message.slice(0, MAX_CONDITION_MESSAGE - 1)}…` : message,
    };
  }
  return undefined;
}

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

  /**
   * Settles an ended Migration unless done already, and gives it its terminal condition in the
   * same write; returns it as written, for a next write.
   */
  async settleOnce(mig: Migration, inst: Instance | undefined): Promise<Migration> {
    const terminal = terminalCondition(mig);
    const generation = mig.metadata.generation;
    if (getCondition(mig.status?.conditions, SETTLED)?.status === 'True') {
      // Settled before Complete and Failed existed: add the one it lacks, once.
      if (!terminal || getCondition(mig.status?.conditions, terminal.type)) return mig;
      const conditions = setCondition(mig.status?.conditions, terminal, this.now(), generation);
      return this.kube.migrations.patchStatus(mig, { conditions });
    }
    await this.settle(mig, inst);
    const now = this.now();
    const settled: ConditionInput = {
      type: SETTLED,
      status: 'True',
      reason: 'Settled',
      message: 'quota, token and flavor settled',
    };
    let conditions = setCondition(mig.status?.conditions, settled, now, generation);
    if (terminal) conditions = setCondition(conditions, terminal, now, generation);
    return this.kube.migrations.patchStatus(mig, { conditions });
  }

  private async settle(mig: Migration, inst: Instance | undefined): Promise<void> {
    await this.tokens.drop(mig, true);
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
