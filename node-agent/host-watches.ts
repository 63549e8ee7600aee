// What one host's agent watches: only the Instances and Migrations that involve its host, so
// its work follows its own share of the cluster, not the whole cluster's churn. Each way an
// object can involve the host is one watch with a field selector on a CRD selectable field
// (common/api/schema.ts), and the HostAgent reads the union (MergedCache):
//
//   Instance   status.scheduling.selectedHost=<host>  sent here to be claimed, or runs here:
//                                                      every write of status.host names the
//                                                      same host here (common/api/placement.ts),
//                                                      so one watch covers both
//              metadata.name=<name> (per namespace)    named by a Migration of this host's that
//                                                      has not ended: the destination sees the
//                                                      instance from pre-migrating on, the
//                                                      source keeps it after it has moved, for
//                                                      confirm and revert
//   Migration  status.sourceHost=<host>                the source, from the start to the end
//              status.scheduling.selectedHost=<host>   asked to be the destination, then the
//                                                      destination: selectedHost stays equal to
//                                                      destHost to the end (the operator's
//                                                      routing mends Migrations that predate it)
//
// The instance of a migration is followed by name rather than by a field of its own: the
// Migration already names both hosts, and a field on the Instance would cost a write on each
// placement attempt of every resize.
//
// An object leaving a watch arrives as a DELETED event although it still exists: the union
// then only says that it no longer involves this host. Nothing here deletes or destroys
// anything; the audit and the stale-copy clean-up read the API server before they destroy.
import { isTerminal } from '../common/api/lifecycle.js';
import type { Migration } from '../common/api/types.js';
import type { KindName, WatchEvent } from '../common/kube/api.js';
import type { Kube } from '../common/kube/client.js';
import { Informer } from '../common/kube/informer.js';
import { MergedCache } from '../common/kube/merged-cache.js';
import type { Logger } from '../common/log.js';

/** The counter of watch events delivered to a process's host agents, by kind and event (the benchmark reads it). */
export const WATCH_EVENTS_METRIC = 'kubenova_agent_watch_events_total';

/** Counts the events every watch delivers to this agent, by kind and event. */
export type WatchEventCounter = (kind: KindName, event: WatchEvent) => void;

/** The field selectors of one host's standing watches. */
export function hostSelectors(host: string): { instances: string[]; migrations: string[] } {
  return {
    instances: [`status.scheduling.selectedHost=${host}`],
    migrations: [`status.sourceHost=${host}`, `status.scheduling.selectedHost=${host}`],
  };
}

/** Whether a Migration in this host's view still needs its instance seen here. */
const followsInstance = (mig: Migration): boolean => !isTerminal(mig.status?.status);

export class HostWatches {
  readonly instances = new MergedCache<'Instance'>();
  readonly migrations = new MergedCache<'Migration'>();
  private readonly standing: { start(): Promise<void>; stop(): Promise<void> }[] = [];
  /** namespace/name of an instance -> its watch, and the Migrations (namespace/name) that want it. */
  private readonly followed = new Map<string, { informer: Informer<'Instance'>; by: Set<string> }>();
  private started = false;
  private stopped = false;

  constructor(
    private readonly kube: Kube,
    readonly host: string,
    private readonly log: Logger,
    private readonly count: WatchEventCounter = () => {},
  ) {
    const selectors = hostSelectors(host);
    for (const fieldSelector of selectors.instances) {
      const informer = this.informer('Instance', fieldSelector);
      this.standing.push(informer);
      this.instances.add(informer);
    }
    for (const fieldSelector of selectors.migrations) {
      const informer = this.informer('Migration', fieldSelector);
      this.standing.push(informer);
      this.migrations.add(informer);
    }
    this.migrations.on('add', (m) => this.follow(m));
    this.migrations.on('update', (m) => this.follow(m));
    this.migrations.on('delete', (m) => this.unfollow(m));
  }

  private informer<K extends KindName>(kind: K, fieldSelector: string): Informer<K> {
    const informer = new Informer(this.kube, kind, this.log, { fieldSelector });
    for (const event of ['add', 'update', 'delete'] as const) informer.on(event, () => this.count(kind, event));
    return informer;
  }

  /** Lists and watches; resolves once every standing watch has listed. */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all(this.standing.map((i) => i.start()));
    await Promise.all([...this.followed.values()].map((f) => f.informer.start()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const followed = [...this.followed.values()].map((f) => f.informer);
    this.followed.clear();
    await Promise.all([...this.standing, ...followed].map((i) => i.stop()));
  }

  /** How many watches this host holds now (its standing ones and the instances it follows). */
  get watchCount(): number {
    return this.standing.length + this.followed.size;
  }

  private follow(mig: Migration): void {
    if (!followsInstance(mig)) return this.unfollow(mig);
    const namespace = mig.metadata.namespace ?? 'default';
    const key = `${namespace}/${mig.spec.instance}`;
    const by = `${namespace}/${mig.metadata.name}`;
    const existing = this.followed.get(key);
    if (existing) {
      existing.by.add(by);
      return;
    }
    if (this.stopped) return;
    const informer = this.informer('Instance', `metadata.namespace=${namespace},metadata.name=${mig.spec.instance}`);
    this.followed.set(key, { informer, by: new Set([by]) });
    this.instances.add(informer);
    if (this.started) {
      informer.start().catch((err: unknown) => {
        this.log.warn({ instance: key, err: (err as Error).message }, 'cannot follow the instance of a migration');
      });
    }
  }

  private unfollow(mig: Migration): void {
    const namespace = mig.metadata.namespace ?? 'default';
    const key = `${namespace}/${mig.spec.instance}`;
    const entry = this.followed.get(key);
    if (!entry) return;
    entry.by.delete(`${namespace}/${mig.metadata.name}`);
    if (entry.by.size > 0) return;
    this.followed.delete(key);
    this.instances.remove(entry.informer);
    entry.informer.stop().catch(() => undefined);
  }
}
