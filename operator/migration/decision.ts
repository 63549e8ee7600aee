// Nova's confirm_resize / revert_resize API on a finished Migration: the user's decision (or
// the resizeConfirmWindow running out) moves it to confirming or reverting; the agents carry
// it out. A decision made before the migration has finished waits for it, with an Event.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { setCondition } from '../../common/api/conditions.js';
import { enterPhase } from '../../common/api/lifecycle.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { MigrationQuota } from './quota.js';
import type { TransferTokens } from './transfer-token.js';

export const DECISION_DEFERRED = 'DecisionDeferred';

export class Decisions {
  constructor(
    private readonly kube: KubeClient,
    private readonly quota: MigrationQuota,
    private readonly tokens: TransferTokens,
    private readonly events: EventRecorder,
    /** Seconds; 0 = never confirm automatically. */
    private readonly resizeConfirmWindow: number,
    private readonly stepTimeoutMs: number,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async decide(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    // The disk has arrived: the token has done its one job.
    await this.tokens.drop(mig);
    if (!inst) return {};
    await this.quota.commitFinished(mig);
    const s = mig.status ?? {};
    const now = this.now();
    const log = this.log.child({ migration: `${mig.metadata.namespace}/${mig.metadata.name}` });
    let decision = mig.spec.decision;
    if (!decision && this.resizeConfirmWindow > 0) {
      if (!s.confirmDeadline) {
        const deadline = new Date(now.getTime() + this.resizeConfirmWindow * 1000).toISOString();
        await this.kube.migrations.patchStatus(mig, { confirmDeadline: deadline });
        return { requeueAfterMs: this.resizeConfirmWindow * 1000 };
      }
      const left = Date.parse(s.confirmDeadline) - now.getTime();
      if (left > 0) return { requeueAfterMs: left };
      decision = 'Confirm';
      log.info({ step: 'confirming' }, 'resizeConfirmWindow passed; confirming automatically');
    }
    if (decision !== 'Confirm' && decision !== 'Revert') return {};
    return this.carryOut(mig, inst, decision);
  }

  /** Moves a finished migration to confirming or reverting (a cancel reverts through here too). */
  async carryOut(mig: Migration, inst: Instance, decision: 'Confirm' | 'Revert'): Promise<ReconcileResult> {
    const confirming = decision === 'Confirm';
    await this.kube.instances.patchStatus(inst, { taskState: confirming ? 'resize_confirming' : 'resize_reverting' });
    crashPoint('operator:decide:after-instance-task');
    const phase = confirming ? 'confirming' : 'reverting';
    // A cancel's request is carried out by this revert (entering the phase clears it): it reverts, not fails.
    await this.kube.migrations.patchStatus(mig, enterPhase(phase, this.now(), this.stepTimeoutMs));
    this.log.info({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: phase }, `${decision} accepted`);
    return {};
  }

  /**
   * A decision made too early is kept for later; the user hears so once. Returns the Migration
   * as written, so the phase's own step goes on from its new resourceVersion.
   */
  async noteEarly(mig: Migration): Promise<Migration> {
    if (!mig.spec.decision) return mig;
    if (mig.status?.conditions?.some((c) => c.type === DECISION_DEFERRED)) return mig;
    const message =
      `decision ${mig.spec.decision} ignored while the migration is ${mig.status?.status}; ` +
      'it takes effect once the migration is finished';
    const condition = {
      type: DECISION_DEFERRED,
      status: 'True' as const,
      reason: EventReason.DecisionIgnored,
      message,
    };
    const noted = await this.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, condition, this.now()),
    });
    this.events.record(mig, 'Warning', EventReason.DecisionIgnored, message);
    return noted;
  }
}
