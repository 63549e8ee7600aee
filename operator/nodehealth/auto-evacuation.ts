// Automatic evacuation (what Masakari adds to Nova): once an admin forces a host down
// (ComputeNode spec.forcedDown, the promise that it is fenced), each Instance on it whose
// spec.evacuationPolicy is Automatic, that is not being deleted and has no live Evacuation
// Migration gets one: `<instance>-evacuate-<n>`, owned by the Instance like a resize's
// Migration. The name is deterministic (one more than the highest such name), so a pass
// repeated on a stale cache meets AlreadyExists instead of creating a second one. A failed
// evacuation is tried again after a pause, a few times at most; then an admin takes over.
import { isTerminal } from '../../common/api/lifecycle.js';
import { EventReason } from '../../common/api/reasons.js';
import type { Instance, Migration } from '../../common/api/types.js';
import type { KubeClient, ObjectCache } from '../../common/kube/api.js';
import { isConflict } from '../../common/kube/client.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { Logger } from '../../common/log.js';
import { ownedMigration } from '../migration/owned-migration.js';
import type { HealthPass } from './node-monitor.js';

export const evacuationName = (instance: string, n: number) => `${instance}-evacuate-${n}`;

export interface AutoEvacuationOptions {
  /** Failed evacuations from one host after which the operator stops trying by itself. */
  maxAttempts: number;
  /** How long after a failed evacuation ended the next one may start. */
  retryAfterMs: number;
}

export const DEFAULT_AUTO_EVACUATION: AutoEvacuationOptions = { maxAttempts: 3, retryAfterMs: 60_000 };

export class AutoEvacuation implements HealthPass {
  readonly name = 'auto-evacuation';
  /** Instances (uid) already told to have given up, so the log says it once. */
  private readonly gaveUp = new Set<string>();

  constructor(
    private readonly kube: KubeClient,
    private readonly nodes: ObjectCache<'ComputeNode'>,
    private readonly instances: ObjectCache<'Instance'>,
    private readonly migrations: ObjectCache<'Migration'>,
    private readonly events: EventRecorder,
    private readonly log: Logger,
    private readonly opts: AutoEvacuationOptions = DEFAULT_AUTO_EVACUATION,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async check(): Promise<void> {
    const down = new Set(
      this.nodes
        .list()
        .filter((n) => n.spec.forcedDown === true)
        .map((n) => n.metadata.name),
    );
    if (down.size === 0) return;
    for (const inst of this.instances.list()) {
      const host = inst.status?.host;
      if (!host || !down.has(host)) continue;
      if (inst.spec.evacuationPolicy !== 'Automatic' || inst.metadata.deletionTimestamp) continue;
      await this.evacuate(inst, host);
    }
  }

  private async evacuate(inst: Instance, host: string): Promise<void> {
    const name = inst.metadata.name;
    const namespace = inst.metadata.namespace ?? 'default';
    const inNamespace = this.migrations.list(namespace);
    const evacuations = inNamespace.filter((m) => m.spec.instance === name && m.spec.type === 'Evacuation');
    if (evacuations.some((m) => !isTerminal(m.status?.status))) return;
    const now = this.now().getTime();
    const since = (m: Migration) => now - Date.parse(m.status?.finishedAt ?? '');
    // Confirmed but the instance still shows this host: its status is catching up, not a new loss.
    if (
      evacuations.some(
        (m) =>
          m.status?.status === 'confirmed' && m.status.sourceHost === host && !(since(m) >= this.opts.retryAfterMs),
      )
    )
      return;
    const failed = evacuations.filter((m) => m.status?.status === 'error' && (m.status.sourceHost ?? host) === host);
    if (failed.length >= this.opts.maxAttempts) {
      if (!this.gaveUp.has(inst.metadata.uid ?? name))
        this.log.warn(
          { instance: `${namespace}/${name}`, node: host, failed: failed.map((m) => m.metadata.name) },
          `automatic evacuation gave up after ${failed.length} failed attempts; an admin can create an Evacuation Migration`,
        );
      this.gaveUp.add(inst.metadata.uid ?? name);
      return;
    }
    if (failed.some((m) => since(m) < this.opts.retryAfterMs)) return;

    const migration = evacuationName(name, highestNumber(name, inNamespace) + 1);
    try {
      await this.kube.migrations.create(ownedMigration(inst, migration, { type: 'Evacuation' }));
    } catch (err) {
      // Created by an earlier pass whose result the cache has not shown yet.
      if (isConflict(err)) return;
      throw err;
    }
    const message = `host ${host} is forced down: evacuation ${migration} created (spec.evacuationPolicy Automatic)`;
    this.log.info({ instance: `${namespace}/${name}`, migration, node: host }, message);
    this.events.record(inst, 'Normal', EventReason.EvacuationStarted, message);
  }
}

/** The highest n among the Migrations named `<instance>-evacuate-<n>`; 0 when none. */
function highestNumber(instance: string, migrations: readonly Migration[]): number {
  const prefix = `${instance}-evacuate-`;
  return Math.max(
    0,
    ...migrations
      .map((m) => m.metadata.name)
      .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
      .map((n) => Number(n.slice(prefix.length))),
  );
}
