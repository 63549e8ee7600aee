// Nova's build_instances on the conductor: put a new Instance into building/scheduling,
// ask the scheduler for a host, hand it to that host's agent (status.scheduling.selectedHost)
// and, when the agent reports a failed claim, try elsewhere up to maxAttempts.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { resourcesOf, snapshotOf } from '../../common/api/flavor.js';
import { setCondition } from '../../common/api/conditions.js';
import type { MergePatch } from '../../common/api/patch.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { FlavorSnapshot, Instance, InstanceStatus } from '../../common/api/types.js';
import type { Kube } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Informer } from '../../common/kube/informer.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { Placement } from '../scheduler/placement.js';
import { NoValidHost } from '../scheduler/scheduler.js';
import { placementStep } from './placement-step.js';
import { QuotaExceeded } from '../quota/ledger.js';
import { bootAmounts, type QuotaService } from '../quota/quota-service.js';
import type { ServerGroups } from '../servergroups/membership.js';

const EVENT_FOR_FAULT: Partial<Record<FaultReason, EventReason>> = {
  [FaultReason.FlavorNotFound]: EventReason.FlavorNotFound,
  [FaultReason.FlavorDisabled]: EventReason.FlavorDisabled,
  [FaultReason.ClaimFailed]: EventReason.ClaimFailed,
  [FaultReason.QuotaExceeded]: EventReason.QuotaExceeded,
  [FaultReason.ServerGroupNotFound]: EventReason.ServerGroupNotFound,
};

export interface BootConfig {
  maxAttempts: number;
  /** How long an agent may take to answer a placement before the host is treated as lost. */
  claimTimeoutMs: number;
  /** Told of every retry on another host (kubenova_reschedules_total). */
  onReschedule?: () => void;
}

export class BootConductor {
  constructor(
    private readonly kube: Kube,
    private readonly flavors: Informer<'Flavor'>,
    private readonly placement: Placement,
    private readonly quota: QuotaService,
    private readonly groups: ServerGroups,
    private readonly events: EventRecorder,
    private readonly config: BootConfig,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Handles an Instance in building/scheduling (or not yet started). */
  async reconcile(inst: Instance): Promise<ReconcileResult> {
    const status = inst.status ?? {};
    if (!status.vmState) {
      await this.kube.instances.patchStatus(inst, {
        vmState: 'building',
        taskState: 'scheduling',
        powerState: 'nostate',
        observedGeneration: inst.metadata.generation,
        conditions: setCondition(status.conditions, { type: 'Scheduled', status: 'False', reason: 'Pending', message: 'waiting for the scheduler' }, this.now()),
      });
      return {};
    }
    if (status.vmState !== 'building' || status.taskState !== 'scheduling' || status.host) return {};

    const step = placementStep(status.scheduling, (h) => this.placement.hostIsUsable(h), 'instance');
    if (step.next === 'wait') return { requeueAfterMs: this.config.claimTimeoutMs };
    if (step.next === 'retry') return this.retryOrFail(inst, step.reason, step.host);
    return this.groups.serialize(inst, () => this.schedule(inst));
  }

  private async retryOrFail(inst: Instance, reason: string, host: string): Promise<ReconcileResult> {
    const attempts = inst.status?.scheduling?.attempts ?? 0;
    this.placement.forget(inst.metadata.uid ?? '');
    if (inst.spec.host) {
      // Nova disables retries for a forced host: there is nowhere else to go.
      return this.fail(inst, FaultReason.ClaimFailed, `forced host ${inst.spec.host} could not take the instance: ${reason}`);
    }
    if (attempts >= this.config.maxAttempts) {
      return this.fail(
        inst,
        FaultReason.NoValidHost,
        `No valid host was found: exceeded max scheduling attempts ${this.config.maxAttempts}; last failure on ${host}: ${reason}`,
      );
    }
    this.events.record(inst, 'Normal', EventReason.Rescheduled, `attempt ${attempts} on ${host} failed (${reason}); rescheduling`);
    this.config.onReschedule?.();
    return this.groups.serialize(inst, () => this.schedule(inst));
  }

  private flavorFor(inst: Instance): FlavorSnapshot | { fault: FaultReason; message: string } {
    const applied = inst.status?.flavor;
    if (applied && applied.name === inst.spec.flavor) return applied;
    const flavor = this.flavors.get(inst.spec.flavor);
    if (!flavor) {
      return { fault: FaultReason.FlavorNotFound, message: `flavor ${inst.spec.flavor} does not exist; create it (kubectl get flv lists flavors) or pick another` };
    }
    if (flavor.spec.disabled) {
      return { fault: FaultReason.FlavorDisabled, message: `flavor ${inst.spec.flavor} is disabled and cannot be booted; pick another flavor` };
    }
    return snapshotOf(flavor);
  }

  private async schedule(inst: Instance): Promise<ReconcileResult> {
    const flavor = this.flavorFor(inst);
    if ('fault' in flavor) return this.fail(inst, flavor.fault, flavor.message);
    const sched = inst.status?.scheduling ?? {};
    const tried = sched.triedHosts ?? [];
    const uid = inst.metadata.uid ?? '';
    const namespace = inst.metadata.namespace ?? 'default';
    const { group, missing } = this.groups.requestFor(inst);
    if (missing) return this.fail(inst, FaultReason.ServerGroupNotFound, missing);
    // Nova reserves quota before it schedules: a boot over quota never reaches a host.
    if (this.quota.governs(namespace)) {
      try {
        await this.quota.reserve(namespace, uid, inst.metadata.name, bootAmounts(resourcesOf(flavor)));
      } catch (err) {
        if (err instanceof QuotaExceeded) return this.fail(inst, FaultReason.QuotaExceeded, err.message);
        throw err;
      }
    }
    let host: string;
    try {
      host = this.placement.select(
        {
          instance: `${inst.metadata.namespace}/${inst.metadata.name}`,
          flavor,
          resources: resourcesOf(flavor),
          availabilityZone: inst.spec.availabilityZone,
          forcedHost: inst.spec.host,
          ignoreHosts: tried,
          group,
        },
        uid,
      ).host;
    } catch (err) {
      if (err instanceof NoValidHost) return this.fail(inst, FaultReason.NoValidHost, err.message);
      throw err;
    }
    crashPoint('operator:boot:after-select');
    const attempt = (sched.attempts ?? 0) + 1;
    const patch: MergePatch<InstanceStatus> = {
      flavor,
      scheduling: { attempts: attempt, triedHosts: [...tried, host], selectedHost: host, claimFailure: null },
      conditions: setCondition(inst.status?.conditions, { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `placed on ${host} (attempt ${attempt})` }, this.now()),
    };
    try {
      await this.kube.instances.patchStatus(inst, patch);
    } catch (err) {
      this.placement.forget(uid);
      throw err;
    }
    this.log.info({ instance: `${inst.metadata.namespace}/${inst.metadata.name}`, host, attempt, step: 'scheduling' }, 'scheduled');
    this.events.record(inst, 'Normal', EventReason.Scheduled, `scheduled to ${host} (attempt ${attempt} of ${this.config.maxAttempts})`);
    return { requeueAfterMs: this.config.claimTimeoutMs };
  }

  private async fail(inst: Instance, reason: FaultReason, message: string): Promise<ReconcileResult> {
    this.placement.forget(inst.metadata.uid ?? '');
    const namespace = inst.metadata.namespace ?? 'default';
    if (this.quota.governs(namespace)) await this.quota.release(namespace, (a) => a.consumer === inst.metadata.uid);
    const now = this.now();
    await this.kube.instances.patchStatus(inst, {
      vmState: 'error',
      taskState: '',
      fault: { reason, message, time: now.toISOString() },
      scheduling: { selectedHost: null },
      conditions: setCondition(inst.status?.conditions, { type: 'Scheduled', status: 'False', reason, message }, now),
    });
    this.log.warn({ instance: `${inst.metadata.namespace}/${inst.metadata.name}`, reason, step: 'scheduling' }, message);
    this.events.record(inst, 'Warning', EVENT_FOR_FAULT[reason] ?? EventReason.NoValidHost, message);
    return {};
  }
}
