// What both sides of a migration on one host share: who they are, what they touch, and the
// small idempotent writes every step starts with.
import { setReady } from '../../common/api/conditions.js';
import { Fault } from '../../common/api/faults.js';
import { enterPhase, isTerminal, type LivePhase, type PhaseDispatch } from '../../common/api/lifecycle.js';
import { EventReason } from '../../common/api/reasons.js';
import type { MergePatch } from '../../common/api/patch.js';
import type {
  Condition,
  FlavorSnapshot,
  Instance,
  InstanceStatus,
  Migration,
  MigrationPhase,
  MigrationStatus,
  PowerState,
  TaskState,
} from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import { splitKey, type ReconcileResult } from '../../common/runtime/controller.js';
import { statusCode } from '../../common/kube/client.js';
import type { DomainSpec, VirtDriver } from '../driver/driver.js';
import type { InstanceNicsOf } from '../network/agent-networking.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';
import type { CredentialCache } from '../transfer/credentials.js';
import type { TlsMaterial, TransferServer } from '../transfer/server.js';
import type { StepBudget } from './step-budget.js';

export interface MigrationSide {
  host: string;
  kube: KubeClient;
  migrations: ObjectCache<'Migration'>;
  instances: ObjectCache<'Instance'>;
  tracker: ResourceTracker;
  driver: VirtDriver;
  transfers: TransferServer;
  /** Transfer credentials, read from the release namespace. */
  credentials: CredentialCache;
  /** This host's transfer certificate, once issued. */
  identity: { current(): TlsMaterial | undefined };
  events: EventRecorder;
  faults: FaultRecorder;
  log: Logger;
  now: () => Date;
  /** How long a phase this side starts may take before it is rolled back. */
  stepTimeoutMs: number;
  /**
   * The instance's NICs on this host (its ports on this host's bridges), named in every spec a
   * guest starts from here, so the driver plugs them first (setup_networks_on_host and
   * plug_vifs on the destination, again on the source for a revert); none without networking.
   */
  nics?: InstanceNicsOf;
}

export const sameHost = (mig: Migration): boolean => mig.status?.sourceHost === mig.status?.destHost;

/** The domain of `inst` with `flavor`, and its NICs when `nics` knows them (a Port's MAC and address go everywhere). */
export function domainSpec(inst: Instance, flavor: FlavorSnapshot, nics?: InstanceNicsOf): DomainSpec {
  const spec: DomainSpec = {
    uid: inst.metadata.uid ?? '',
    name: `${inst.metadata.namespace}/${inst.metadata.name}`,
    flavor,
    image: inst.spec.image,
  };
  const attached = nics?.(inst);
  if (attached) spec.nics = attached;
  return spec;
}

/** Makes the Instance show the task this Migration step belongs to (idempotent). */
export async function instanceTask(
  side: MigrationSide,
  inst: Instance,
  taskState: TaskState,
  extra: MergePatch<InstanceStatus> = {},
): Promise<Instance> {
  if (inst.status?.taskState === taskState && Object.keys(extra).length === 0) return inst;
  return side.kube.instances.patchStatus(inst, { taskState, ...extra });
}

/** The Ready condition of an instance that has just landed (or landed back) on `host`. */
export function readyOn(
  conditions: Condition[] | undefined,
  powerState: PowerState,
  host: string,
  now: Date,
  awaitingDecision: boolean,
  /** The instance's metadata.generation the condition is set from. */
  generation?: number,
): Condition[] {
  const pending = awaitingDecision ? ', resize awaiting confirm or revert' : '';
  if (powerState === 'running') {
    return setReady(conditions, true, `running on ${host}${pending}`, now, undefined, generation);
  }
  const message = awaitingDecision ? `stopped on ${host}${pending}` : 'stopped';
  return setReady(conditions, false, message, now, undefined, generation);
}

export type LiveStep = (mig: Migration, inst: Instance, log: Logger) => Promise<ReconcileResult>;
/** A terminal phase's clean-up runs even when the instance is gone. */
export type EndStep = (mig: Migration, log: Logger) => Promise<ReconcileResult>;
/** What this side does when a live phase cannot go on; the fault says why. */
export type GiveUpStep = (mig: Migration, inst: Instance, fault: Fault, log: Logger) => Promise<ReconcileResult>;

/** One side's work: its step in each phase and, where it owns the way back, its give-up. */
export interface SideSteps {
  steps: PhaseDispatch<LiveStep, EndStep>;
  giveUp: Partial<Record<LivePhase, GiveUpStep>>;
  budget: StepBudget;
}

import { rollbackFault } from '../../common/api/rollback.js';

export { rollbackFault, rollbackRequest } from '../../common/api/rollback.js';

/** The patch that moves a Migration on, with the deadline of the phase it enters. */
export const enter = (side: MigrationSide, phase: MigrationPhase): MergePatch<MigrationStatus> =>
  enterPhase(phase, side.now(), side.stepTimeoutMs);

/**
 * One side's reconcile: read the Migration and its Instance from the caches and run this side's
 * step for the phase. A rollback requested for this phase (a deadline, a cancel) runs this
 * side's give-up instead, and so does a step whose retry budget is spent. A deleted instance
 * is cleaned up by the instance controller; nothing more moves for it.
 */
export async function reconcileSide(
  side: MigrationSide,
  key: string,
  concerns: (mig: Migration) => boolean,
  work: SideSteps,
): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const mig = side.migrations.get(name, namespace);
  const phase = mig?.status?.status;
  if (!mig || !phase || !concerns(mig)) return {};
  const log = side.log.child({ migration: key, instance: `${namespace}/${mig.spec.instance}` });
  if (isTerminal(phase)) return (await work.steps[phase]?.(mig, log)) ?? {};
  const inst = side.instances.get(mig.spec.instance, namespace);
  if (!inst || inst.metadata.deletionTimestamp || inst.metadata.uid === undefined) return {};
  const giveUp = work.giveUp[phase];
  const request = mig.status?.rollback;
  if (giveUp && request?.phase === phase) return giveUpSafely(side, giveUp, mig, inst, rollbackFault(request), log);
  const step = work.steps[phase];
  if (!step) return {};
  const uid = mig.metadata.uid ?? '';
  try {
    const result = await step(mig, inst, log);
    work.budget.succeeded(uid);
    return result;
  } catch (err) {
    const fault = work.budget.failed(uid, phase, side.host, err);
    if (!fault) throw err;
    log.warn({ step: phase, err: fault.message }, 'retry budget spent');
    if (!giveUp) return strand(side, mig, inst, fault, log);
    return giveUpSafely(side, giveUp, mig, inst, fault, log);
  }
}

/** A give-up that itself fails for good (not an API error) leaves the instance in error, said plainly. */
async function giveUpSafely(
  side: MigrationSide,
  giveUp: GiveUpStep,
  mig: Migration,
  inst: Instance,
  fault: Fault,
  log: Logger,
): Promise<ReconcileResult> {
  try {
    return await giveUp(mig, inst, fault, log);
  } catch (err) {
    if (statusCode(err) !== undefined) throw err;
    const cause = err instanceof Error ? err.message : String(err);
    return strand(side, mig, inst, new Fault(fault.reason, `${fault.message}; rolling back failed too: ${cause}`), log);
  }
}

/**
 * Ends the migration in error from this side: the instance leaves the task (`instance` says
 * what else it now is) and both objects carry the fault, in the step's own writes, with one
 * Warning Event each (`told`, or the fault's message).
 */
export async function endInError(
  side: MigrationSide,
  mig: Migration,
  inst: Instance,
  fault: Fault,
  instance: MergePatch<InstanceStatus>,
  step: string,
  log: Logger,
  told?: string,
): Promise<ReconcileResult> {
  await side.faults.record(
    fault,
    async (status) => {
      await side.kube.instances.patchStatus(inst, {
        taskState: '',
        migration: null,
        taskHosts: null,
        ...instance,
        fault: status,
      });
      await side.kube.migrations.patchStatus(mig, { ...enter(side, 'error'), fault: status, finishedAt: status.time });
    },
    [
      { target: mig, message: told },
      { target: inst, message: told },
    ],
    log,
    step,
  );
  return {};
}

/**
 * The last resort when no copy can be brought back: the Migration ends in error and the
 * instance goes to error, with what an admin can do. Nothing is deleted: the disk and its
 * `<uid>_resize` backup stay where they are.
 */
export function strand(
  side: MigrationSide,
  mig: Migration,
  inst: Instance,
  fault: Fault,
  log: Logger,
): Promise<ReconcileResult> {
  const s = mig.status ?? {};
  const where = [...new Set([s.sourceHost, s.destHost].filter(Boolean))].join(' and ');
  const advice =
    `the instance is left in error with its files kept on ${where}; fix the host, then delete the ` +
    'instance, or recreate it from its image';
  const stranded = new Fault(fault.reason, `${fault.message}; ${advice}`, { cause: fault });
  const generation = inst.metadata.generation;
  const ready = setReady(inst.status?.conditions, false, stranded.message, side.now(), fault.reason, generation);
  return endInError(side, mig, inst, stranded, { vmState: 'error', conditions: ready }, s.status ?? 'migration', log);
}

/** Tells both objects that the migration is rolling back, and why. */
export function announceRollback(side: MigrationSide, mig: Migration, inst: Instance, fault: Fault): void {
  const message = `rolling back onto ${mig.status?.sourceHost}: ${fault.message}`;
  side.events.record(mig, 'Warning', EventReason.RollingBack, message);
  side.events.record(inst, 'Warning', EventReason.RollingBack, `Migration ${mig.metadata.name} ${message}`);
}
