// The migration source on this host (KubeVirt's migration-source, Nova's source compute):
//
//   pre-migrating  once the destination holds its claim: take the task -> migrating
//   migrating      power off, keep <uid>_resize, send the directory -> post-migrating
//                  (or, when the transfer cannot finish, the step's retry budget is spent or a
//                  rollback is requested: run again here -> error)
//   confirming     drop <uid>_resize and the old claim, mark SourceCleaned (when the files
//                  cannot go, free the claim and leave them to the stale-copy clean-up)
//   reverting      after DestinationCleaned: restore <uid>_resize byte for byte -> reverted,
//                  or -> error when the revert is a rollback
//
// Every step first makes the Instance show the task, then does its idempotent work, then
// advances the Migration; a crash anywhere repeats the step.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { setCondition } from '../../common/api/conditions.js';
import { StepDone, stepDone } from '../../common/api/lifecycle.js';
import { placedOn } from '../../common/api/placement.js';
import type { Fault } from '../../common/api/faults.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration, MigrationStatus } from '../../common/api/types.js';
import type { ReconcileResult, Reconciler } from '../../common/runtime/controller.js';
import type { Logger } from '../../common/log.js';
import { sendDirectory } from '../transfer/client.js';
import type { TransferCredential } from '../../common/api/transfer-credential.js';
import { TransferFailed, type TransferRef } from '../transfer/protocol.js';
import {
  domainSpec,
  endInError,
  enter,
  instanceTask,
  readyOn,
  reconcileSide,
  rollbackFault,
  sameHost,
} from './shared.js';
import type { MigrationSide, SideSteps } from './shared.js';
import { StepBudget } from './step-budget.js';

export interface MigrationSourceOptions {
  transferRetries: number;
  /** Failures of one step before it gives up (StepBudget). */
  stepRetries: number;
  /** Test hook: break this many transfer attempts of this agent mid-stream. */
  breakTransfers?: number;
  onTransfer?(bytes: number, seconds: number): void;
}

export class MigrationSource implements Reconciler {
  readonly work: SideSteps;
  private brokenSoFar = 0;

  constructor(
    private readonly side: MigrationSide,
    private readonly opts: MigrationSourceOptions,
  ) {
    const steps: SideSteps['steps'] = {
      'pre-migrating': (m, i, log) => this.beginMigrating(m, i, log),
      migrating: (m, i, log) => this.migrateOut(m, i, log),
      'post-migrating': null,
      finished: null,
      confirming: (m, i, log) => this.confirm(m, i, log),
      reverting: (m, i, log) => this.revert(m, i, log),
      confirmed: null,
      reverted: null,
      error: null,
    };
    this.work = {
      steps,
      giveUp: {
        migrating: (m, i, fault, log) => this.rollBack(m, i, fault, log),
        confirming: (m, i, fault, log) => this.leaveOldCopy(m, i, fault, log),
      },
      budget: new StepBudget(opts.stepRetries),
    };
  }

  get steps(): SideSteps['steps'] {
    return this.work.steps;
  }

  concerns(mig: Migration): boolean {
    // An evacuation's source is fenced: the operator stands in for it, even once its agent is back.
    return mig.status?.sourceHost === this.side.host && mig.status.type !== 'evacuation';
  }

  reconcile(key: string): Promise<ReconcileResult> {
    return reconcileSide(this.side, key, (m) => this.concerns(m), this.work);
  }

  // The destination holds the new flavor: the source takes the task and starts moving.
  private async beginMigrating(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    if (!s.destHost) return {};
    await instanceTask(this.side, inst, 'resize_migrating', { taskHosts: [s.sourceHost ?? '', s.destHost] });
    const updated = await this.side.kube.migrations.patchStatus(mig, enter(this.side, 'migrating'));
    return this.migrateOut(updated, this.side.instances.get(inst.metadata.name, inst.metadata.namespace) ?? inst, log);
  }

  // migrate_disk_and_power_off: power off, keep <uid>_resize, send the directory.
  private async migrateOut(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    // Our own post-migrating write may not have reached the cache yet: ask the API server
    // before powering off and sending the disk a second time.
    const fresh = await this.side.kube.migrations.get({ namespace: mig.metadata.namespace, name: mig.metadata.name });
    if (fresh?.status?.status !== 'migrating') return {};
    mig = fresh;
    const s = mig.status ?? {};
    // Nothing is powered off before this host can send: its first certificate may still be on
    // its way, and the credential must name this migration's source and destination (the
    // operator makes it before it asks a destination, and replaces it when it asks another; a
    // pass of the operator's on a stale view may name the wrong one for a moment).
    let credential: TransferCredential | undefined;
    if (!sameHost(mig)) {
      if (!this.side.identity.current()) {
        log.info({ step: 'migrating' }, "waiting for this host's transfer certificate");
        return { requeueAfterMs: 1_000 };
      }
      credential = await this.side.credentials.get(mig.metadata.uid ?? '', 0);
      if (!credential || credential.source !== this.side.host || credential.destination !== s.destHost) {
        const found = credential ? `one from ${credential.source} to ${credential.destination}` : 'none';
        log.info({ step: 'migrating', found }, `waiting for the transfer credential to ${s.destHost}`);
        return { requeueAfterMs: 500 };
      }
    }
    inst = await instanceTask(this.side, inst, 'resize_migrating');
    const exported = await this.side.driver.migrateOut(uid);
    crashPoint('agent:migrating:after-backup');
    let transfer: MigrationStatus['transfer'] | undefined;
    if (credential) {
      try {
        transfer = await this.send(mig, credential, exported.dir, exported.files, log);
      } catch (err) {
        if (!(err instanceof TransferFailed)) throw err;
        const message = `disk transfer to ${s.destHost} failed after ${err.attempts} attempts: ${err.message}`;
        return this.rollBack(mig, inst, new TransferFailed(message, err.attempts), log);
      }
    }
    crashPoint('agent:migrating:after-transfer');
    await instanceTask(this.side, inst, 'resize_migrated');
    await this.side.kube.migrations.patchStatus(mig, {
      ...enter(this.side, 'post-migrating'),
      ...(transfer ? { transfer } : {}),
    });
    log.info({ step: 'migrating', bytes: transfer?.bytes ?? 0 }, 'instance directory sent');
    if (transfer) {
      const message = `${transfer.bytes} bytes sent to ${s.destHost} in ${transfer.attempts} attempt(s), SHA-256 verified`;
      this.side.events.record(mig, 'Normal', EventReason.DiskTransferred, message);
    }
    return {};
  }

  private async send(
    mig: Migration,
    credential: TransferCredential,
    dir: string,
    files: string[],
    log: Logger,
  ): Promise<MigrationStatus['transfer']> {
    const s = mig.status ?? {};
    const ref: TransferRef = {
      namespace: mig.metadata.namespace ?? 'default',
      name: mig.metadata.name,
      uid: mig.metadata.uid ?? '',
    };
    const destination = s.destHost ?? '';
    const tls = this.side.identity.current();
    if (!tls) throw new Error(`${this.side.host} has no transfer certificate`);
    const dest = await this.side.kube.computeNodes.get({ name: destination });
    const endpoint = dest?.status?.migrationEndpoint;
    if (!endpoint) throw new TransferFailed(`destination ${destination} publishes no migration endpoint`, 0);
    const result = await sendDirectory({
      endpoint,
      destination,
      tls,
      ref,
      token: credential.token,
      dir,
      files,
      retries: this.opts.transferRetries,
      backoffMs: 200,
      breakAttempt: (file, attempt) => {
        crashPoint(`agent:migrating:sending-${file}`);
        if (this.brokenSoFar < (this.opts.breakTransfers ?? 0)) {
          this.brokenSoFar++;
          log.warn({ step: 'migrating', file, attempt }, 'test hook: breaking this transfer attempt');
          const message = `transfer of ${file} broken (attempt ${attempt}); retrying`;
          this.side.events.record(mig, 'Warning', EventReason.DiskTransferRetried, message);
          return true;
        }
        return false;
      },
    });
    this.opts.onTransfer?.(result.bytes, result.durationMs / 1000);
    const disk = result.manifest.files.find((f) => f.name.startsWith('disk')) ?? result.manifest.files[0];
    return {
      bytes: result.bytes,
      files: result.manifest.files.length,
      attempts: result.attempts,
      durationMs: Math.round(result.durationMs),
      sha256: disk?.sha256,
      completedAt: this.side.now().toISOString(),
    };
  }

  /**
   * Nothing has landed on the destination (the transfer cannot finish, the step gave up, the
   * migration was cancelled): the backup goes and the instance runs on the source as before.
   */
  private async rollBack(mig: Migration, inst: Instance, fault: Fault, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const uid = inst.metadata.uid ?? '';
    const { driver, host } = this.side;
    await driver.confirmMigration(uid, true); // drops only the backup; the original stays
    const domain = s.oldVmState === 'stopped' ? await driver.powerOff(uid) : await driver.powerOn(uid);
    const told = `${fault.message}; the instance keeps running on ${host}`;
    const instance = { vmState: s.oldVmState ?? 'active', powerState: domain.powerState } as const;
    return endInError(this.side, mig, inst, fault, instance, 'migrating', log, told);
  }

  // confirm_resize on the source: the old copy and claim go.
  private async confirm(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    if (stepDone(mig, StepDone.SourceCleaned)) return {};
    const uid = inst.metadata.uid ?? '';
    await this.side.driver.confirmMigration(uid, sameHost(mig));
    crashPoint('agent:confirming:after-source-cleanup');
    await this.side.tracker.releaseWhere((c) => c.consumer === uid && c.kind === 'instance');
    const message = `${this.side.host} dropped the old copy and claim`;
    const done = { type: StepDone.SourceCleaned, status: 'True' as const, reason: 'Confirmed', message };
    await this.side.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, done, this.side.now()),
    });
    log.info({ step: 'confirming' }, 'source cleaned');
    return {};
  }

  // finish_revert_resize on the source, once the destination has let go.
  private async revert(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    if (!stepDone(mig, StepDone.DestinationCleaned)) return {};
    const s = mig.status ?? {};
    const uid = inst.metadata.uid ?? '';
    const { driver, host, kube } = this.side;
    crashPoint('agent:reverting:before-restore');
    const domain = await driver.revertMigration(domainSpec(inst, s.oldFlavor!, this.side.nics), {
      powerOn: s.oldVmState !== 'stopped',
    });
    const report = await driver.guestReport(uid);
    const now = this.side.now();
    await kube.instances.patchStatus(inst, {
      vmState: s.oldVmState ?? 'active',
      taskState: '',
      ...placedOn(host),
      flavor: s.oldFlavor,
      oldFlavor: null,
      migration: null,
      taskHosts: null,
      powerState: domain.powerState,
      guest: report ? { ...report, reportedAt: now.toISOString() } : null,
      conditions: readyOn(inst.status?.conditions, domain.powerState, host, now, false, inst.metadata.generation),
    });
    const message = `the instance runs on ${host} with ${s.oldFlavor?.name} again`;
    // A rollback carried out by the revert steps, not a revert the user asked for (a deadline
    // passed while reverting does not make it one): the migration failed, and says why.
    if (s.rollback && s.rollback.phase !== 'reverting') {
      const fault = rollbackFault(s.rollback);
      await this.side.faults.record(
        fault,
        (status) =>
          kube.migrations.patchStatus(mig, { ...enter(this.side, 'error'), fault: status, finishedAt: status.time }),
        [{ target: mig, message: `${fault.message}; rolled back: ${message}` }],
        log,
        'reverting',
      );
      this.side.events.record(inst, 'Normal', EventReason.RolledBack, `Migration ${mig.metadata.name} rolled back`);
      return {};
    }
    await kube.migrations.patchStatus(mig, { ...enter(this.side, 'reverted'), finishedAt: now.toISOString() });
    log.info({ step: 'reverting' }, 'reverted');
    this.side.events.record(mig, 'Normal', EventReason.ResizeReverted, `reverted: ${message}`);
    this.side.events.record(inst, 'Normal', EventReason.ResizeReverted, `Migration ${mig.metadata.name} reverted`);
    return {};
  }

  /**
   * confirm_resize could not remove the old files here: the instance runs on the destination,
   * so the old claim goes and the files are left to the stale-copy clean-up, with a warning.
   */
  private async leaveOldCopy(mig: Migration, inst: Instance, fault: Fault, log: Logger): Promise<ReconcileResult> {
    if (stepDone(mig, StepDone.SourceCleaned)) return {};
    const uid = inst.metadata.uid ?? '';
    await this.side.tracker.releaseWhere((c) => c.consumer === uid && c.kind === 'instance');
    const message = `${this.side.host} could not drop the old copy (${fault.message}); it is left for the clean-up`;
    const done = { type: StepDone.SourceCleaned, status: 'True' as const, reason: 'CleanupFailed', message };
    await this.side.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, done, this.side.now()),
    });
    log.warn({ step: 'confirming' }, message);
    this.side.events.record(mig, 'Warning', EventReason.StepFailed, message);
    return {};
  }
}
