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
import type { MigrationQuota } from './quota.js';
import type { MigrationSettlement } from './settle.js';

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
    if (inst && inst.status?.migration === mig.metadata.name) {
      await this.kube.instances.patchStatus(inst, { taskState: '', migration: null, taskHosts: null });
    }
    return this.dropFinalizer(mig);
  }

  /** Ended: settle (idempotent), wait for the destination's claim to go, then let it go. */
  private async release(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    mig = await this.settlement.settleOnce(mig, inst);
    const holders = this.placement.claimedAnywhere([mig.metadata.uid ?? '']).filter((node) => !node.spec.forcedDown);
    // The agent frees it on its own (its terminal step); we look again shortly and on every change.
    if (holders.length > 0) return { requeueAfterMs: 1_000 };
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
