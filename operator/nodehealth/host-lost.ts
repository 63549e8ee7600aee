// Host loss as the instances see it. Once a ComputeNode has been not Ready longer than a
// grace period (its agent went silent and the node monitor marked it Ready=Unknown), every
// Instance whose status.host is that node gets the condition HostLost=True and one Warning
// Event saying since when and what the admin can do. Its vmState stays as last reported:
// nobody knows what the guest is doing. When the host is Ready again, HostLost goes False
// (reason HostBack) with a Normal Event; when the instance has moved to a healthy host (an
// evacuation), it goes False too. The operator is this condition's one writer, and it writes
// only on a change, guarded by the resourceVersion it read.
import { getCondition, setCondition } from '../../common/api/conditions.js';
import { EventReason } from '../../common/api/reasons.js';
import type { ComputeNode, Condition, Instance } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import { isConflict, isNotFound } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import type { HealthPass } from './node-monitor.js';

export const HOST_LOST = 'HostLost';

/** The reasons HostLost carries. */
export const HostLostReason = {
  /** True: the host has been not Ready longer than the grace period. */
  HostLost: 'HostLost',
  /** False: the host the instance is on is Ready again. */
  HostBack: 'HostBack',
  /** False: the instance now runs on another host, which is Ready. */
  Evacuated: 'Evacuated',
} as const;

const readyOf = (node: ComputeNode | undefined) => getCondition(node?.status?.conditions, 'Ready');

/**
 * When `node` stopped being Ready, if it has stayed not Ready for longer than `graceMs`;
 * undefined while it is Ready, within the grace period, or has never reported.
 */
export function lostSince(node: ComputeNode | undefined, now: Date, graceMs: number): Date | undefined {
  const ready = readyOf(node);
  if (!ready || ready.status === 'True') return undefined;
  const since = Date.parse(ready.lastTransitionTime ?? '');
  if (!Number.isFinite(since) || now.getTime() - since <= graceMs) return undefined;
  return new Date(since);
}

/** What the HostLost condition and its Event say: since when, and what the admin can do. */
export function hostLostMessage(host: string, since: Date, node: ComputeNode): string {
  const why = readyOf(node)?.message;
  return (
    `host ${host} has not been Ready since ${since.toISOString()}${why ? ` (${why})` : ''}; ` +
    `the instance's last reported state is kept. Once the host is fenced (powered off or cut off), ` +
    `set spec.forcedDown on ComputeNode ${host} ` +
    `(kubectl patch computenode ${host} --type merge -p '{"spec":{"forcedDown":true}}'), ` +
    `then evacuate the instance (an Evacuation Migration, or spec.evacuationPolicy Automatic) or delete it`
  );
}

export class HostLostReporter implements HealthPass {
  readonly name = 'host-lost';

  constructor(
    private readonly kube: KubeClient,
    private readonly nodes: ObjectCache<'ComputeNode'>,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly events: EventRecorder,
    private readonly opts: { graceMs: number },
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async check(): Promise<void> {
    const now = this.now();
    for (const inst of this.instances.list()) {
      const host = inst.status?.host;
      if (!host || inst.metadata.deletionTimestamp) continue;
      const node = this.nodes.get(host);
      if (!node) continue;
      const current = getCondition(inst.status?.conditions, HOST_LOST);
      const since = lostSince(node, now, this.opts.graceMs);
      if (since && current?.status !== 'True') await this.markLost(inst, node, since, now);
      else if (!since && current?.status === 'True' && readyOf(node)?.status === 'True')
        await this.clear(inst, node, current, now);
    }
  }

  private async markLost(inst: Instance, node: ComputeNode, since: Date, now: Date): Promise<void> {
    const message = hostLostMessage(node.metadata.name, since, node);
    const condition = { type: HOST_LOST, status: 'True' as const, reason: HostLostReason.HostLost, message };
    if (!(await this.write(inst, setCondition(inst.status?.conditions, condition, now)))) return;
    this.log.warn({ instance: key(inst), node: node.metadata.name }, message);
    this.events.record(inst, 'Warning', EventReason.HostLost, message);
  }

  /**
   * The host came back if its Ready condition turned True after HostLost was set; a host that
   * has been Ready all along is one the instance moved to.
   */
  private async clear(inst: Instance, node: ComputeNode, lost: Condition, now: Date): Promise<void> {
    const host = node.metadata.name;
    const readySince = Date.parse(readyOf(node)?.lastTransitionTime ?? '');
    const cameBack = !(readySince < Date.parse(lost.lastTransitionTime));
    const condition = cameBack
      ? { reason: HostLostReason.HostBack, message: `host ${host} is Ready again: its node agent reports` }
      : { reason: HostLostReason.Evacuated, message: `the instance now runs on host ${host}, which is Ready` };
    const conditions = setCondition(inst.status?.conditions, { type: HOST_LOST, status: 'False', ...condition }, now);
    if (!(await this.write(inst, conditions))) return;
    this.log.info({ instance: key(inst), node: host }, condition.message);
    if (cameBack) this.events.record(inst, 'Normal', EventReason.HostBack, condition.message);
  }

  /** One guarded status write; false when someone wrote first (the next pass looks again) or it is gone. */
  private async write(inst: Instance, conditions: Condition[]): Promise<boolean> {
    try {
      await this.kube.instances.patchStatus(inst, { conditions });
      return true;
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) return false;
      throw err;
    }
  }
}

const key = (inst: Instance) => `${inst.metadata.namespace}/${inst.metadata.name}`;
