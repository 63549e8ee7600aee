// Everything one host needs: its ComputeNode (tracker), its driver and its share of the
// work. A process runs one of these (a real agent) or many (simulated hosts); both run
// the same code.
import type { ResourceAmounts } from '../common/api/types.js';
import type { Kube } from '../common/kube/client.js';
import type { Logger } from '../common/log.js';
import type { VirtDriver } from './driver/driver.js';
import { ResourceTracker } from './tracker/resource-tracker.js';

export interface HostAgentOptions {
  host: string;
  labels: Record<string, string>;
  heartbeatIntervalMs: number;
}

export class HostAgent {
  readonly tracker: ResourceTracker;
  private heartbeatTimer?: NodeJS.Timeout;
  private stopped = false;
  private registered = false;

  constructor(
    readonly kube: Kube,
    readonly driver: VirtDriver,
    readonly opts: HostAgentOptions,
    readonly log: Logger,
  ) {
    this.tracker = new ResourceTracker(kube, { host: opts.host, driverKind: driver.kind, labels: opts.labels }, log);
  }

  get host(): string {
    return this.opts.host;
  }

  get ready(): boolean {
    return this.registered;
  }

  async start(): Promise<void> {
    const capacity: ResourceAmounts = await this.driver.capacity();
    const node = await this.tracker.register(capacity);
    this.registered = true;
    this.log.info({ capacity, allocatable: node.status?.allocatable, claims: node.status?.claims?.length ?? 0 }, 'registered ComputeNode');
    this.scheduleHeartbeat();
  }

  private scheduleHeartbeat(): void {
    if (this.stopped) return;
    this.heartbeatTimer = setTimeout(() => {
      this.tracker
        .heartbeat()
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'heartbeat failed'))
        .finally(() => this.scheduleHeartbeat());
    }, this.opts.heartbeatIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.heartbeatTimer);
  }
}
