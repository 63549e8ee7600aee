// One host's part in Nova's resize and cold migration. The same worker runs on every
// host; which steps it takes depends on whether this host is the Migration's source, its
// destination or both (a same-host resize):
//
//   pre-migrating  dest: resize_claim (kind migration)       source: power off, send disk -> migrating
//   migrating      source: transfer with retries             -> post-migrating (or error, rolled back)
//   post-migrating dest: finish_resize: new flavor, grow disk, start -> finished
//   confirming     source: drop <uid>_resize, free old claim; then dest: keep new claim -> confirmed
//   reverting      dest: destroy, free new claim; then source: restore <uid>_resize -> reverted
//
// Every step first makes the Instance show the task the Migration is in, then does its
// idempotent work, then advances the Migration; a crash anywhere repeats the step.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { MIGRATION_UID_ANNOTATION, transferSecretName } from '../../common/api/transfer-secret.js';
import { resourcesOf } from '../../common/api/flavor.js';
import { getCondition, setCondition } from '../../common/api/conditions.js';
import type { MergePatch } from '../../common/api/patch.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { Instance, InstanceStatus, Migration, MigrationStatus, TaskState } from '../../common/api/types.js';
import { apiMessage, isNotFound, type Kube } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Informer } from '../../common/kube/informer.js';
import type { Logger } from '../../common/log.js';
import { splitKey, type ReconcileResult } from '../../common/runtime/controller.js';
import type { DomainSpec, VirtDriver } from '../driver/driver.js';
import { ClaimFailed } from '../tracker/claims.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';
import { sendDirectory } from '../transfer/client.js';
import { TransferFailed, type TransferRef } from '../transfer/protocol.js';
import type { TransferServer } from '../transfer/server.js';

export const SOURCE_CLEANED = 'SourceCleaned';
export const DESTINATION_CLEANED = 'DestinationCleaned';

export interface MigrationWorkerOptions {
  transferRetries: number;
  /** Test hook: break this many transfer attempts of this agent mid-stream. */
  breakTransfers?: number;
  onTransfer?(bytes: number, seconds: number): void;
}

export class MigrationWorker {
  private brokenSoFar = 0;

  constructor(
    private readonly host: string,
    private readonly kube: Kube,
    private readonly migrations: Informer<'Migration'>,
    private readonly instances: Informer<'Instance'>,
    private readonly tracker: ResourceTracker,
    private readonly driver: VirtDriver,
    private readonly transfers: TransferServer,
    private readonly events: EventRecorder,
    private readonly opts: MigrationWorkerOptions,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  concerns(mig: Migration): boolean {
    const s = mig.status;
    return s?.sourceHost === this.host || s?.destHost === this.host || s?.scheduling?.selectedHost === this.host;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const mig = this.migrations.get(name, namespace);
    if (!mig || !this.concerns(mig)) return {};
    const inst = this.instances.get(mig.spec.instance, namespace);
    const log = this.log.child({ migration: key, instance: `${namespace}/${mig.spec.instance}` });
    const s = mig.status ?? {};
    const isSource = s.sourceHost === this.host;
    const isDest = s.destHost === this.host;
    if (s.status === 'error') return isDest ? this.abandonDestination(mig, log) : {};
    // A deleted instance is cleaned up by the instance worker; nothing more to move.
    if (!inst || inst.metadata.deletionTimestamp || inst.metadata.uid === undefined) return {};
    switch (s.status) {
      case 'pre-migrating':
        if (!s.destHost && s.scheduling?.selectedHost === this.host) return this.claimDestination(mig, inst, log);
        if (s.destHost && isSource) return this.beginMigrating(mig, inst, log);
        return {};
      case 'migrating':
        return isSource ? this.migrateOut(mig, inst, log) : {};
      case 'post-migrating':
        return isDest ? this.finishResize(mig, inst, log) : {};
      case 'confirming':
        if (isSource && !this.cleaned(mig, SOURCE_CLEANED)) return this.confirmOnSource(mig, inst, log);
        if (isDest && this.cleaned(mig, SOURCE_CLEANED)) return this.confirmOnDestination(mig, inst, log);
        return {};
      case 'reverting':
        if (isDest && !this.cleaned(mig, DESTINATION_CLEANED)) return this.revertOnDestination(mig, inst, log);
        if (isSource && this.cleaned(mig, DESTINATION_CLEANED)) return this.revertOnSource(mig, inst, log);
        return {};
      default:
        return {};
    }
  }

  private cleaned(mig: Migration, type: string): boolean {
    return getCondition(mig.status?.conditions, type)?.status === 'True';
  }

  private sameHost(mig: Migration): boolean {
    return mig.status?.sourceHost === mig.status?.destHost;
  }

  private domainSpec(inst: Instance, flavor: NonNullable<MigrationStatus['newFlavor']>): DomainSpec {
    return { uid: inst.metadata.uid ?? '', name: `${inst.metadata.namespace}/${inst.metadata.name}`, flavor, image: inst.spec.image };
  }

  /** Makes the Instance show the task this Migration step belongs to (idempotent). */
  private async instanceTask(inst: Instance, taskState: TaskState, extra: MergePatch<InstanceStatus> = {}): Promise<Instance> {
    if (inst.status?.taskState === taskState && Object.keys(extra).length === 0) return inst;
    return this.kube.instances.patchStatus(inst, { taskState, ...extra });
  }

  // resize_claim on the destination: the new flavor is held before anything moves.
  private async claimDestination(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const attempt = s.scheduling?.attempts ?? 0;
    if (s.scheduling?.claimFailure?.attempt === attempt || !s.newFlavor) return {};
    const uid = mig.metadata.uid ?? '';
    try {
      await this.tracker.claim({ consumer: uid, kind: 'migration', instance: `${inst.metadata.namespace}/${inst.metadata.name}`, ...resourcesOf(s.newFlavor) });
    } catch (err) {
      if (!(err instanceof ClaimFailed)) throw err;
      log.info({ step: 'pre-migrating', attempt, reasons: err.shortfalls }, 'migration claim failed');
      await this.kube.migrations.patchStatus(mig, { scheduling: { claimFailure: { host: this.host, attempt, message: err.message } } });
      this.events.record(mig, 'Warning', EventReason.ClaimFailed, err.message);
      return {};
    }
    crashPoint('agent:pre-migrating:after-claim');
    await this.kube.migrations.patchStatus(mig, { destHost: this.host });
    log.info({ step: 'pre-migrating' }, 'destination claimed');
    this.events.record(mig, 'Normal', EventReason.MigrationClaimed, `${this.host} claimed ${s.newFlavor.name} for the instance`);
    return {};
  }

  private async beginMigrating(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    await this.instanceTask(inst, 'resize_migrating', { taskHosts: [mig.status?.sourceHost ?? '', mig.status?.destHost ?? ''] });
    const updated = await this.kube.migrations.patchStatus(mig, { status: 'migrating' });
    return this.migrateOut(updated, this.instances.get(inst.metadata.name, inst.metadata.namespace) ?? inst, log);
  }

  // resize_instance on the source: power off, keep <uid>_resize, send the directory.
  private async migrateOut(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    // Our own post-migrating write may not have reached the cache yet: ask the API server
    // before powering off and sending the disk a second time.
    const fresh = await this.kube.migrations.get({ namespace: mig.metadata.namespace, name: mig.metadata.name });
    if (fresh?.status?.status !== 'migrating') return {};
    mig = fresh;
    const s = mig.status ?? {};
    inst = await this.instanceTask(inst, 'resize_migrating');
    const exported = await this.driver.migrateOut(uid);
    crashPoint('agent:migrating:after-backup');
    let transfer: MigrationStatus['transfer'] | undefined;
    if (!this.sameHost(mig)) {
      try {
        transfer = await this.send(mig, exported.dir, exported.files, log);
      } catch (err) {
        if (err instanceof TransferFailed) return this.rollBack(mig, inst, `disk transfer to ${s.destHost} failed after ${err.attempts} attempts: ${err.message}`, log);
        throw err;
      }
    }
    crashPoint('agent:migrating:after-transfer');
    await this.instanceTask(inst, 'resize_migrated');
    await this.kube.migrations.patchStatus(mig, { status: 'post-migrating', ...(transfer ? { transfer } : {}) });
    log.info({ step: 'migrating', bytes: transfer?.bytes ?? 0 }, 'instance directory sent');
    if (transfer) this.events.record(mig, 'Normal', EventReason.DiskTransferred, `${transfer.bytes} bytes sent to ${s.destHost} in ${transfer.attempts} attempt(s), SHA-256 verified`);
    return {};
  }

  private async send(mig: Migration, dir: string, files: string[], log: Logger): Promise<MigrationStatus['transfer']> {
    const s = mig.status ?? {};
    const ref: TransferRef = { namespace: mig.metadata.namespace ?? 'default', name: mig.metadata.name, uid: mig.metadata.uid ?? '' };
    const token = await readTransferToken(this.kube, ref);
    if (!token) throw new TransferFailed(`no transfer token for Migration ${ref.name}`, 0);
    const dest = await this.kube.computeNodes.get({ name: s.destHost ?? '' });
    const endpoint = dest?.status?.migrationEndpoint;
    if (!endpoint) throw new TransferFailed(`destination ${s.destHost} publishes no migration endpoint`, 0);
    let attemptsSeen = 0;
    const result = await sendDirectory({
      endpoint,
      ref,
      token,
      dir,
      files,
      retries: this.opts.transferRetries,
      backoffMs: 200,
      breakAttempt: (file, attempt) => {
        crashPoint(`agent:migrating:sending-${file}`);
        attemptsSeen = Math.max(attemptsSeen, attempt);
        if (this.brokenSoFar < (this.opts.breakTransfers ?? 0)) {
          this.brokenSoFar++;
          log.warn({ step: 'migrating', file, attempt }, 'test hook: breaking this transfer attempt');
          this.events.record(mig, 'Warning', EventReason.DiskTransferRetried, `transfer of ${file} broken (attempt ${attempt}); retrying`);
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
      completedAt: this.now().toISOString(),
    };
  }

  /** The transfer cannot finish: the instance runs on the source as before. */
  private async rollBack(mig: Migration, inst: Instance, message: string, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const uid = inst.metadata.uid ?? '';
    await this.driver.confirmMigration(uid, true); // drops only the backup; the original stays
    const domain = s.oldVmState === 'stopped' ? await this.driver.powerOff(uid) : await this.driver.powerOn(uid);
    const now = this.now().toISOString();
    await this.kube.instances.patchStatus(inst, {
      taskState: '',
      vmState: s.oldVmState ?? 'active',
      powerState: domain.powerState,
      migration: null,
      taskHosts: null,
      fault: { reason: FaultReason.TransferFailed, message, time: now },
    });
    await this.kube.migrations.patchStatus(mig, { status: 'error', fault: { reason: FaultReason.TransferFailed, message, time: now }, finishedAt: now });
    log.warn({ step: 'migrating' }, `${message}; instance rolled back onto ${this.host}`);
    this.events.record(mig, 'Warning', EventReason.MigrationFailed, `${message}; the instance keeps running on ${this.host}`);
    this.events.record(inst, 'Warning', EventReason.MigrationFailed, `${message}; the instance keeps running on ${this.host}`);
    return {};
  }

  // finish_resize on the destination.
  private async finishResize(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    if (!s.newFlavor || !s.oldFlavor) return {};
    const uid = inst.metadata.uid ?? '';
    const migUid = mig.metadata.uid ?? '';
    inst = await this.instanceTask(inst, 'resize_finish');
    const receivedDir = this.sameHost(mig) ? undefined : await this.transfers.completedDir(migUid);
    if (!this.sameHost(mig) && !receivedDir && !(await this.driver.get(uid))) {
      throw new Error(`no verified transfer for migration ${mig.metadata.name} on ${this.host}`);
    }
    const domain = await this.driver.finishMigration(this.domainSpec(inst, s.newFlavor), { receivedDir, powerOn: s.oldVmState !== 'stopped' });
    crashPoint('agent:post-migrating:after-finish');
    await this.transfers.discard(migUid);
    const report = await this.driver.guestReport(uid);
    const now = this.now();
    await this.kube.instances.patchStatus(inst, {
      vmState: 'resized',
      taskState: '',
      host: this.host,
      flavor: s.newFlavor,
      oldFlavor: s.oldFlavor,
      powerState: domain.powerState,
      guest: report ? { ...report, reportedAt: now.toISOString() } : null,
      conditions: setCondition(inst.status?.conditions, domain.powerState === 'running'
        ? { type: 'Ready', status: 'True', reason: 'Running', message: `running on ${this.host}, resize awaiting confirm or revert` }
        : { type: 'Ready', status: 'False', reason: 'Stopped', message: `stopped on ${this.host}, resize awaiting confirm or revert` }, now),
    });
    await this.kube.migrations.patchStatus(mig, { status: 'finished', finishedAt: now.toISOString() });
    log.info({ step: 'post-migrating' }, 'finished; awaiting confirm or revert');
    this.events.record(mig, 'Normal', EventReason.ResizeFinished, `instance running with ${s.newFlavor.name} on ${this.host}; confirm or revert`);
    this.events.record(inst, 'Normal', EventReason.ResizeFinished, `now on ${this.host} with ${s.newFlavor.name}; patch Migration ${mig.metadata.name} spec.decision to Confirm or Revert`);
    return {};
  }

  private async confirmOnSource(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    await this.driver.confirmMigration(uid, this.sameHost(mig));
    crashPoint('agent:confirming:after-source-cleanup');
    await this.tracker.releaseWhere((c) => c.consumer === uid && c.kind === 'instance');
    await this.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, { type: SOURCE_CLEANED, status: 'True', reason: 'Confirmed', message: `${this.host} dropped the old copy and claim` }, this.now()),
    });
    log.info({ step: 'confirming' }, 'source cleaned');
    return {};
  }

  private async confirmOnDestination(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const uid = inst.metadata.uid ?? '';
    await this.tracker.convertClaim(
      { consumer: mig.metadata.uid ?? '', kind: 'migration' },
      { consumer: uid, kind: 'instance', instance: `${inst.metadata.namespace}/${inst.metadata.name}`, ...resourcesOf(s.newFlavor!) },
    );
    crashPoint('agent:confirming:after-convert');
    const now = this.now().toISOString();
    await this.kube.instances.patchStatus(inst, { vmState: s.oldVmState ?? 'active', taskState: '', oldFlavor: null, migration: null, taskHosts: null });
    await this.kube.migrations.patchStatus(mig, { status: 'confirmed', finishedAt: now });
    log.info({ step: 'confirming' }, 'confirmed');
    this.events.record(mig, 'Normal', EventReason.ResizeConfirmed, `confirmed: the instance stays on ${this.host} with ${s.newFlavor?.name}`);
    this.events.record(inst, 'Normal', EventReason.ResizeConfirmed, `Migration ${mig.metadata.name} confirmed`);
    return {};
  }

  private async revertOnDestination(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    // On the same host the source's restore replaces the directory; destroying it here would take the backup too.
    if (!this.sameHost(mig)) await this.driver.destroy(uid);
    crashPoint('agent:reverting:after-destroy');
    await this.tracker.releaseWhere((c) => c.consumer === (mig.metadata.uid ?? '') && c.kind === 'migration');
    await this.transfers.discard(mig.metadata.uid ?? '');
    await this.kube.migrations.patchStatus(mig, {
      conditions: setCondition(mig.status?.conditions, { type: DESTINATION_CLEANED, status: 'True', reason: 'Reverted', message: `${this.host} destroyed its copy and freed its claim` }, this.now()),
    });
    log.info({ step: 'reverting' }, 'destination cleaned');
    return {};
  }

  private async revertOnSource(mig: Migration, inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = mig.status ?? {};
    const uid = inst.metadata.uid ?? '';
    crashPoint('agent:reverting:before-restore');
    const domain = await this.driver.revertMigration(this.domainSpec(inst, s.oldFlavor!), { powerOn: s.oldVmState !== 'stopped' });
    const report = await this.driver.guestReport(uid);
    const now = this.now();
    await this.kube.instances.patchStatus(inst, {
      vmState: s.oldVmState ?? 'active',
      taskState: '',
      host: this.host,
      flavor: s.oldFlavor,
      oldFlavor: null,
      migration: null,
      taskHosts: null,
      powerState: domain.powerState,
      guest: report ? { ...report, reportedAt: now.toISOString() } : null,
      conditions: setCondition(inst.status?.conditions, domain.powerState === 'running'
        ? { type: 'Ready', status: 'True', reason: 'Running', message: `running on ${this.host}` }
        : { type: 'Ready', status: 'False', reason: 'Stopped', message: 'stopped' }, now),
    });
    await this.kube.migrations.patchStatus(mig, { status: 'reverted', finishedAt: now.toISOString() });
    log.info({ step: 'reverting' }, 'reverted');
    this.events.record(mig, 'Normal', EventReason.ResizeReverted, `reverted: the instance runs on ${this.host} with ${s.oldFlavor?.name} again`);
    this.events.record(inst, 'Normal', EventReason.ResizeReverted, `Migration ${mig.metadata.name} reverted`);
    return {};
  }

  /** A failed migration: the destination gives back what it held for it. */
  private async abandonDestination(mig: Migration, log: Logger): Promise<ReconcileResult> {
    const uid = mig.metadata.uid ?? '';
    const freed = await this.tracker.releaseWhere((c) => c.consumer === uid && c.kind === 'migration');
    await this.transfers.discard(uid);
    if (freed.length) log.info({ step: 'error' }, 'failed migration: destination claim freed');
    return {};
  }
}

export async function readTransferToken(kube: Kube, ref: TransferRef): Promise<string | undefined> {
  try {
    const secret = await kube.core.readNamespacedSecret({ namespace: ref.namespace, name: transferSecretName(ref.name) });
    if (secret.metadata?.annotations?.[MIGRATION_UID_ANNOTATION] !== ref.uid) return undefined;
    const token = secret.data?.token;
    return token ? Buffer.from(token, 'base64').toString('utf8') : undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new Error(`reading the transfer token: ${apiMessage(err)}`, { cause: err });
  }
}
