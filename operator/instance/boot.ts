// Nova's build_instances on the conductor: put a new Instance into building/scheduling, then
// place it through PlacementAttempts (scheduler, the chosen host's claim, retries elsewhere).
// A boot reserves its quota before the scheduler decides, so one over quota never reaches a host.
// A host that claims but fails to spawn hands the instance back the way a refused claim does
// (scheduling.claimFailure with reason SpawnFailed, in the agent's one status patch) and it is
// retried elsewhere the same way; every failed attempt is kept in scheduling.failures so the
// final fault can name each host and why.
// Networks: the requested networks are checked with the flavor (an unknown or invalid one
// refuses the boot before anything is held); the quota reservation counts one port per
// network; the ports are made (addresses held) before the first host is chosen and recorded
// in status.networks with it, so the chosen host's agent plugs them before it spawns. A boot
// ending in error deletes its ports and releases their addresses.
import { resourcesOf, snapshotOf } from '../../common/api/flavor.js';
import { setCondition } from '../../common/api/conditions.js';
import { Fault } from '../../common/api/faults.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { AttachedNetwork, FlavorSnapshot, Instance, Network } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { InstanceNetworks } from '../network/instance-networks.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import { bootAmounts, type QuotaService } from '../quota/quota-service.js';
import type { PlacementAttempts, PlacementTarget } from '../scheduler/attempts.js';
import type { ServerGroups } from '../servergroups/membership.js';

export class BootConductor {
  constructor(
    private readonly kube: KubeClient,
    private readonly flavors: ObjectCache<'Flavor'>,
    private readonly attempts: PlacementAttempts,
    private readonly quota: QuotaService,
    private readonly groups: ServerGroups,
    private readonly networks: InstanceNetworks,
    private readonly events: EventRecorder,
    private readonly faults: FaultRecorder,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Handles an Instance not yet started or in building/scheduling. A new one is placed at once:
   * building/scheduling and the chosen host go out in one status write.
   */
  async reconcile(inst: Instance): Promise<ReconcileResult> {
    const status = inst.status ?? {};
    const started = status.vmState !== undefined;
    if (started && (status.vmState !== 'building' || status.taskState !== 'scheduling' || status.host)) return {};
    return this.attempts.step(this.target(inst));
  }

  private target(inst: Instance): PlacementTarget {
    const uid = inst.metadata.uid ?? '';
    const namespace = inst.metadata.namespace ?? 'default';
    const key = `${namespace}/${inst.metadata.name}`;
    let flavor: FlavorSnapshot | undefined;
    let networks: Network[] = [];
    let attached: AttachedNetwork[] = [];
    return {
      what: 'instance',
      consumer: uid,
      instance: inst,
      scheduling: inst.status?.scheduling,
      forcedHost: inst.spec.host,
      crashPointAfterSelect: 'operator:boot:after-select',
      request: (tried) => {
        const chosen = this.flavorFor(inst);
        if (chosen instanceof Fault) return chosen;
        flavor = chosen;
        const { group, missing } = this.groups.requestFor(inst);
        if (missing) return new Fault(FaultReason.ServerGroupNotFound, missing);
        const requested = this.networks.requested(inst);
        if (requested instanceof Fault) return requested;
        networks = requested;
        return {
          instance: key,
          flavor,
          resources: resourcesOf(flavor),
          availabilityZone: inst.spec.availabilityZone,
          forcedHost: inst.spec.host,
          ignoreHosts: tried,
          group,
        };
      },
      // Nova reserves quota before it schedules: a boot over quota never reaches a host, and
      // holds no address either: the ports come after the reservation.
      beforeSelect: async () => {
        if (flavor && this.quota.governs(namespace)) {
          const amounts = bootAmounts(resourcesOf(flavor), networks.length);
          await this.quota.reserve(namespace, uid, inst.metadata.name, amounts);
        }
        if (networks.length > 0) attached = await this.networks.attach(inst, networks);
      },
      recordAttempt: async (scheduling, failures) => {
        const message = `placed on ${scheduling.selectedHost} (attempt ${scheduling.attempts})`;
        // A new instance's first write says what it is as well as where it goes.
        const start = inst.status?.vmState
          ? {}
          : {
              vmState: 'building' as const,
              taskState: 'scheduling' as const,
              powerState: 'nostate' as const,
              observedGeneration: inst.metadata.generation,
            };
        await this.kube.instances.patchStatus(inst, {
          ...start,
          flavor,
          ...(attached.length > 0 ? { networks: attached } : {}),
          scheduling: { ...scheduling, claimFailure: null, ...(failures.length > 0 ? { failures } : {}) },
          conditions: setCondition(
            inst.status?.conditions,
            { type: 'Scheduled', status: 'True', reason: 'Scheduled', message },
            this.now(),
          ),
        });
      },
      announce: (kind, message, host, attempt) => {
        if (kind === 'scheduled') {
          this.log.info({ instance: key, host, attempt, step: 'scheduling' }, 'scheduled');
          // The happy path's one Event is the agent's Spawned; a first placement is in the Scheduled condition.
          if (attempt === 1) return;
        }
        this.events.record(
          inst,
          'Normal',
          kind === 'scheduled' ? EventReason.Scheduled : EventReason.Rescheduled,
          message,
        );
      },
      fail: (fault) => this.fail(inst, fault, attached),
    };
  }

  private flavorFor(inst: Instance): FlavorSnapshot | Fault {
    const applied = inst.status?.flavor;
    if (applied && applied.name === inst.spec.flavor) return applied;
    const flavor = this.flavors.get(inst.spec.flavor);
    if (!flavor) {
      return new Fault(
        FaultReason.FlavorNotFound,
        `flavor ${inst.spec.flavor} does not exist; create it (kubectl get flv lists flavors) or pick another`,
      );
    }
    if (flavor.spec.disabled) {
      return new Fault(
        FaultReason.FlavorDisabled,
        `flavor ${inst.spec.flavor} is disabled and cannot be booted; pick another flavor`,
      );
    }
    return snapshotOf(flavor);
  }

  private async fail(inst: Instance, fault: Fault, attached: AttachedNetwork[]): Promise<ReconcileResult> {
    const namespace = inst.metadata.namespace ?? 'default';
    if (this.quota.governs(namespace)) await this.quota.release(namespace, (a) => a.consumer === inst.metadata.uid);
    // Before the error is written: an instance in error holds no address (a crash in between
    // is finished by the instance controller, which releases the ports of a boot in error).
    await this.networks.release(inst, attached);
    const log = this.log.child({ instance: `${namespace}/${inst.metadata.name}` });
    await this.faults.record(
      fault,
      (status) =>
        this.kube.instances.patchStatus(inst, {
          vmState: 'error',
          taskState: '',
          // A boot refused before its first write has still judged this generation of the spec.
          observedGeneration: inst.status?.observedGeneration ?? inst.metadata.generation,
          fault: status,
          networks: null,
          scheduling: { selectedHost: null },
          conditions: setCondition(
            inst.status?.conditions,
            { type: 'Scheduled', status: 'False', reason: fault.reason, message: fault.message },
            this.now(),
          ),
        }),
      [{ target: inst }],
      log,
      'scheduling',
    );
    return {};
  }
}
