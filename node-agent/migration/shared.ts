// What both sides of a migration on one host share: who they are, what they touch, and the
// small idempotent writes every step starts with.
import { setReady } from '../../common/api/conditions.js';
import { isTerminal, type PhaseDispatch } from '../../common/api/lifecycle.js';
import type { MergePatch } from '../../common/api/patch.js';
import type {
  Condition,
  FlavorSnapshot,
  Instance,
  InstanceStatus,
  Migration,
  PowerState,
  TaskState,
} from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import { splitKey, type ReconcileResult } from '../../common/runtime/controller.js';
import type { DomainSpec, VirtDriver } from '../driver/driver.js';
import type { ResourceTracker } from '../tracker/resource-tracker.js';
import type { TransferServer } from '../transfer/server.js';

export interface MigrationSide {
  host: string;
  kube: KubeClient;
  migrations: ObjectCache<'Migration'>;
  instances: ObjectCache<'Instance'>;
  tracker: ResourceTracker;
  driver: VirtDriver;
  transfers: TransferServer;
  events: EventRecorder;
  faults: FaultRecorder;
  log: Logger;
  now: () => Date;
}

export const sameHost = (mig: Migration): boolean => mig.status?.sourceHost === mig.status?.destHost;

export function domainSpec(inst: Instance, flavor: FlavorSnapshot): DomainSpec {
  return {
    uid: inst.metadata.uid ?? '',
    name: `${inst.metadata.namespace}/${inst.metadata.name}`,
    flavor,
    image: inst.spec.image,
  };
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
): Condition[] {
  const pending = awaitingDecision ? ', resize awaiting confirm or revert' : '';
  if (powerState === 'running') return setReady(conditions, true, `running on ${host}${pending}`, now);
  return setReady(conditions, false, awaitingDecision ? `stopped on ${host}${pending}` : 'stopped', now);
}

export type LiveStep = (mig: Migration, inst: Instance, log: Logger) => Promise<ReconcileResult>;
/** A terminal phase's clean-up runs even when the instance is gone. */
export type EndStep = (mig: Migration, log: Logger) => Promise<ReconcileResult>;

/**
 * One side's reconcile: read the Migration and its Instance from the caches and run this side's
 * step for the phase. A deleted instance is cleaned up by the instance controller; nothing more
 * moves for it.
 */
export async function reconcileSide(
  side: MigrationSide,
  key: string,
  concerns: (mig: Migration) => boolean,
  steps: PhaseDispatch<LiveStep, EndStep>,
): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const mig = side.migrations.get(name, namespace);
  const phase = mig?.status?.status;
  if (!mig || !phase || !concerns(mig)) return {};
  const log = side.log.child({ migration: key, instance: `${namespace}/${mig.spec.instance}` });
  if (isTerminal(phase)) return (await steps[phase]?.(mig, log)) ?? {};
  const inst = side.instances.get(mig.spec.instance, namespace);
  if (!inst || inst.metadata.deletionTimestamp || inst.metadata.uid === undefined) return {};
  return (await steps[phase]?.(mig, inst, log)) ?? {};
}
