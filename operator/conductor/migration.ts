// Nova's MigrationTask and the confirm/revert API, as the conductor's half of a Migration:
// validate and start it, choose the destination (rescheduling on a failed claim), hand the
// disk transfer a one-time token, and turn the user's decision into confirming/reverting.
// The agents of the source and destination own every step in between.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { randomBytes } from 'node:crypto';
import { MIGRATION_UID_ANNOTATION, transferSecretName } from '../../common/api/transfer-secret.js';
import { resourcesOf, snapshotOf } from '../../common/api/flavor.js';
import { setCondition } from '../../common/api/conditions.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { FlavorSnapshot, Instance, Migration } from '../../common/api/types.js';
import { isConflict, isNotFound, type Kube } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Informer } from '../../common/kube/informer.js';
import type { Logger } from '../../common/log.js';
import type { ReconcileResult } from '../../common/runtime/controller.js';
import type { Placement } from '../scheduler/placement.js';
import { NoValidHost } from '../scheduler/scheduler.js';
import { QuotaExceeded } from '../quota/ledger.js';
import { resizeIncrease, type QuotaService } from '../quota/quota-service.js';
import type { ServerGroups } from '../servergroups/membership.js';
import { placementStep } from './placement-step.js';
import { checkInstanceMovable, checkResizeFlavor } from './resize-checks.js';

export interface MigrationConfig {
  maxAttempts: number;
  claimTimeoutMs: number;
  allowResizeToSameHost: boolean;
  /** Seconds; 0 = never confirm automatically. */
  resizeConfirmWindow: number;
  /** Told of every retry on another destination (kubenova_reschedules_total). */
  onReschedule?: () => void;
}

const DONE = new Set(['confirmed', 'reverted', 'error']);

export class MigrationConductor {
  constructor(
    private readonly kube: Kube,
    private readonly instances: Informer<'Instance'>,
    private readonly flavors: Informer<'Flavor'>,
    private readonly placement: Placement,
    private readonly quota: QuotaService,
    private readonly groups: ServerGroups,
    private readonly events: EventRecorder,
    private readonly config: MigrationConfig,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(mig: Migration): Promise<ReconcileResult> {
    if (mig.metadata.deletionTimestamp) return {};
    const ns = mig.metadata.namespace ?? 'default';
    const inst = this.instances.get(mig.spec.instance, ns);
    const phase = mig.status?.status;
    if (!phase) return this.start(mig, inst);
    if (DONE.has(phase)) return this.finishUp(mig, inst);
    if (mig.spec.decision && phase !== 'finished' && phase !== 'confirming' && phase !== 'reverting') this.noteEarlyDecision(mig);
    if (phase === 'pre-migrating') return this.placeDestination(mig, inst);
    if (phase === 'finished') return this.decide(mig, inst);
    return {};
  }

  private async start(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    const isResize = Boolean(mig.spec.flavor);
    const type = isResize ? 'resize' : 'migration';
    if (!inst) return this.refuse(mig, undefined, `instance ${mig.spec.instance} does not exist in namespace ${mig.metadata.namespace}; a Migration must live in its Instance's namespace`);
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
        return this.refuse(mig, inst, `targetHost ${target} is where the instance already runs; pick another host (or enable allowResizeToSameHost)`);
      }
      const hostProblem = this.placement.hostProblem(target);
      if (hostProblem) return this.refuse(mig, inst, `targetHost ${target} ${hostProblem}`);
    }
    // A resize reserves only its increase (Nova's upsize delta); a cold migration reserves nothing.
    const namespace = mig.metadata.namespace ?? 'default';
    if (isResize && this.quota.governs(namespace)) {
      try {
        await this.quota.reserve(namespace, mig.metadata.uid ?? '', inst.metadata.name, resizeIncrease(current, newFlavor));
      } catch (err) {
        if (err instanceof QuotaExceeded) return this.refuse(mig, inst, err.message, FaultReason.QuotaExceeded);
        throw err;
      }
    }
    // The instance is claimed for this task first: its resourceVersion guard makes this
    // the one place where two concurrent requests for one instance are told apart.
    if (inst.status?.migration !== mig.metadata.name) {
      await this.kube.instances.patchStatus(inst, { taskState: 'resize_prep', migration: mig.metadata.name, fault: null });
    }
    crashPoint('operator:migration:after-instance-task');
    await this.ensureOwner(mig, inst);
    await this.kube.migrations.patchStatus(mig, {
      type,
      status: 'pre-migrating',
      sourceHost: source,
      oldFlavor: current,
      newFlavor,
      oldVmState: inst.status?.vmState === 'stopped' ? 'stopped' : 'active',
      startedAt: this.now().toISOString(),
      scheduling: { attempts: 0, triedHosts: [] },
    });
    const what = isResize ? `resize from ${current.name} to ${newFlavor.name}` : `cold migration off ${source}`;
    this.log.info({ instance: `${mig.metadata.namespace}/${inst.metadata.name}`, migration: mig.metadata.name, step: 'pre-migrating' }, `${what} started`);
    const reason = isResize ? EventReason.ResizeStarted : EventReason.MigrationStarted;
    this.events.record(inst, 'Normal', reason, `${what} started (Migration ${mig.metadata.name})`);
    this.events.record(mig, 'Normal', reason, `${what} started`);
    return {};
  }

  private async ensureOwner(mig: Migration, inst: Instance): Promise<void> {
    if ((mig.metadata.ownerReferences ?? []).some((o) => o.uid === inst.metadata.uid)) return;
    await this.kube.migrations.patch(
      { namespace: mig.metadata.namespace, name: mig.metadata.name },
      { metadata: { ownerReferences: [...(mig.metadata.ownerReferences ?? []), { apiVersion: inst.apiVersion, kind: 'Instance', name: inst.metadata.name, uid: inst.metadata.uid ?? '' }] } },
    );
  }

  private async refuse(mig: Migration, inst: Instance | undefined, message: string, reason: FaultReason = FaultReason.MigrationRefused): Promise<ReconcileResult> {
    const now = this.now().toISOString();
    await this.kube.migrations.patchStatus(mig, {
      type: mig.spec.flavor ? 'resize' : 'migration',
      status: 'error',
      fault: { reason, message, time: now },
      finishedAt: now,
    });
    this.log.warn({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: 'validate' }, message);
    const event = reason === FaultReason.QuotaExceeded ? EventReason.QuotaExceeded : EventReason.MigrationRefused;
    this.events.record(mig, 'Warning', event, message);
    if (inst) this.events.record(inst, 'Warning', event, `Migration ${mig.metadata.name} refused: ${message}`);
    return {};
  }

  private async placeDestination(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    await this.ensureTransferSecret(mig);
    const s = mig.status ?? {};
    if (s.destHost) return {};
    if (!inst || inst.metadata.deletionTimestamp) return {};
    const step = placementStep(s.scheduling, (h) => this.placement.hostIsUsable(h), 'migration');
    if (step.next === 'wait') return { requeueAfterMs: this.config.claimTimeoutMs };
    if (step.next === 'retry') return this.retryOrFail(mig, inst, step.reason, step.host);
    return this.groups.serialize(inst, () => this.schedule(mig, inst));
  }

  private async retryOrFail(mig: Migration, inst: Instance, reason: string, host: string): Promise<ReconcileResult> {
    const attempts = mig.status?.scheduling?.attempts ?? 0;
    this.placement.forget(mig.metadata.uid ?? '');
    if (mig.spec.targetHost) return this.fail(mig, inst, FaultReason.ClaimFailed, `target host ${mig.spec.targetHost} could not take the instance: ${reason}`);
    if (attempts >= this.config.maxAttempts) {
      return this.fail(mig, inst, FaultReason.NoValidHost, `No valid host was found: exceeded max scheduling attempts ${this.config.maxAttempts}; last failure on ${host}: ${reason}`);
    }
    this.events.record(mig, 'Normal', EventReason.Rescheduled, `destination ${host} failed (${reason}); rescheduling`);
    this.config.onReschedule?.();
    return this.groups.serialize(inst, () => this.schedule(mig, inst));
  }

  private async schedule(mig: Migration, inst: Instance): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const flavor = s.newFlavor!;
    const tried = s.scheduling?.triedHosts ?? [];
    const ignore = this.config.allowResizeToSameHost ? tried : [...tried, s.sourceHost ?? ''];
    let host: string;
    try {
      host = this.placement.select(
        {
          instance: `${inst.metadata.namespace}/${inst.metadata.name}`,
          flavor,
          resources: resourcesOf(flavor),
          availabilityZone: inst.spec.availabilityZone,
          forcedHost: mig.spec.targetHost,
          ignoreHosts: ignore.filter(Boolean),
          group: this.groups.requestFor(inst).group,
        },
        mig.metadata.uid ?? '',
      ).host;
    } catch (err) {
      if (err instanceof NoValidHost) return this.fail(mig, inst, FaultReason.NoValidHost, err.message);
      throw err;
    }
    const attempt = (s.scheduling?.attempts ?? 0) + 1;
    try {
      await this.kube.migrations.patchStatus(mig, { scheduling: { attempts: attempt, triedHosts: [...tried, host], selectedHost: host, claimFailure: null } });
    } catch (err) {
      this.placement.forget(mig.metadata.uid ?? '');
      throw err;
    }
    this.events.record(mig, 'Normal', EventReason.Scheduled, `destination ${host} chosen (attempt ${attempt} of ${this.config.maxAttempts})`);
    return { requeueAfterMs: this.config.claimTimeoutMs };
  }

  private async fail(mig: Migration, inst: Instance, reason: FaultReason, message: string): Promise<ReconcileResult> {
    this.placement.forget(mig.metadata.uid ?? '');
    await this.settleQuota(mig);
    const now = this.now().toISOString();
    // The instance never left its host: it goes back to where it was, with the reason.
    if (inst.status?.migration === mig.metadata.name) {
      await this.kube.instances.patchStatus(inst, { taskState: '', migration: null, fault: { reason, message, time: now } });
    }
    await this.kube.migrations.patchStatus(mig, { status: 'error', fault: { reason, message, time: now }, finishedAt: now, scheduling: { selectedHost: null } });
    this.log.warn({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, reason, step: 'pre-migrating' }, message);
    this.events.record(mig, 'Warning', EventReason.MigrationFailed, message);
    this.events.record(inst, 'Warning', EventReason.MigrationFailed, `Migration ${mig.metadata.name} failed: ${message}`);
    return {};
  }

  private async ensureTransferSecret(mig: Migration): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const name = transferSecretName(mig.metadata.name);
    try {
      await this.kube.core.readNamespacedSecret({ namespace, name });
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.kube.core.createNamespacedSecret({
        namespace,
        body: {
          metadata: {
            name,
            namespace,
            labels: { 'app.kubernetes.io/part-of': 'kubenova', 'compute.kubenova.io/migration': mig.metadata.name },
            annotations: { [MIGRATION_UID_ANNOTATION]: mig.metadata.uid ?? '' },
            ownerReferences: [{ apiVersion: mig.apiVersion, kind: 'Migration', name: mig.metadata.name, uid: mig.metadata.uid ?? '' }],
          },
          type: 'Opaque',
          stringData: { token: randomBytes(32).toString('hex') },
        },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  private async deleteTransferSecret(mig: Migration): Promise<void> {
    try {
      await this.kube.core.deleteNamespacedSecret({ namespace: mig.metadata.namespace ?? 'default', name: transferSecretName(mig.metadata.name) });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async decide(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    // The disk has arrived: the token has done its one job.
    await this.deleteTransferSecret(mig);
    if (!inst) return {};
    // finish_resize succeeded: the reserved increase becomes usage (Nova commits here).
    const namespace = mig.metadata.namespace ?? 'default';
    if (this.quota.allocation(namespace, mig.metadata.uid ?? '')?.state === 'reserved') await this.quota.commit(namespace, mig.metadata.uid ?? '');
    const s = mig.status ?? {};
    const now = this.now();
    let decision = mig.spec.decision;
    if (!decision && this.config.resizeConfirmWindow > 0) {
      if (!s.confirmDeadline) {
        const deadline = new Date(now.getTime() + this.config.resizeConfirmWindow * 1000).toISOString();
        await this.kube.migrations.patchStatus(mig, { confirmDeadline: deadline });
        return { requeueAfterMs: this.config.resizeConfirmWindow * 1000 };
      }
      const left = Date.parse(s.confirmDeadline) - now.getTime();
      if (left > 0) return { requeueAfterMs: left };
      decision = 'Confirm';
      this.log.info({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: 'confirming' }, 'resizeConfirmWindow passed; confirming automatically');
    }
    if (decision !== 'Confirm' && decision !== 'Revert') return {};
    const confirming = decision === 'Confirm';
    await this.kube.instances.patchStatus(inst, { taskState: confirming ? 'resize_confirming' : 'resize_reverting' });
    crashPoint('operator:decide:after-instance-task');
    await this.kube.migrations.patchStatus(mig, { status: confirming ? 'confirming' : 'reverting' });
    this.log.info({ migration: `${mig.metadata.namespace}/${mig.metadata.name}`, step: confirming ? 'confirming' : 'reverting' }, `${decision} accepted`);
    return {};
  }

  /** Confirm keeps a resize's increase (folded into the instance); revert, failure give it back. */
  private async settleQuota(mig: Migration, inst?: Instance): Promise<void> {
    const namespace = mig.metadata.namespace ?? 'default';
    const uid = mig.metadata.uid ?? '';
    if (!this.quota.allocation(namespace, uid)) return;
    if (mig.status?.status === 'confirmed' && inst) await this.quota.fold(namespace, uid, inst.metadata.uid ?? '');
    else await this.quota.release(namespace, (a) => a.consumer === uid);
  }

  private noteEarlyDecision(mig: Migration): void {
    const seen = mig.status?.conditions?.find((c) => c.type === 'DecisionDeferred');
    if (seen) return;
    const message = `decision ${mig.spec.decision} ignored while the migration is ${mig.status?.status}; it takes effect once the migration is finished`;
    this.events.record(mig, 'Warning', EventReason.DecisionIgnored, message);
    void this.kube.migrations
      .patchStatus(mig, { conditions: setCondition(mig.status?.conditions, { type: 'DecisionDeferred', status: 'True', reason: EventReason.DecisionIgnored, message }, this.now()) })
      .catch(() => undefined);
  }

  private async finishUp(mig: Migration, inst: Instance | undefined): Promise<ReconcileResult> {
    await this.deleteTransferSecret(mig);
    this.placement.forget(mig.metadata.uid ?? '');
    await this.settleQuota(mig, inst);
    const s = mig.status ?? {};
    // After a revert the wanted flavor goes back too, so spec and status agree and no
    // second resize starts (DESIGN: revert resets spec.flavor).
    if (s.status === 'reverted' && s.type === 'resize' && inst && s.oldFlavor && s.newFlavor && inst.spec.flavor === s.newFlavor.name) {
      await this.kube.instances.patch(
        { namespace: inst.metadata.namespace, name: inst.metadata.name },
        { metadata: { resourceVersion: inst.metadata.resourceVersion }, spec: { flavor: s.oldFlavor.name } },
      );
      this.events.record(inst, 'Normal', EventReason.FlavorReset, `resize reverted: spec.flavor set back from ${s.newFlavor.name} to ${s.oldFlavor.name}`);
    }
    return {};
  }
}
