// Deleting a Migration cancels it. The finalizer holds the object until the instance is
// steady again: a migration that has not started ends at once; one under way is rolled back
// by whoever owns its way back (the table's `rollback`), a finished one reverts, one being
// confirmed or reverted completes; once it has ended, the quota and token are settled and the
// destination has freed its claim, the finalizer goes.
import { MIGRATION_LIFECYCLE, isTerminal } from '../../common/api/lifecycle.js';
import { EventReason } from '../../common/api/reasons.js';
import { MIGRATION_FINALIZER, type Instance, type Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { Placement } from '../scheduler/placement.js';
import { isRequestedResize } from './owned-migration.js';
import type { MigrationQuota } from './quota.js';
import type { MigrationSettlement } from './settle.js';

/**
 * A flavor change whose Migration goes without having started (cancelled, or refused): the
 * generation is recorded as acted on before the Migration is gone, or the instance controller,
 * no longer finding it, would ask for the resize again.
 */
const unansweredRequest = (mig: Migration, inst: Instance): boolean =>
  isRequestedResize(mig, inst) && inst.status?.observedGeneration !== inst.metadata.generation;

export class MigrationCancel {
  constructor(
    private readonly kube: KubeClient,
    private readonly placement: Placement,
    private readonly quota: MigrationQuota,
    private readonly settlement: MigrationSettlement,
    private readonly events: EventRecorder,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Handles a Migration being deleted. Returns a result when the cancel is all there is to do
   * now; undefined when the migration's own steps (and the step guard) should carry on.
   */
  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult | undefined> {
    if (!(mig.metadata.finalizers ?? []).includes(MIGRATION_FINALIZER)) return {};
    const phase = mig.status?.status;
    if (!phase) return this.neverStarted(mig, inst);
    if (isTerminal(phase)) return this.release(mig, inst);
    const rule = MIGRATION_LIFECYCLE[phase];
    // Confirming and reverting have no way back: they finish, then the finalizer goes.
    if (!('rollback' in rule) || mig.status?.rollback?.phase === phase) return undefined;
    const message = `Migration deleted while ${phase}: cancelling (${rule.rollback.does})`;
    await this.kube.migrations.patchStatus(mig, {
      rollback: { phase, reason: 'Cancelled', message, time: this.now().toISOString() },
    });
    this.log.info({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: phase }, message);
    this.events.record(mig, 'Normal', EventReason.MigrationCancelled, message);
    if (inst)
      this.events.record(inst, 'Normal', EventReason.MigrationCancelled, `Migration ${mig.metadata.name}: ${message}`);
    return {};
  }

  /** Deleted before it started: only what the start may have done before a crash is undone. */
  private async neverStarted(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    await this.quota.settle(mig, inst);
    const held = inst?.status?.migration === mig.metadata.name;
    const unanswered = inst !== undefined && unansweredRequest(mig, inst);
    if (inst && (held || unanswered)) {
      await this.kube.instances.patchStatus(inst, {
        ...(held ? { taskState: '', migration: null, taskHosts: null } : {}),
        ...(unanswered ? { observedGeneration: inst.metadata.generation ?? 1 } : {}),
      });
    }
    return this.dropFinalizer(mig);
  }

  /** Ended: settle (idempotent), wait for the destination's claim to go, then let it go. */
  private async release(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    mig = await this.settlement.settleOnce(mig, inst);
    const holders = this.placement.claimedAnywhere([mig.metadata.uid ?? '']).filter((node) => !node.spec.forcedDown);
    // The agent frees it on its own (its terminal step); we look again shortly and on every change.
    if (holders.length > 0) return { requeueAfterMs: 1_000 };
    if (inst && unansweredRequest(mig, inst)) {
      await this.kube.instances.patchStatus(inst, { observedGeneration: inst.metadata.generation ?? 1 });
    }
    return this.dropFinalizer(mig);
  }

  private async dropFinalizer(mig: Migration): Promise<ReconcileResult> {
    await this.kube.migrations.patch(
      { namespace: mig.metadata.namespace, name: mig.metadata.name },
      {
        metadata: {
          resourceVersion: mig.metadata.resourceVersion,
          finalizers: (mig.metadata.finalizers ?? []).filter((f) => f !== MIGRATION_FINALIZER),
        },
      },
    );
    const outcome = mig.status?.status ?? 'not started';
    this.log.info({ migration: `${mig.metadata.namespace}/${mig.metadata.name}` }, `cancel done (${outcome})`);
    return {};
  }
}
