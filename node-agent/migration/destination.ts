// The migration destination on this host (KubeVirt's migration-target, Nova's dest compute):
//
//   pre-migrating  chosen by the scheduler: claim the new flavor (resize_claim) or report why not
//   post-migrating finish_resize: move the received directory in, new flavor, grow, start -> finished
//                  (an evacuation rebuilds from the image instead -> confirmed); when it cannot,
//                  hand over to the revert steps (-> reverting, a rollback that ends in error)
//   confirming     after SourceCleaned: the migration claim becomes the instance's -> confirmed
//   reverting      destroy this copy, free the migration claim, mark DestinationCleaned
//   error          free the migration claim and anything staged
import { crashPoint } from '../../common/runtime/crash-point.js';
import { resourcesOf } from '../../common/api/flavor.js';
import { setCondition } from '../../common/api/conditions.js';
import { StepDone, stepDone } from '../../common/api/lifecycle.js';
import { placedOn } from '../../common/api/placement.js';
import { EventReason } from '../../common/api/reasons.js';
import { SLOW_STEP_REPORT_AFTER_MS, slowerThan } from '../driver/slow-steps.js';
import type { Fault } from '../../common/api/faults.js';
import type { Instance, Migration } from '../../common/api/types.js';
import { isConflict, isNotFound } from '../../common/kube/client.js';
import type { ReconcileResult, Reconciler } from '../../common/runtime/controller.js';
import type { Logger } from '../../common/log.js';
import type { PlacementClaims } from '../tracker/claim-or-report.js';
import { serverGroupGuard } from '../tracker/server-group-guard.js';
import {
  announceRollback,
  domainSpec,
  enter,
  instanceTask,
  readyOn,
  reconcileSide,
  rollbackRequest,
} from './shared.js';
import { endInError, sameHost, type MigrationSide, type SideSteps } from './shared.js';
import { StepBudget } from './step-budget.js';

export class MigrationDestination implements Reconciler {
  readonly work: SideSteps;

  constructor(
    private readonly side: MigrationSide,
    private readonly claims: PlacementClaims,
    stepRetries: number,
  ) {
    const steps: SideSteps['steps'] = {
      'pre-migrating': (m, i, log) => this.claim(m, i, log),
      migrating: null,
      'post-migrating': (m, i, log) => this.finishResize(m, i, log),
      finished: null,
      confirming: (m, i, log) => this.confirm(m, i, log),
      reverting: (m, i, log) => this.revert(m, i, log),
      confirmed: null,
      reverted: null,
      error: (m, log) => this.abandon(m, log),
    };
    this.work = {
      steps,
      giveUp: {
        'post-migrating': (m, i, fault, log) =>
          m.status?.type === 'evacuation' ? this.abandonEvacuation(m, i, fault, log) : this.handOver(m, i, fault, log),
      },
      budget: new StepBudget(stepRetries),
    };
  }

  get steps(): SideSteps['steps'] {
    return this.work.steps;
  }

  concerns(mig: Migration): boolean {
    const s = mig.status;
    return s?.destHost === this.side.host || s?.scheduling?.selectedHost === this.side.host;
  }

  reconcile(key: string): Promise<ReconcileResult> {
    return reconcileSide(this.side, key, (m) => this.concerns(m), this.work);
  }

  // resize_claim: the new flavor is held here before anything moves.
  private async claim(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    if (s.destHost || s.scheduling?.selectedHost !== this.side.host || !s.newFlavor) return {};
    const key = `${inst.metadata.namespace}/${inst.metadata.name}`;
    const claimed = await this.claims.claimOrReport(
      {
        target: mig,
        scheduling: s.scheduling,
        claim: { consumer: mig.metadata.uid ?? '', kind: 'migration', instance: key, ...resourcesOf(s.newFlavor) },
        // The same late server-group check as a boot's; the instance moving is not its own conflict.
        guard: await serverGroupGuard(this.side, inst),
        report: (claimFailure) => this.side.kube.migrations.patchStatus(mig, { scheduling: { claimFailure } }),
      },
      log,
      'pre-migrating',
    );
    if (!claimed) return {};
    crashPoint('agent:pre-migrating:after-claim');
    try {
      await this.side.kube.migrations.patchStatus(mig, { destHost: this.side.host });
    } catch (err) {
      // Our view was stale: if the migration is gone or no longer sent here, give the claim back now.
      if (isNotFound(err) || (isConflict(err) && !(await this.stillSentHere(mig)))) await this.release(mig);
      throw err;
    }
    // No Event of its own: status.destHost and the ComputeNode's claims show it (one write fewer).
    log.info({ step: 'pre-migrating', flavor: s.newFlavor.name }, 'destination claimed');
    return {};
  }

  /** Whether the migration, as the API server has it now, still counts on this host's claim. */
  private async stillSentHere(mig: Migration): Promise<boolean> {
    const fresh = await this.side.kube.migrations.get({ namespace: mig.metadata.namespace, name: mig.metadata.name });
    const s = fresh?.status;
    if (!fresh || fresh.metadata.deletionTimestamp) return false;
    // Our own earlier write may have landed already (the cache lagged behind it): the claim is in use.
    if (s?.destHost) return s.destHost === this.side.host;
    const attempt = s?.scheduling?.attempts;
    return (
      s?.status === 'pre-migrating' &&
      s.scheduling?.selectedHost === this.side.host &&
      s.scheduling.claimFailure?.attempt !== attempt
    );
  }

  private release(mig: Migration) {
    const uid = mig.metadata.uid ?? '';
    return this.side.tracker.releaseWhere((c) => c.consumer === uid && c.kind === 'migration');
  }

  // finish_resize.
  private async finishResize(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    if (s.destHost !== this.side.host || !s.newFlavor || !s.oldFlavor) return {};
    if (s.type === 'evacuation') return this.rebuild(mig, inst, log);
    const { driver, host, kube, transfers } = this.side;
    const i = inst.status ?? {};
    if (i.host === host && i.vmState === 'resized' && !i.taskState && i.migration === mig.metadata.name) {
      return this.landed(mig, 'finished');
    }
    const uid = inst.metadata.uid ?? '';
    const migUid = mig.metadata.uid ?? '';
    const newFlavor = s.newFlavor;
    const finishing = (async () => {
      const receivedDir = sameHost(mig) ? undefined : await transfers.completedDir(migUid);
      return this.side.tracker.exclusively(uid, async () => {
        this.mustStillHold(mig, inst);
        if (!sameHost(mig) && !receivedDir && !(await driver.get(uid))) {
          throw new Error(`no verified transfer for migration ${mig.metadata.name} on ${host}`);
        }
        const powerOn = s.oldVmState !== 'stopped';
        return driver.finishMigration(domainSpec(inst, newFlavor, this.side.nics), { receivedDir, powerOn });
      });
    })();
    // Announced only when slow: a fast finish goes straight to the resized write.
    if (await slowerThan(finishing, SLOW_STEP_REPORT_AFTER_MS))
      inst = await instanceTask(this.side, inst, 'resize_finish');
    const domain = await finishing;
    crashPoint('agent:post-migrating:after-finish');
    await transfers.discard(migUid);
    const report = await driver.guestReport(uid);
    const now = this.side.now();
    try {
      await kube.instances.patchStatus(inst, {
        vmState: 'resized',
        taskState: '',
        ...placedOn(host),
        flavor: s.newFlavor,
        oldFlavor: s.oldFlavor,
        powerState: domain.powerState,
        guest: report ? { ...report, reportedAt: now.toISOString() } : null,
        conditions: readyOn(inst.status?.conditions, domain.powerState, host, now, true, inst.metadata.generation),
      });
    } catch (err) {
      await this.undoFinishIfDeleted(inst, mig, err);
      throw err;
    }
    await kube.migrations.patchStatus(mig, { ...enter(this.side, 'finished'), finishedAt: now.toISOString() });
    log.info({ step: 'post-migrating' }, 'finished; awaiting confirm or revert');
    const decide = `patch Migration ${mig.metadata.name} spec.decision to Confirm or Revert`;
    const migMessage = `instance running with ${s.newFlavor.name} on ${host}; confirm or revert`;
    this.side.events.record(mig, 'Normal', EventReason.ResizeFinished, migMessage);
    this.side.events.record(
      inst,
      'Normal',
      EventReason.ResizeFinished,
      `now on ${host} with ${s.newFlavor.name}; ${decide}`,
    );
    return {};
  }

  /**
   * Before a guest is made here for a migration: this host still holds a claim for it (the
   * migration's, or the instance's once a rebuild converted it). A deletion frees them; a guest
   * made after that would be held by nothing. Called under `tracker.exclusively`.
   */
  private mustStillHold(mig: Migration, inst: Instance): void {
    const migUid = mig.metadata.uid ?? '';
    const uid = inst.metadata.uid ?? '';
    const held = this.side.tracker.holds(
      (c) => (c.kind === 'migration' && c.consumer === migUid) || (c.kind === 'instance' && c.consumer === uid),
    );
    if (!held) {
      throw new Error(
        `${this.side.host} holds no claim for migration ${mig.metadata.name} any more (freed when instance ` +
          `${inst.metadata.namespace}/${inst.metadata.name} was deleted or the migration ended): no guest is made here`,
      );
    }
  }

  /**
   * The instance was deleted while its guest was being finished here: this host's deletion pass
   * may have run before the guest existed, so what the finish made is given back now (no domain
   * without a claim). Any other failed write leaves it for the retry, which finishes again.
   */
  private async undoFinishIfDeleted(inst: Instance, mig: Migration, err: unknown): Promise<void> {
    if (!isNotFound(err) && !isConflict(err)) return;
    const { namespace, name } = inst.metadata;
    const fresh = isNotFound(err) ? undefined : await this.side.kube.instances.get({ namespace, name });
    if (fresh && !fresh.metadata.deletionTimestamp) return;
    await this.side.driver.destroy(inst.metadata.uid ?? '');
    await this.release(mig);
  }

  // confirm_resize on the destination, once the source has let go: keep the new claim.
  private async confirm(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    if (mig.status?.destHost !== this.side.host || !stepDone(mig, StepDone.SourceCleaned)) return {};
    const s = mig.status ?? {};
    const key = `${inst.metadata.namespace}/${inst.metadata.name}`;
    await this.side.tracker.convertClaim(
      { consumer: mig.metadata.uid ?? '', kind: 'migration' },
      { consumer: inst.metadata.uid ?? '', kind: 'instance', instance: key, ...resourcesOf(s.newFlavor!) },
    );
    crashPoint('agent:confirming:after-convert');
    const now = this.side.now().toISOString();
    await this.side.kube.instances.patchStatus(inst, {
      vmState: s.oldVmState ?? 'active',
      taskState: '',
      oldFlavor: null,
      migration: null,
      taskHosts: null,
    });
    await this.side.kube.migrations.patchStatus(mig, { ...enter(this.side, 'confirmed'), finishedAt: now });
    log.info({ step: 'confirming' }, 'confirmed');
    const message = `confirmed: the instance stays on ${this.side.host} with ${s.newFlavor?.name}`;
    this.side.events.record(mig, 'Normal', EventReason.ResizeConfirmed, message);
    this.side.events.record(inst, 'Normal', EventReason.ResizeConfirmed, `Migration ${mig.metadata.name} confirmed`);
    return {};
  }

  // revert_resize on the destination: this copy and its claim go first.
  private async revert(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    if (mig.status?.destHost !== this.side.host || stepDone(mig, StepDone.DestinationCleaned)) return {};
    const uid = inst.metadata.uid ?? '';
    const migUid = mig.metadata.uid ?? '';
    // On the same host the source's restore replaces the directory; destroying it here would take the backup too.
    if (!sameHost(mig)) await this.side.driver.destroy(uid);
    crashPoint('agent:reverting:after-destroy');
    await this.side.tracker.releaseWhere((c) => c.consumer === migUid && c.kind === 'migration');
    await this.side.transfers.discard(migUid);
    const message = `${this.side.host} destroyed its copy and freed its claim`;
    const done = { type: StepDone.DestinationCleaned, status: 'True' as const, reason: 'Reverted', message };
    await this.side.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, done, this.side.now()),
    });
    log.info({ step: 'reverting' }, 'destination cleaned');
    return {};
  }

  /**
   * finish_resize cannot be done here: the revert steps take over (this copy goes, the source
   * restores `<uid>_resize`), and the migration ends in error with the reason.
   */
  private async handOver(mig: Migration, inst: Instance, fault: Fault, log: Logger): Promise<ReconcileResult> {
    if (mig.status?.destHost !== this.side.host) return {};
    await instanceTask(this.side, inst, 'resize_reverting');
    await this.side.kube.migrations.patchStatus(mig, {
      ...enter(this.side, 'reverting'),
      rollback: mig.status.rollback ?? rollbackRequest('post-migrating', fault, this.side.now()),
    });
    log.warn({ step: 'post-migrating', err: fault.message }, 'rolling back onto the source');
    announceRollback(this.side, mig, inst, fault);
    return {};
  }

  /**
   * Nova's evacuate on the destination: the source is fenced and its disk out of reach, so the
   * instance is rebuilt from its image here, with this host's claim now the instance's.
   */
  private async rebuild(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const { driver, host, kube } = this.side;
    if (inst.status?.host === host && !inst.status.migration) return this.landed(mig, 'confirmed');
    const uid = inst.metadata.uid ?? '';
    const flavor = s.newFlavor!;
    inst = await instanceTask(this.side, inst, 'resize_finish');
    const domain = await this.side.tracker.exclusively(uid, async () => {
      this.mustStillHold(mig, inst);
      const started = await driver.spawn(domainSpec(inst, flavor, this.side.nics));
      return s.oldVmState === 'stopped' ? driver.powerOff(uid) : started;
    });
    crashPoint('agent:post-migrating:after-rebuild');
    const key = `${inst.metadata.namespace}/${inst.metadata.name}`;
    await this.side.tracker.convertClaim(
      { consumer: mig.metadata.uid ?? '', kind: 'migration' },
      { consumer: uid, kind: 'instance', instance: key, ...resourcesOf(flavor) },
    );
    const report = await driver.guestReport(uid);
    const now = this.side.now();
    await kube.instances.patchStatus(inst, {
      vmState: s.oldVmState ?? 'active',
      taskState: '',
      ...placedOn(host),
      flavor,
      oldFlavor: null,
      migration: null,
      taskHosts: null,
      fault: null,
      powerState: domain.powerState,
      launchedAt: now.toISOString(),
      guest: report ? { ...report, reportedAt: now.toISOString() } : null,
      conditions: readyOn(inst.status?.conditions, domain.powerState, host, now, false, inst.metadata.generation),
    });
    await kube.migrations.patchStatus(mig, { ...enter(this.side, 'confirmed'), finishedAt: now.toISOString() });
    log.info({ step: 'post-migrating' }, 'evacuated: rebuilt from the image');
    const message = `rebuilt on ${host} from image ${inst.spec.image} (the disk on ${s.sourceHost} is lost)`;
    this.side.events.record(mig, 'Normal', EventReason.Evacuated, message);
    this.side.events.record(inst, 'Normal', EventReason.Evacuated, message);
    return {};
  }

  /** The rebuild cannot be done here: this host gives everything back; the instance stays on its dead host. */
  private async abandonEvacuation(mig: Migration, inst: Instance, fault: Fault, log: Logger): Promise<ReconcileResult> {
    if (mig.status?.destHost !== this.side.host) return {};
    const uid = inst.metadata.uid ?? '';
    await this.side.driver.destroy(uid);
    // The rebuild may have turned the migration claim into the instance's before it failed.
    const migUid = mig.metadata.uid ?? '';
    await this.side.tracker.releaseWhere(
      (c) => (c.consumer === migUid && c.kind === 'migration') || (c.consumer === uid && c.kind === 'instance'),
    );
    const told = `${fault.message}; the instance stays on ${mig.status.sourceHost}: create another Evacuation`;
    return endInError(this.side, mig, inst, fault, {}, 'post-migrating', log, told);
  }

  /**
   * The instance already shows this step's write (it is written before the Migration, and its
   * event may arrive first): only the Migration's move is left. Starting the step again would put
   * the instance back into its task.
   */
  private async landed(mig: Migration, phase: 'finished' | 'confirmed'): Promise<ReconcileResult> {
    const now = this.side.now().toISOString();
    await this.side.kube.migrations.patchStatus(mig, { ...enter(this.side, phase), finishedAt: now });
    return {};
  }

  /** A failed migration: the destination gives back what it held for it. */
  private async abandon(mig: Migration, log: Logger): Promise<ReconcileResult> {
    if (mig.status?.destHost !== this.side.host) return {};
    const freed = await this.release(mig);
    await this.side.transfers.discard(mig.metadata.uid ?? '');
    if (freed.length) log.info({ step: 'error' }, 'failed migration: destination claim freed');
    return {};
  }
}
