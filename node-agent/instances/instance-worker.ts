// The compute manager's instance work on one host: claim what the scheduler sent here
// (instance_claim), spawn it (or give it back to the conductor when the spawn fails, Nova's
// RescheduledException), start and stop it, and destroy it on delete. Each step reads the
// Instance, does one idempotent thing and writes the result, so a crash at any point is
// resumed by running the same step again.
import { crashPoint } from '../../common/runtime/crash-point.js';
import { resourcesOf } from '../../common/api/flavor.js';
import { setReady } from '../../common/api/conditions.js';
import { Fault } from '../../common/api/faults.js';
import { checkInstanceState } from '../../common/api/instance-actions.js';
import { EventReason, FaultReason } from '../../common/api/reasons.js';
import type { MergePatch } from '../../common/api/patch.js';
import type { Instance, InstanceStatus } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import { isConflict, isNotFound } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import { splitKey, type ReconcileResult, type Reconciler } from '../../common/runtime/controller.js';
import { DriverError, type DomainInfo, type DomainSpec, type VirtDriver } from '../driver/driver.js';
import type { InstanceNicsOf } from '../network/agent-networking.js';
import { StepBudget } from '../migration/step-budget.js';
import type { PlacementClaims } from '../tracker/claim-or-report.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';
import { serverGroupGuard } from '../tracker/server-group-guard.js';
import type { SpawnDigest } from './spawn-digest.js';
import { SLOW_STEP_REPORT_AFTER_MS, slowerThan } from '../driver/slow-steps.js';

/** A spawn that takes longer than this is announced (taskState spawning) before it ends. */
export const SPAWNING_REPORT_AFTER_MS = SLOW_STEP_REPORT_AFTER_MS;

export class InstanceWorker implements Reconciler {
  constructor(
    private readonly host: string,
    private readonly kube: KubeClient,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly tracker: ResourceTracker,
    private readonly claims: PlacementClaims,
    private readonly driver: VirtDriver,
    private readonly events: EventRecorder,
    private readonly faults: FaultRecorder,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
    /** Drops what a transfer staged for a migration whose claim was just freed. */
    private readonly onMigrationFreed?: (migrationUid: string) => Promise<void>,
    /** Failures of a power action before it gives up with a fault. */
    stepRetries = 5,
    /** Where boots that went as planned are reported together; without it each gets its own Event. */
    private readonly digest?: SpawnDigest,
    /** The instance's NICs on this host (its ports on this host's bridges); none without networking. */
    private readonly nicsOf?: InstanceNicsOf,
  ) {
    this.budget = new StepBudget(stepRetries);
  }

  private readonly budget: StepBudget;
  /** The spec generation whose power action gave up, per instance: it is not tried again until the spec changes. */
  private readonly gaveUp = new Map<string, number>();

  /**
   * Whether this host has anything to do with the instance (runs it, was sent it, or holds a claim
   * for it or its migrations).
   */
  concerns(inst: Instance): boolean {
    const s = inst.status;
    if (s?.host === this.host || s?.scheduling?.selectedHost === this.host) return true;
    const uid = inst.metadata.uid ?? '';
    const key = `${inst.metadata.namespace}/${inst.metadata.name}`;
    return this.tracker.holds((c) => c.consumer === uid || c.instance === key);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const inst = this.instances.get(name, namespace);
    if (!inst || !this.concerns(inst)) return {};
    const log = this.log.child({ instance: key });
    if (inst.metadata.deletionTimestamp) return this.cleanUp(inst, log);
    const s = inst.status ?? {};
    if (s.host === this.host) return this.manage(inst, log);
    if (
      s.vmState === 'building' &&
      s.taskState === 'scheduling' &&
      !s.host &&
      s.scheduling?.selectedHost === this.host
    ) {
      return this.claim(inst, log);
    }
    return {};
  }

  private async claim(inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = inst.status ?? {};
    const attempt = s.scheduling?.attempts ?? 0;
    const failure = s.scheduling?.claimFailure;
    if (failure?.attempt === attempt) {
      // Handed back after a failed spawn here: a crash may have come before the claim was freed.
      if (failure.host === this.host && failure.reason === 'SpawnFailed') await this.releaseInstanceClaim(inst);
      return {};
    }
    const flavor = s.flavor;
    if (!flavor) return {};
    const uid = inst.metadata.uid ?? '';
    const claimed = await this.claims.claimOrReport(
      {
        target: inst,
        scheduling: s.scheduling,
        claim: {
          consumer: uid,
          kind: 'instance',
          instance: `${inst.metadata.namespace}/${inst.metadata.name}`,
          ...resourcesOf(flavor),
        },
        guard: await serverGroupGuard({ host: this.host, kube: this.kube, instances: this.instances }, inst),
        report: (claimFailure) => this.kube.instances.patchStatus(inst, { scheduling: { claimFailure } }),
      },
      log,
      'claim',
    );
    if (!claimed) return {};
    crashPoint('agent:boot:after-claim');
    log.info({ step: 'claim', attempt }, 'claimed');
    return this.spawnClaimed(inst, log);
  }

  /**
   * The boot's last writes, as few as the driver allows: the claim is recorded, the domain is
   * spawned, and one status write makes the instance active on this host. Only a spawn slower
   * than SPAWNING_REPORT_AFTER_MS is announced first (host and taskState spawning), so a user
   * sees what is taking the time. A crash anywhere repeats the claim (a no-op) and the spawn
   * (idempotent) before the same write.
   */
  private async spawnClaimed(inst: Instance, log: Logger): Promise<ReconcileResult> {
    const spawning = this.spawnDomain(inst);
    let current = inst;
    if (await slowerThan(spawning, SPAWNING_REPORT_AFTER_MS)) {
      current = await this.writeAfterClaim(inst, { host: this.host, taskState: 'spawning' });
    }
    let domain: DomainInfo;
    try {
      domain = await spawning;
    } catch (err) {
      if (!(err instanceof DriverError)) throw err;
      return this.spawnFailed(current, err, log);
    }
    crashPoint('agent:boot:after-spawn');
    await this.writeAfterClaim(current, this.activeStatus(current, domain, await this.guest(inst.metadata.uid ?? '')));
    this.spawned(inst, log);
    return {};
  }

  /**
   * A write made on the strength of this host's claim. If the instance is gone, or was sent
   * elsewhere meanwhile (our view was stale), the domain and the claim are given back at once.
   */
  private async writeAfterClaim(inst: Instance, patch: MergePatch<InstanceStatus>): Promise<Instance> {
    const uid = inst.metadata.uid ?? '';
    try {
      return await this.kube.instances.patchStatus(inst, patch);
    } catch (err) {
      let stillOurs = false;
      if (isConflict(err)) {
        const fresh = await this.kube.instances.get({ namespace: inst.metadata.namespace, name: inst.metadata.name });
        stillOurs =
          fresh !== undefined &&
          !fresh.metadata.deletionTimestamp &&
          (fresh.status?.host === this.host ||
            (fresh.status?.taskState === 'scheduling' &&
              fresh.status.scheduling?.selectedHost === this.host &&
              fresh.status.scheduling.claimFailure?.attempt !== fresh.status.scheduling.attempts));
      } else if (!isNotFound(err)) {
        throw err;
      }
      if (!stillOurs) {
        await this.driver.destroy(uid);
        await this.tracker.release(uid);
      }
      throw err;
    }
  }

  /**
   * Spawns with the instance's ports as NICs: the driver plugs them into this host's bridges
   * before the guest starts. A port whose Network this host cannot read yet fails the spawn
   * with a plain error, so the boot is retried rather than handed back as a failed spawn.
   */
  private async spawnDomain(inst: Instance): Promise<DomainInfo> {
    const spec: DomainSpec = {
      uid: inst.metadata.uid ?? '',
      name: `${inst.metadata.namespace}/${inst.metadata.name}`,
      flavor: inst.status!.flavor!,
      image: inst.spec.image,
    };
    const nics = this.nicsOf?.(inst);
    if (nics) spec.nics = nics;
    return this.driver.spawn(spec);
  }

  private activeStatus(inst: Instance, domain: DomainInfo, guest: InstanceStatus['guest'] | null) {
    const s = inst.status ?? {};
    const now = this.now();
    return {
      host: this.host,
      vmState: 'active',
      taskState: '',
      powerState: domain.powerState,
      launchedAt: s.launchedAt ?? now.toISOString(),
      fault: null,
      guest,
      conditions: setReady(s.conditions, true, `running on ${this.host}`, now, undefined, inst.metadata.generation),
    } satisfies MergePatch<InstanceStatus>;
  }

  /**
   * A boot placed at the first try goes into the host's digest (no write of its own); one that
   * needed another host gets its own Spawned Event, saying after how many attempts.
   */
  private spawned(inst: Instance, log: Logger): void {
    log.info({ step: 'spawning' }, 'spawned');
    const attempts = inst.status?.scheduling?.attempts ?? 1;
    if (attempts <= 1 && this.digest) {
      this.digest.add(`${inst.metadata.namespace}/${inst.metadata.name}`);
      return;
    }
    const tries = attempts > 1 ? ` (placement attempt ${attempts})` : '';
    this.events.record(inst, 'Normal', EventReason.Spawned, `instance is running on ${this.host}${tries}`);
  }

  private async manage(inst: Instance, log: Logger): Promise<ReconcileResult> {
    const s = inst.status ?? {};
    switch (s.taskState) {
      case 'spawning':
        return this.spawn(inst, log);
      case 'powering_off':
        return this.power(inst, log, false);
      case 'powering_on':
        return this.power(inst, log, true);
      case '':
      case undefined: {
        if (this.gaveUp.get(inst.metadata.uid ?? '') === inst.metadata.generation) return {};
        const wanted = inst.spec.powerState === 'Stopped' ? 'stop' : 'start';
        // Already in the wanted state, or in one the table does not allow it from: nothing to do.
        if (!checkInstanceState(inst, wanted).ok) return {};
        await this.kube.instances.patchStatus(inst, { taskState: wanted === 'stop' ? 'powering_off' : 'powering_on' });
        return {};
      }
      default:
        return {};
    }
  }

  /** An instance left in spawning (a slow spawn, then a restart): the spawn repeats, then the active write. */
  private async spawn(inst: Instance, log: Logger): Promise<ReconcileResult> {
    if (!inst.status?.flavor) return {};
    let domain: DomainInfo;
    try {
      domain = await this.spawnDomain(inst);
    } catch (err) {
      if (!(err instanceof DriverError)) throw err;
      return this.spawnFailed(inst, err, log);
    }
    crashPoint('agent:boot:after-spawn');
    await this.kube.instances.patchStatus(
      inst,
      this.activeStatus(inst, domain, await this.guest(inst.metadata.uid ?? '')),
    );
    this.spawned(inst, log);
    return {};
  }

  /**
   * Nova's claim is a context manager: a failed build gives everything back. Then, as Nova's
   * RescheduledException, the instance goes back to the conductor to try another host: one
   * status patch clears host, returns to scheduling and reports scheduling.claimFailure for
   * this attempt with reason SpawnFailed, as a refused claim is reported, and a SpawnFailed
   * Warning names the host and the cause. A forced host (spec.host) has nowhere else to go:
   * the instance ends in error/SpawnFailed at once.
   *
   * The order makes a crash at any point safe: the domain goes first (a repeat finds none and
   * spawns again with the claim still held), then the one status patch, then the claim (if a
   * crash comes before it, claim() gives it back on the next pass, or else the audit does).
   */
  private async spawnFailed(inst: Instance, err: DriverError, log: Logger): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    await this.driver.destroy(uid);
    const fault = new Fault(FaultReason.SpawnFailed, `spawn on ${this.host} failed: ${err.message}`, { cause: err });
    if (inst.spec.host) {
      await this.faults.record(
        fault,
        (status) =>
          this.kube.instances.patchStatus(inst, {
            vmState: 'error',
            taskState: '',
            powerState: 'nostate',
            host: null,
            fault: status,
            conditions: setReady(
              inst.status?.conditions,
              false,
              fault.message,
              this.now(),
              fault.reason,
              inst.metadata.generation,
            ),
          }),
        [{ target: inst }],
        log,
        'spawning',
      );
    } else {
      const attempt = inst.status?.scheduling?.attempts ?? 0;
      const claimFailure = {
        host: this.host,
        attempt,
        reason: FaultReason.SpawnFailed,
        message: `spawn failed: ${err.message}`,
      } as const;
      await this.faults.record(
        fault,
        () =>
          this.kube.instances.patchStatus(inst, {
            taskState: 'scheduling',
            powerState: 'nostate',
            host: null,
            scheduling: { claimFailure },
          }),
        [{ target: inst, message: `${fault.message}; given back to the scheduler` }],
        log.child({ attempt }),
        'spawning',
      );
    }
    await this.tracker.release(uid);
    return {};
  }

  /** Frees the instance's own claim on this host, if it still holds one. */
  private async releaseInstanceClaim(inst: Instance): Promise<void> {
    const uid = inst.metadata.uid ?? '';
    if (this.tracker.holds((c) => c.consumer === uid && c.kind === 'instance'))
      await this.tracker.release(uid, 'instance');
  }

  /** powering_off / powering_on: the driver acts, then the instance says what it now is. */
  private async power(inst: Instance, log: Logger, on: boolean): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    const step = on ? 'powering_on' : 'powering_off';
    let domain: DomainInfo;
    try {
      domain = on ? await this.driver.powerOn(uid) : await this.driver.powerOff(uid);
    } catch (err) {
      const fault = this.budget.failed(uid, step, this.host, err);
      if (!fault) throw err;
      return this.powerFailed(inst, fault, log, step);
    }
    this.budget.succeeded(uid);
    this.gaveUp.delete(uid);
    const message = on ? `running on ${this.host}` : 'stopped by request';
    await this.kube.instances.patchStatus(inst, {
      vmState: on ? 'active' : 'stopped',
      taskState: '',
      powerState: domain.powerState,
      ...(on ? { guest: await this.guest(uid) } : {}),
      conditions: setReady(inst.status?.conditions, on, message, this.now(), undefined, inst.metadata.generation),
    });
    const done = on ? 'started' : 'stopped';
    log.info({ step: on ? 'powering_on' : 'powering_off' }, done);
    this.events.record(
      inst,
      'Normal',
      on ? EventReason.Started : EventReason.Stopped,
      `instance ${done} on ${this.host}`,
    );
    return {};
  }

  /**
   * A power action that keeps failing: the task ends with the fault and an Event, the instance
   * stays in the state it was in, and the action is not tried again until the spec changes.
   */
  private async powerFailed(inst: Instance, fault: Fault, log: Logger, step: string): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    const advice = `; the instance stays ${inst.status?.vmState}: fix the host, then set spec.powerState again`;
    const told = new Fault(fault.reason, `${fault.message}${advice}`, { cause: fault });
    const domain = await this.driver.get(uid);
    await this.faults.record(
      told,
      (status) =>
        this.kube.instances.patchStatus(inst, {
          taskState: '',
          fault: status,
          ...(domain ? { powerState: domain.powerState } : {}),
        }),
      [{ target: inst }],
      log,
      step,
    );
    this.gaveUp.set(uid, inst.metadata.generation ?? 0);
    return {};
  }

  private async cleanUp(inst: Instance, log: Logger): Promise<ReconcileResult> {
    const uid = inst.metadata.uid ?? '';
    const key = `${inst.metadata.namespace}/${inst.metadata.name}`;
    const { hadDomain, freed } = await this.tracker.exclusively(uid, async () => {
      const hadDomain = (await this.driver.get(uid)) !== undefined || (await this.driver.hasBackup(uid));
      // Always: the driver runs it after any step still making this domain (a spawn or a migration's
      // finish that began before the deletion), so nothing it makes outlives the claims freed next.
      await this.driver.destroy(uid);
      // Its own claim and those of its migrations (a destination's kind-migration claim).
      const freed = await this.tracker.releaseWhere((c) => c.consumer === uid || c.instance === key);
      return { hadDomain, freed };
    });
    for (const c of freed) if (c.kind === 'migration') await this.onMigrationFreed?.(c.consumer);
    if (hadDomain || freed.length > 0) {
      log.info({ step: 'deleting', hadDomain, freed: freed.length }, 'destroyed and freed');
      this.events.record(inst, 'Normal', EventReason.Deleted, `domain destroyed and claims freed on ${this.host}`);
    }
    return {};
  }

  private async guest(uid: string) {
    const report = await this.driver.guestReport(uid);
    return report ? { ...report, reportedAt: this.now().toISOString() } : null;
  }
}
