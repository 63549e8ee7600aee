// Nova's ResourceTracker for one host: the agent is the only writer of its ComputeNode's
// capacity, claims and heartbeat. Every change runs under the host's lock and is written
// to the API server (guarded by resourceVersion) before the caller acts on it, so a claim
// exists in the API server before the driver creates anything.
import type { Claim, ClaimKind, ComputeNode, ComputeNodeStatus, ResourceAmounts } from '../../common/api/types.js';
import { API_VERSION } from '../../common/api/types.js';
import { setCondition } from '../../common/api/conditions.js';
import { ConditionReason } from '../../common/api/reasons.js';
import type { KubeClient } from '../../common/kube/api.js';
import { isConflict, isNotFound } from '../../common/kube/client.js';
import { Mutex } from '../../common/runtime/mutex.js';
import { UidQueue } from '../../common/runtime/uid-queue.js';
import type { Logger } from '../../common/log.js';
import { ClaimLedger } from './claim-ledger.js';
import { ClaimFailed, allocatableOf, shortResource, type ShortResource } from './claims.js';

export interface TrackerOptions {
  host: string;
  driverKind: string;
  labels: Record<string, string>;
  migrationEndpoint?: string;
  now?: () => Date;
  /** Told of every claim this tracker recorded or refused (not of a repeated, no-op claim). */
  onClaim?: (kind: ClaimKind, failure?: ClaimFailed) => void;
  /** Told of every ComputeNode status written: allocated and allocatable as the API has them. */
  onStatus?: (status: ComputeNodeStatus) => void;
  /**
   * A heartbeat is skipped when a claim's write (which carries a heartbeat too) is younger than
   * this: a busy host spends no extra write on being alive. 0 writes every heartbeat.
   */
  heartbeatIntervalMs?: number;
  /**
   * The host's node Lease (node-lease.ts). Renewing it is the heartbeat while it can be renewed;
   * the ComputeNode status is then written on change and every statusReportIntervalMs.
   */
  lease?: { renew(): Promise<void> };
  /** With a lease: the longest the ComputeNode status (capacity, claims, heartbeatTime) goes unwritten. */
  statusReportIntervalMs?: number;
}

/** The resources a ClaimFailed names as short, by the names the claim-failure metric uses. */
export function shortResources(err: ClaimFailed): ShortResource[] {
  return err.shortfalls.map(shortResource);
}

const MAX_WRITE_ATTEMPTS = 8;

export class ResourceTracker {
  readonly lock = new Mutex();
  readonly #instanceWork = new UidQueue();
  private ledger = new ClaimLedger([]);
  private node?: ComputeNode;
  /** When this tracker last wrote its ComputeNode's status (each write carries a heartbeat). */
  private lastWriteAt?: number;
  /** When the node Lease was last renewed. */
  private lastRenewedAt?: number;
  private leaseFailing = false;
  private capacity: ResourceAmounts = { vcpus: 0, memoryMiB: 0, diskGiB: 0 };
  private readonly now: () => Date;

  constructor(
    private readonly kube: KubeClient,
    private readonly opts: TrackerOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? (() => new Date());
  }

  get host(): string {
    return this.opts.host;
  }

  /** The transfer endpoint is known only once its server has bound a port. */
  setMigrationEndpoint(endpoint: string): void {
    this.opts.migrationEndpoint = endpoint;
  }

  /**
   * Creates the ComputeNode if missing and adopts the claims it already records, so an
   * agent restart keeps every claim its instances hold.
   */
  async register(capacity: ResourceAmounts): Promise<ComputeNode> {
    return this.lock.run(async () => {
      this.capacity = capacity;
      let node = await this.kube.computeNodes.get({ name: this.host });
      if (!node) {
        const labels = { ...this.opts.labels };
        try {
          node = await this.kube.computeNodes.create({
            apiVersion: API_VERSION,
            kind: 'ComputeNode',
            metadata: { name: this.host, labels },
            spec: {},
          });
        } catch (err) {
          if (!isConflict(err)) throw err;
          node = await this.kube.computeNodes.get({ name: this.host });
        }
      } else if (this.labelsDiffer(node)) {
        node = await this.kube.computeNodes.patch({ name: this.host }, { metadata: { labels: this.opts.labels } });
      }
      if (!node) throw new Error(`ComputeNode ${this.host} vanished during registration`);
      this.node = node;
      this.ledger = new ClaimLedger(node.status?.claims ?? []);
      await this.writeLocked();
      return this.node;
    });
  }

  private labelsDiffer(node: ComputeNode): boolean {
    const have = node.metadata.labels ?? {};
    return Object.entries(this.opts.labels).some(([k, v]) => have[k] !== v);
  }

  /**
   * One heartbeat. A status write younger than half an interval (a claim's) was one already.
   * Otherwise the node Lease is renewed, and the ComputeNode status (which recomputes
   * allocatable from the current spec, and puts back whatever someone else changed in it) is
   * written only when its report is due: Nova's periodic report. Without a renewed Lease the
   * status write is the heartbeat, as for an agent without a Lease; after two intervals without
   * any heartbeat the status is written at once, since the operator may have marked the node
   * Unknown meanwhile and a status write sets Ready again.
   */
  async heartbeat(): Promise<void> {
    const interval = this.opts.heartbeatIntervalMs ?? 0;
    if (this.sinceLastWrite() < interval / 2) return;
    // Outside the lock: a slow renewal holds up no claim.
    const carried = await this.renewLease(interval);
    await this.lock.run(async () => {
      const due = carried ? (this.opts.statusReportIntervalMs ?? 0) : interval / 2;
      if (this.sinceLastWrite() >= due) await this.writeLocked();
    });
  }

  /** Writes the status now (a new transfer endpoint to publish). */
  publish(): Promise<void> {
    return this.lock.run(() => this.writeLocked());
  }

  private sinceLastWrite(): number {
    return this.lastWriteAt === undefined ? Infinity : this.now().getTime() - this.lastWriteAt;
  }

  /** Whether the Lease took this heartbeat: renewed, and no gap since the last heartbeat of either kind. */
  private async renewLease(interval: number): Promise<boolean> {
    const lease = this.opts.lease;
    if (!lease) return false;
    const now = this.now().getTime();
    try {
      await lease.renew();
    } catch (err) {
      if (!this.leaseFailing)
        this.log.warn(
          { err: (err as Error).message },
          'cannot renew the node Lease; the ComputeNode status carries the heartbeat until it can',
        );
      this.leaseFailing = true;
      return false;
    }
    if (this.leaseFailing) this.log.info('node Lease renewed again');
    this.leaseFailing = false;
    const previous = Math.max(this.lastRenewedAt ?? -Infinity, this.lastWriteAt ?? -Infinity);
    this.lastRenewedAt = now;
    return now - previous <= 2 * interval;
  }

  /**
   * Tests the claim against allocatable minus allocated and records it; throws ClaimFailed
   * naming every short resource. Claiming again for the same consumer is a no-op.
   */
  claim(claim: Claim, guard?: (existing: Claim[]) => string | undefined): Promise<void> {
    return this.lock.run(async () => {
      for (let attempt = 1; ; attempt++) {
        const before = this.ledger.claims;
        const held = before.find((c) => c.consumer === claim.consumer && c.kind === claim.kind);
        const same =
          held && held.vcpus === claim.vcpus && held.memoryMiB === claim.memoryMiB && held.diskGiB === claim.diskGiB;
        // The ledger only ever holds what was written: a repeated claim has nothing to write.
        if (same) return;
        // A placement rule checked under the host's lock against the claims really here
        // (Nova's late server-group check): two racing members cannot both pass it.
        const refusal = held ? undefined : guard?.(before);
        if (refusal) {
          const failed = new ClaimFailed(this.host, [], [refusal]);
          this.opts.onClaim?.(claim.kind, failed);
          throw failed;
        }
        try {
          this.ledger.claim(this.host, this.allocatable(), {
            ...claim,
            createdAt: claim.createdAt ?? this.now().toISOString(),
          });
        } catch (err) {
          if (err instanceof ClaimFailed) this.opts.onClaim?.(claim.kind, err);
          throw err;
        }
        try {
          await this.persist();
          this.opts.onClaim?.(claim.kind);
          return;
        } catch (err) {
          this.ledger = new ClaimLedger(before);
          if (isNotFound(err)) await this.recreate();
          else if (!isConflict(err) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
          else await this.refresh();
        }
      }
    });
  }

  /** Frees a claim; safe to repeat. */
  release(consumer: string, kind?: ClaimKind): Promise<boolean> {
    return this.lock.run(async () => {
      if (!this.ledger.release(consumer, kind)) return false;
      await this.writeLocked();
      return true;
    });
  }

  /**
   * Frees every claim matching the predicate in one write (an instance's own claim and
   * those of its migrations, on delete). Safe to repeat.
   */
  releaseWhere(match: (c: Claim) => boolean): Promise<Claim[]> {
    return this.lock.run(async () => {
      const freed = this.ledger.claims.filter(match);
      if (freed.length === 0) return freed;
      this.ledger = new ClaimLedger(this.ledger.claims.filter((c) => !match(c)));
      await this.writeLocked();
      return freed;
    });
  }

  /**
   * Turns a migration's claim into the instance's own claim in one write (confirm on the
   * destination): the amounts stay held throughout, so nothing can slip in between.
   */
  convertClaim(from: { consumer: string; kind: ClaimKind }, to: Claim): Promise<void> {
    return this.lock.run(async () => {
      const current = this.ledger.claims;
      const source = current.find((c) => c.consumer === from.consumer && c.kind === from.kind);
      if (!source) return;
      const next = current.filter((c) => c !== source && !(c.consumer === to.consumer && c.kind === to.kind));
      this.ledger = new ClaimLedger([...next, { ...to, createdAt: source.createdAt }]);
      await this.writeLocked();
    });
  }

  /** Replaces the claims wholesale (the audit's correction), under the lock the caller holds. */
  async replaceClaimsLocked(claims: Claim[]): Promise<void> {
    this.ledger = new ClaimLedger(claims);
    await this.writeLocked();
  }

  claims(): Claim[] {
    return this.ledger.claims;
  }

  /**
   * Runs `fn` alone among the changes to one instance's guest and claims on this host (keyed by
   * the instance's uid). A deletion's destroy-and-free and a migration's finish are two workers'
   * steps: without this, a finish that began before the deletion could make its guest after the
   * deletion freed the claims, leaving a guest on disk that nothing holds.
   */
  exclusively<T>(instanceUid: string, fn: () => Promise<T>): Promise<T> {
    return this.#instanceWork.run(instanceUid, fn);
  }

  /** Whether this host holds any matching claim (cheap: no copy). */
  holds(match: (c: Readonly<Claim>) => boolean): boolean {
    return this.ledger.some(match);
  }

  allocatable(): ResourceAmounts {
    const spec = this.node?.spec ?? {};
    return allocatableOf(
      this.capacity,
      {
        vcpus: spec.reserved?.vcpus ?? 0,
        memoryMiB: spec.reserved?.memoryMiB ?? 512,
        diskGiB: spec.reserved?.diskGiB ?? 0,
      },
      {
        cpu: spec.allocationRatio?.cpu ?? 4,
        memory: spec.allocationRatio?.memory ?? 1,
        disk: spec.allocationRatio?.disk ?? 1,
      },
    );
  }

  private async refresh(): Promise<void> {
    const node = await this.kube.computeNodes.get({ name: this.host });
    if (!node) throw new Error(`ComputeNode ${this.host} was deleted; the agent re-registers it on restart`);
    this.node = node;
  }

  private async writeLocked(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.persist();
        return;
      } catch (err) {
        if (isNotFound(err)) {
          await this.recreate();
          continue;
        }
        if (!isConflict(err) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
        await this.refresh();
      }
    }
  }

  /** Someone deleted our ComputeNode: it comes back with every claim this host holds. */
  private async recreate(): Promise<void> {
    this.log.warn('ComputeNode deleted; re-creating it');
    this.node = await this.kube.computeNodes.create({
      apiVersion: API_VERSION,
      kind: 'ComputeNode',
      metadata: { name: this.host, labels: { ...this.opts.labels } },
      spec: {},
    });
  }

  private async persist(): Promise<void> {
    if (!this.node) throw new Error('tracker used before register()');
    const now = this.now();
    const allocatable = this.allocatable();
    const allocated = this.ledger.allocated();
    const status: ComputeNodeStatus = {
      capacity: this.capacity,
      allocatable,
      allocated,
      claims: this.ledger.claims,
      usage: {
        vcpus: `${allocated.vcpus}/${allocatable.vcpus}`,
        memory: `${allocated.memoryMiB}/${allocatable.memoryMiB}Mi`,
        disk: `${allocated.diskGiB}/${allocatable.diskGiB}Gi`,
      },
      heartbeatTime: now.toISOString(),
      driver: this.opts.driverKind,
      conditions: setCondition(
        this.node.status?.conditions,
        {
          type: 'Ready',
          status: 'True',
          reason: ConditionReason.AgentReady,
          message: `node agent on ${this.host} is posting heartbeats`,
        },
        now,
      ),
    };
    if (this.opts.migrationEndpoint) status.migrationEndpoint = this.opts.migrationEndpoint;
    this.node = await this.kube.computeNodes.patchStatus(this.node, status);
    this.lastWriteAt = now.getTime();
    this.opts.onStatus?.(this.node.status ?? status);
  }
}
