// Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it:
// the holder renews every retryPeriod; a candidate takes the lease once it has seen no
// renewal for leaseDuration (measured on its own clock, so clock skew between replicas
// does not matter); a leader that has not renewed within renewDeadline stops acting at
// once, before it even learns that someone else holds the lease. Leading starts in the
// background: the renewals go on while the new leader syncs its caches, however long that takes.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { isConflict, isNotFound } from '../kube/client.js';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** The Lease calls the elector makes (CoordinationV1Api's; an in-memory one in tests). */
export type LeaseApi = Pick<
  CoordinationV1Api,
  'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'
>;

export interface LeaderCallbacks {
  /**
   * Called once the lease is won, without holding up its renewals. A rejection gives up the
   * lease (onStoppedLeading), so a replica that cannot start does not lead without acting.
   */
  onStartedLeading(): void | Promise<void>;
  /** Called once when leadership is lost; the process is expected to exit. */
  onStoppedLeading(): void;
}

export class LeaderElector {
  private readonly api: LeaseApi;
  private leading = false;
  private lastRenew = 0;
  private observed?: { holder: string; renewTime: string; at: number };
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    leases: KubeConfig | LeaseApi,
    private readonly config: LeaderElectionConfig,
    private readonly callbacks: LeaderCallbacks,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    if (config.renewDeadlineMs >= config.leaseDurationMs)
      throw new Error('renew deadline must be shorter than the lease duration');
    if (config.retryPeriodMs >= config.renewDeadlineMs)
      throw new Error('retry period must be shorter than the renew deadline');
    this.api = 'makeApiClient' in leases ? leases.makeApiClient(CoordinationV1Api) : leases;
  }

  /** True only while this replica holds a lease it renewed within the renew deadline. */
  isLeader(): boolean {
    return this.leading && this.now() - this.lastRenew < this.config.renewDeadlineMs;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.tryAcquireOrRenew()
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'lease update failed'))
        .finally(() => {
          if (this.leading && this.now() - this.lastRenew >= this.config.renewDeadlineMs)
            return this.lose('renew deadline passed');
          if (!this.stopped) this.timer = setTimeout(tick, this.config.retryPeriodMs);
        });
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * A clean shutdown hands the lease over at once (client-go's ReleaseOnCancel): the holder is
   * cleared, so a follower takes it on its next try instead of waiting out a lease duration.
   * Call it once this replica has stopped acting.
   */
  async release(): Promise<void> {
    const wasLeading = this.leading;
    this.stop();
    this.leading = false;
    if (!wasLeading) return;
    const { namespace, name, identity } = this.config;
    try {
      const lease = await this.api.readNamespacedLease({ namespace, name });
      if (lease.spec?.holderIdentity !== identity) return;
      const body: V1Lease = {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.now()) },
      };
      await this.api.replaceNamespacedLease({ namespace, name, body });
      this.log.info({ lease: name }, 'lease released');
    } catch (err) {
      // Not released: the followers wait out the lease duration, as after a crash.
      this.log.warn({ lease: name, err: (err as Error).message }, 'could not release the lease');
    }
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.stop();
    this.log.error({ lease: this.config.name, why }, 'lost leadership; stopping');
    this.callbacks.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { namespace, name, identity } = this.config;
    const now = this.now();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.api.createNamespacedLease({ namespace, body: this.record(undefined, now) });
      } catch (createErr) {
        if (isConflict(createErr)) return;
        throw createErr;
      }
      return this.acquired(now);
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renewTime = String(lease.spec?.renewTime ?? '');
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime, at: now };
    }
    if (holder && holder !== identity) {
      if (this.leading) return this.lose(`lease taken by ${holder}`);
      if (now - this.observed.at < this.config.leaseDurationMs) return;
      this.log.info({ lease: name, previous: holder }, 'lease expired; taking over');
    }
    try {
      await this.api.replaceNamespacedLease({ namespace, name, body: this.record(lease, now) });
    } catch (err) {
      if (isConflict(err)) {
        if (this.leading) return this.lose('lease changed under us');
        return;
      }
      throw err;
    }
    if (!this.leading) return this.acquired(now);
    this.lastRenew = now;
  }

  private record(existing: V1Lease | undefined, now: number): V1Lease {
    const takingOver = existing?.spec?.holderIdentity !== this.config.identity;
    const time = new V1MicroTime(now);
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.config.name,
        namespace: this.config.namespace,
        resourceVersion: existing?.metadata?.resourceVersion,
      },
      spec: {
        holderIdentity: this.config.identity,
        leaseDurationSeconds: Math.ceil(this.config.leaseDurationMs / 1000),
        acquireTime: takingOver ? time : existing?.spec?.acquireTime,
        renewTime: time,
        leaseTransitions: (existing?.spec?.leaseTransitions ?? 0) + (existing && takingOver ? 1 : 0),
      },
    };
  }

  private acquired(now: number): void {
    this.leading = true;
    this.lastRenew = now;
    this.log.info({ lease: this.config.name, identity: this.config.identity }, 'became leader');
    // Not awaited: the renew loop waits for this attempt to end before the next one, so awaiting
    // a start that syncs caches would stop the renewals until the lease was lost.
    void Promise.resolve()
      .then(() => this.callbacks.onStartedLeading())
      .catch((err: unknown) => this.lose(`starting to lead failed: ${(err as Error).message}`));
  }
}
