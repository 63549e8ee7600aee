// What keeps a live Migration from waiting forever, in one place: a host an admin has forced
// down gets the operator as its stand-in (the table's `fenced` entries), a rollback the
// operator owns is carried out (pre-migrating ends, a cancelled finished migration reverts),
// and a phase past its step deadline is asked to roll back. The agents carry out the
// rollbacks they own (node-agent/migration/shared.ts reconcileSide).
import { setCondition, setReady } from '../../common/api/conditions.js';
import { Fault } from '../../common/api/faults.js';
import { placedOn } from '../../common/api/placement.js';
import {
  MIGRATION_LIFECYCLE,
  StepDone,
  enterPhase,
  type AgentRole,
  type FencedStandIn,
  type LivePhase,
} from '../../common/api/lifecycle.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import { rollbackFault, type RollbackRequest } from '../../common/api/rollback.js';
import type { Placement } from '../scheduler/placement.js';
import type { Decisions } from './decision.js';
import type { MigrationEnding } from './ending.js';

export class StepGuard {
  constructor(
    private readonly kube: KubeClient,
    private readonly placement: Placement,
    private readonly ending: MigrationEnding,
    private readonly decisions: Decisions,
    private readonly events: EventRecorder,
    private readonly faults: FaultRecorder,
    private readonly stepTimeoutMs: number,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Acts when the migration cannot go on as it is; undefined when its own steps should run. */
  async check(mig: Migration, inst: Instance | undefined, phase: LivePhase): Promise<ReconcileResult | undefined> {
    const s = mig.status ?? {};
    if (!inst || inst.metadata.deletionTimestamp) {
      // The instance controller's clean-up frees every claim of the instance on every host.
      const fault = new Fault(FaultReason.Cancelled, `instance ${mig.spec.instance} is deleted or being deleted`);
      return this.ending.fail(mig, inst, fault, phase);
    }
    const fenced = this.fencedSide(mig, phase);
    if (fenced) return this.standIn(mig, inst, phase, fenced.role, fenced.host, fenced.standIn);
    const rule = MIGRATION_LIFECYCLE[phase];
    const request = s.rollback?.phase === phase ? s.rollback : undefined;
    if (request && 'rollback' in rule && rule.rollback.owner === 'operator') {
      if (phase === 'finished') return this.decisions.carryOut(mig, inst, 'Revert');
      return this.ending.fail(mig, inst, rollbackFault(request), phase);
    }
    const deadline = s.stepDeadline ? Date.parse(s.stepDeadline) : NaN;
    if (!request && Number.isFinite(deadline) && this.now().getTime() >= deadline) return this.timedOut(mig, phase);
    return undefined;
  }

  /** How long until the phase's deadline, for a requeue; undefined when it has none. */
  untilDeadline(mig: Migration): number | undefined {
    const s = mig.status;
    if (!s?.stepDeadline || s.rollback?.phase === s.status) return undefined;
    return Math.max(0, Date.parse(s.stepDeadline) - this.now().getTime());
  }

  /** The side of this migration whose host is forced down and needs the operator in its place. */
  private fencedSide(mig: Migration, phase: LivePhase) {
    const s = mig.status ?? {};
    const rule = MIGRATION_LIFECYCLE[phase];
    if (!('fenced' in rule)) return undefined;
    const sides: [AgentRole, string | undefined][] = [
      // An evacuation's source is fenced by definition: that is what it is for.
      ['source', s.type === 'evacuation' ? undefined : s.sourceHost],
      ['destination', s.destHost ?? s.scheduling?.selectedHost],
    ];
    for (const [role, host] of sides) {
      const standIn: FencedStandIn | undefined = (rule.fenced as Partial<Record<AgentRole, FencedStandIn>>)[role];
      if (standIn && host && this.placement.isForcedDown(host) && !this.alreadyStoodIn(mig, standIn)) {
        return { role, host, standIn };
      }
    }
    return undefined;
  }

  private alreadyStoodIn(mig: Migration, standIn: FencedStandIn): boolean {
    if (standIn.to || standIn.strands) return false;
    return (mig.status?.conditions ?? []).some((c) => c.type === standIn.marks && c.status === 'True');
  }

  private async standIn(
    mig: Migration,
    inst: Instance,
    phase: LivePhase,
    role: AgentRole,
    host: string,
    standIn: FencedStandIn,
  ): Promise<ReconcileResult> {
    const message = `${host}, the ${role} of this ${phase} migration, is forced down: the operator will ${standIn.does}`;
    const fault = new Fault(FaultReason.HostLost, message);
    const log = this.log.child({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: phase });
    if (standIn.strands) return this.strand(mig, inst, fault, log, role === 'source');
    // An evacuation has no source to roll back onto: losing its destination just ends it, and
    // the instance, still on its dead host, can be evacuated again.
    const evacuation = mig.status?.type === 'evacuation';
    if (standIn.to === 'error' || (evacuation && standIn.to === 'reverting')) {
      return this.ending.fail(mig, inst, fault, phase);
    }
    const now = this.now();
    const conditions = standIn.marks
      ? setCondition(mig.status?.conditions, { type: standIn.marks, status: 'True', reason: 'HostLost', message }, now)
      : undefined;
    if (standIn.to === 'reverting') {
      await this.kube.instances.patchStatus(inst, { taskState: 'resize_reverting' });
      await this.kube.migrations.patchStatus(mig, {
        ...enterPhase('reverting', now, this.stepTimeoutMs),
        rollback: { phase, reason: 'HostLost', message, time: now.toISOString() },
        ...(conditions ? { conditions } : {}),
      });
    } else if (conditions) {
      await this.kube.migrations.patchStatus(mig, { conditions });
    }
    log.warn({ host }, message);
    this.events.record(mig, 'Warning', EventReason.HostLost, message);
    return {};
  }

  /**
   * No copy can be brought back: the instance goes to error with what an admin can do. When the
   * last copy is on the fenced source, the instance is recorded there with its old flavor, so
   * the Evacuation the fault advises can start from that host.
   */
  private async strand(
    mig: Migration,
    inst: Instance,
    fault: Fault,
    log: Logger,
    onFencedSource: boolean,
  ): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    // Only once the destination has let go of its copy is the source's the last one.
    const destinationCleaned = (s.conditions ?? []).some(
      (c) => c.type === StepDone.DestinationCleaned && c.status === 'True',
    );
    const backOnSource = onFencedSource && destinationCleaned && s.sourceHost && s.oldFlavor;
    const told = new Fault(
      fault.reason,
      `${fault.message}; the instance is in error: evacuate it (a Migration with spec.type Evacuation) or delete it`,
    );
    await this.faults.record(
      told,
      async (status) => {
        await this.kube.instances.patchStatus(inst, {
          vmState: 'error',
          taskState: '',
          migration: null,
          taskHosts: null,
          ...(backOnSource && s.sourceHost ? { ...placedOn(s.sourceHost), flavor: s.oldFlavor, oldFlavor: null } : {}),
          fault: status,
          conditions: setReady(
            inst.status?.conditions,
            false,
            status.message,
            this.now(),
            fault.reason,
            inst.metadata.generation,
          ),
        });
        await this.kube.migrations.patchStatus(mig, {
          ...enterPhase('error', this.now(), 0),
          fault: status,
          finishedAt: status.time,
        });
      },
      [{ target: mig }, { target: inst }],
      log,
      mig.status?.status ?? 'migration',
    );
    return {};
  }

  /** The phase is past its deadline: whoever owns its way back is asked to take it. */
  private async timedOut(mig: Migration, phase: LivePhase): Promise<ReconcileResult> {
    const rule = MIGRATION_LIFECYCLE[phase];
    const seconds = Math.round(this.stepTimeoutMs / 1000);
    const owners = [...new Set(rule.steps.map((st) => st.owner))].join(' and ');
    const message =
      `${phase} did not finish by its deadline ${mig.status?.stepDeadline} (step timeout ${seconds}s; ` +
      `waiting on the ${owners})`;
    const now = this.now();
    const request: RollbackRequest = { phase, reason: 'StepTimedOut', message, time: now.toISOString() };
    // The deadline is spent either way; a rollback already being carried out (a revert that is
    // one) keeps its request, so it still ends as the failure it is.
    const carryingOut = mig.status?.rollback && mig.status.rollback.phase !== phase;
    await this.kube.migrations.patchStatus(mig, { stepDeadline: null, ...(carryingOut ? {} : { rollback: request }) });
    this.log.warn({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: phase }, message);
    const what = 'rollback' in rule ? `rolling back: ${rule.rollback.does}` : 'its owner gives up';
    this.events.record(mig, 'Warning', EventReason.StepFailed, `${message}; ${what}`);
    return {};
  }
}
