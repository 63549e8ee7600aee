// Nova's resize/migrate API and MigrationTask prologue: validate a new Migration against its
// Instance, reserve a resize's quota increase, mark the instance resize_prep and move the
// Migration to pre-migrating; or refuse it with the reason and leave the instance untouched.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { snapshotOf } from '../../common/api/flavor.js';
import { Fault } from '../../common/api/faults.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { FlavorSnapshot, Instance, Migration } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultNotice, FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import { resizeIncrease, type QuotaService } from '../quota/quota-service.js';
import type { Placement } from '../scheduler/placement.js';
import { checkInstanceMovable, checkResizeFlavor } from './resize-checks.js';

export class MigrationStart {
  constructor(
    private readonly kube: KubeClient,
    private readonly flavors: ObjectCache<'Flavor'>,
    private readonly placement: Placement,
    private readonly quota: QuotaService,
    private readonly events: EventRecorder,
    private readonly faults: FaultRecorder,
    private readonly config: { allowResizeToSameHost: boolean },
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    const isResize = Boolean(mig.spec.flavor);
    if (!inst) {
      const where = `namespace ${mig.metadata.namespace}`;
      return this.refuse(
        mig,
        undefined,
        `instance ${mig.spec.instance} does not exist in ${where}; a Migration must live in its Instance's namespace`,
      );
    }
    const movable = checkInstanceMovable(inst, mig.metadata.name);
    if (!movable.ok) return this.refuse(mig, inst, movable.message);
    const current = inst.status!.flavor!;
    let newFlavor: FlavorSnapshot = current;
    if (isResize) {
      const wanted = this.flavors.get(mig.spec.flavor ?? '');
      const check = checkResizeFlavor(current, mig.spec.flavor ?? '', wanted);
      if (!check.ok) return this.refuse(mig, inst, check.message);
      newFlavor = snapshotOf(wanted!);
    }
    const source = inst.status!.host!;
    if (mig.spec.targetHost) {
      const target = mig.spec.targetHost;
      if (target === source && !this.config.allowResizeToSameHost) {
        return this.refuse(
          mig,
          inst,
          `targetHost ${target} is where the instance already runs; pick another host (or enable allowResizeToSameHost)`,
        );
      }
      const hostProblem = this.placement.hostProblem(target);
      if (hostProblem) return this.refuse(mig, inst, `targetHost ${target} ${hostProblem}`);
    }
    // A resize reserves only its increase (Nova's upsize delta); a cold migration reserves nothing.
    const namespace = mig.metadata.namespace ?? 'default';
    if (isResize && this.quota.governs(namespace)) {
      try {
        await this.quota.reserve(
          namespace,
          mig.metadata.uid ?? '',
          inst.metadata.name,
          resizeIncrease(current, newFlavor),
        );
      } catch (err) {
        if (err instanceof Fault) return this.refuse(mig, inst, err.message, err.reason);
        throw err;
      }
    }
    // The instance is claimed for this task first: its resourceVersion guard makes this
    // the one place where two concurrent requests for one instance are told apart.
    if (inst.status?.migration !== mig.metadata.name) {
      await this.kube.instances.patchStatus(inst, {
        taskState: 'resize_prep',
        migration: mig.metadata.name,
        fault: null,
      });
    }
    crashPoint('operator:migration:after-instance-task');
    const owned = await this.ensureOwner(mig, inst);
    await this.kube.migrations.patchStatus(owned, {
      type: isResize ? 'resize' : 'migration',
      status: 'pre-migrating',
      sourceHost: source,
      oldFlavor: current,
      newFlavor,
      oldVmState: inst.status?.vmState === 'stopped' ? 'stopped' : 'active',
      startedAt: this.now().toISOString(),
      scheduling: { attempts: 0, triedHosts: [] },
    });
    const what = isResize ? `resize from ${current.name} to ${newFlavor.name}` : `cold migration off ${source}`;
    const key = `${mig.metadata.namespace}/${inst.metadata.name}`;
    this.log.info({ instance: key, migration: mig.metadata.name, step: 'pre-migrating' }, `${what} started`);
    const reason = isResize ? EventReason.ResizeStarted : EventReason.MigrationStarted;
    this.events.record(inst, 'Normal', reason, `${what} started (Migration ${mig.metadata.name})`);
    this.events.record(mig, 'Normal', reason, `${what} started`);
    return {};
  }

  /** The Migration with the instance among its owners, as written (its status write starts from that version). */
  private async ensureOwner(mig: Migration, inst: Instance): Promise<Migration> {
    if ((mig.metadata.ownerReferences ?? []).some((o) => o.uid === inst.metadata.uid)) return mig;
    const owner = {
      apiVersion: inst.apiVersion,
      kind: 'Instance',
      name: inst.metadata.name,
      uid: inst.metadata.uid ?? '',
    };
    return this.kube.migrations.patch(
      { namespace: mig.metadata.namespace, name: mig.metadata.name },
      {
        metadata: {
          resourceVersion: mig.metadata.resourceVersion,
          ownerReferences: [...(mig.metadata.ownerReferences ?? []), owner],
        },
      },
    );
  }

  private async refuse(
    mig: Migration,
    inst: Instance | undefined,
    message: string,
    reason: FaultReason = FaultReason.MigrationRefused,
  ): Promise<ReconcileResult> {
    const notify: FaultNotice[] = [{ target: mig }];
    if (inst) notify.push({ target: inst, message: `Migration ${mig.metadata.name} refused: ${message}` });
    await this.faults.record(
      new Fault(reason, message),
      (fault) =>
        this.kube.migrations.patchStatus(mig, {
          type: mig.spec.flavor ? 'resize' : 'migration',
          status: 'error',
          fault,
          finishedAt: fault.time,
        }),
      notify,
      this.log.child({ migration: `${mig.metadata.namespace}/${mig.metadata.name}` }),
      'validate',
    );
    return {};
  }
}
