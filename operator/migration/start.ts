// Nova's resize/migrate/evacuate API and MigrationTask prologue: validate a new Migration
// against its Instance, reserve a resize's quota increase, mark the instance resize_prep and
// move the Migration to pre-migrating; or refuse it with the reason and leave the instance
// untouched. An evacuation is allowed only off a host an admin has forced down.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { snapshotOf } from '../../common/api/flavor.js';
import { Fault } from '../../common/api/faults.js';
import { checkInstanceState } from '../../common/api/instance-actions.js';
import { enterPhase } from '../../common/api/lifecycle.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import { MIGRATION_FINALIZER, type FlavorSnapshot, type Instance, type Migration } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultNotice, FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import { resizeIncrease, type QuotaService } from '../quota/quota-service.js';
import type { Placement } from '../scheduler/placement.js';
import { isRequestedResize } from './owned-migration.js';
import { checkInstanceMovable, checkResizeFlavor, type Check } from './resize-checks.js';

export class MigrationStart {
  constructor(
    private readonly kube: KubeClient,
    private readonly flavors: ObjectCache<'Flavor'>,
    private readonly placement: Placement,
    private readonly quota: QuotaService,
    private readonly events: EventRecorder,
    private readonly faults: FaultRecorder,
    private readonly config: { allowResizeToSameHost: boolean; stepTimeoutMs: number },
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    const isResize = Boolean(mig.spec.flavor);
    const evacuation = mig.spec.type === 'Evacuation';
    if (!inst) {
      const where = `namespace ${mig.metadata.namespace}`;
      return this.refuse(
        mig,
        undefined,
        `instance ${mig.spec.instance} does not exist in ${where}; a Migration must live in its Instance's namespace`,
      );
    }
    const busy = inst.status?.migration;
    // A migration off a fenced host is being ended for it (the stand-in); the evacuation waits.
    if (evacuation && busy && busy !== mig.metadata.name && this.placement.isForcedDown(inst.status?.host)) {
      return { requeueAfterMs: 1_000 };
    }
    const movable = evacuation
      ? this.checkEvacuable(inst, mig.metadata.name)
      : checkInstanceMovable(inst, mig.metadata.name);
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
      if (target === source && evacuation) {
        return this.refuse(mig, inst, `targetHost ${target} is the forced-down host the instance is evacuated from`);
      }
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
    // The Migration a flavor change asked for records that generation as acted on, in this write.
    const requested = isRequestedResize(mig, inst);
    if (inst.status?.migration !== mig.metadata.name) {
      await this.kube.instances.patchStatus(inst, {
        taskState: 'resize_prep',
        migration: mig.metadata.name,
        fault: null,
        ...(requested ? { observedGeneration: inst.metadata.generation ?? 1 } : {}),
      });
    }
    crashPoint('operator:migration:after-instance-task');
    const owned = await this.ensureOwner(mig, inst);
    await this.kube.migrations.patchStatus(owned, {
      type: evacuation ? 'evacuation' : isResize ? 'resize' : 'migration',
      ...enterPhase('pre-migrating', this.now(), this.config.stepTimeoutMs),
      sourceHost: source,
      oldFlavor: current,
      newFlavor,
      oldVmState: inst.status?.vmState === 'stopped' ? 'stopped' : 'active',
      startedAt: this.now().toISOString(),
      scheduling: { attempts: 0, triedHosts: [] },
    });
    const what = evacuation
      ? `evacuation off forced-down ${source}, rebuilding from image ${inst.spec.image}`
      : isResize
        ? `resize from ${current.name} to ${newFlavor.name}`
        : `cold migration off ${source}`;
    const key = `${mig.metadata.namespace}/${inst.metadata.name}`;
    this.log.info({ instance: key, migration: mig.metadata.name, step: 'pre-migrating' }, `${what} started`);
    const reason = evacuation
      ? EventReason.EvacuationStarted
      : isResize
        ? EventReason.ResizeStarted
        : EventReason.MigrationStarted;
    this.events.record(inst, 'Normal', reason, `${what} started (Migration ${mig.metadata.name})`);
    this.events.record(mig, 'Normal', reason, `${what} started`);
    return {};
  }

  /** Nova's evacuate checks: the instance ran somewhere, and that host is fenced. */
  private checkEvacuable(inst: Instance, migrationName: string): Check {
    const host = inst.status?.host;
    const name = inst.metadata.name;
    if (!host || !inst.status?.flavor) {
      return { ok: false, message: `instance ${name} has no host; only an instance placed on a host can be evacuated` };
    }
    if (!this.placement.isForcedDown(host)) {
      return {
        ok: false,
        message:
          `host ${host} of instance ${name} is not forced down; once the host is fenced (powered off), set ` +
          `spec.forcedDown: true on ComputeNode ${host}, or cold-migrate the instance while its host is up`,
      };
    }
    return checkInstanceState(inst, 'evacuate', migrationName);
  }

  /**
   * The Migration owned by its instance and held by the cancel finalizer, as written (its status
   * write starts from that version). One metadata write; none when both are there already.
   */
  private async ensureOwner(mig: Migration, inst: Instance): Promise<Migration> {
    const owners = mig.metadata.ownerReferences ?? [];
    const finalizers = mig.metadata.finalizers ?? [];
    const owned = owners.some((o) => o.uid === inst.metadata.uid);
    const held = finalizers.includes(MIGRATION_FINALIZER);
    if (owned && held) return mig;
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
          ...(owned ? {} : { ownerReferences: [...owners, owner] }),
          ...(held ? {} : { finalizers: [...finalizers, MIGRATION_FINALIZER] }),
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
          type: mig.spec.type === 'Evacuation' ? 'evacuation' : mig.spec.flavor ? 'resize' : 'migration',
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
