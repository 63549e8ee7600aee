// Instance deletion behind a finalizer: the agents holding the instance destroy its
// domain and free its claims; only when no ComputeNode records a claim for it any more
// does the operator let the API server forget the Instance. A host declared dead
// (ComputeNode spec.forcedDown) cannot clean up now, so its claims do not hold the delete:
// Nova's local delete. Its agent destroys the copy and drops the claims when it comes back.
// The instance's ports go before the finalizer does: every address it held is released once
// the guest is gone (its ports are owned by the Instance too, should anything remain).
import { EventReason } from '../../common/api/reasons.js';
import { FINALIZER, type Instance } from '../../common/api/types.js';
import type { KubeClient } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import type { InstanceNetworks } from '../network/instance-networks.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { QuotaService } from '../quota/quota-service.js';
import type { Placement } from '../scheduler/placement.js';

export class DeletionConductor {
  constructor(
    private readonly kube: KubeClient,
    private readonly placement: Placement,
    private readonly quota: QuotaService,
    private readonly networks: InstanceNetworks,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {}

  /** The instance held by the clean-up finalizer, as written (the next write starts from its version). */
  async ensureFinalizer(inst: Instance): Promise<Instance> {
    const finalizers = inst.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return inst;
    return this.kube.instances.patch(
      { namespace: inst.metadata.namespace, name: inst.metadata.name },
      { metadata: { resourceVersion: inst.metadata.resourceVersion, finalizers: [...finalizers, FINALIZER] } },
    );
  }

  async reconcile(inst: Instance, consumers: string[]): Promise<ReconcileResult> {
    const finalizers = inst.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return {};
    if (inst.status?.taskState !== 'deleting') {
      await this.kube.instances.patchStatus(inst, { taskState: 'deleting' });
      return {};
    }
    const holders = this.placement.claimedAnywhere(consumers);
    const forcedDown = holders.filter((n) => n.spec.forcedDown === true).map((n) => n.metadata.name);
    if (holders.length > forcedDown.length) {
      // The agents clean up; we look again shortly (and on every ComputeNode change).
      return { requeueAfterMs: 1_000 };
    }
    this.placement.forget(inst.metadata.uid ?? '');
    // Delete gives everything back: the boot's allocation and any resize's increase.
    const namespace = inst.metadata.namespace ?? 'default';
    if (this.quota.governs(namespace)) await this.quota.release(namespace, (a) => a.instance === inst.metadata.name);
    await this.networks.release(inst);
    await this.kube.instances.patch(
      { namespace: inst.metadata.namespace, name: inst.metadata.name },
      {
        metadata: {
          resourceVersion: inst.metadata.resourceVersion,
          finalizers: finalizers.filter((f) => f !== FINALIZER),
        },
      },
    );
    const instance = `${inst.metadata.namespace}/${inst.metadata.name}`;
    if (forcedDown.length > 0) {
      const hosts = forcedDown.join(', ');
      const message =
        `deleted without the node agent of forced-down host ${hosts} (local delete): quota released; ` +
        `the agent destroys the instance's copy there and drops its claims when it comes back`;
      this.events.record(inst, 'Normal', EventReason.LocalDelete, message);
      this.log.warn({ instance, hosts: forcedDown, step: 'deleting' }, message);
      return {};
    }
    this.log.info({ instance, step: 'deleting' }, 'instance deleted; every claim freed');
    return {};
  }
}
