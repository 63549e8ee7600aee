// The happy path's Events, aggregated: a boot that went as planned (placed at the first try,
// spawned, active) is not worth an API write of its own. The host reports such boots together,
// at most once a period, in one Normal Event on its ComputeNode; anything unusual (a
// reschedule, a failure) still gets its own Event on the instance.
import { EventReason } from '../../common/api/reasons.js';
import type { EventRecorder } from '../../common/kube/events.js';

/** Instances named in full in one digest; the rest are counted. */
const NAMED = 10;

export class SpawnDigest {
  private pending: string[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly events: EventRecorder,
    private readonly host: string,
    private readonly periodMs: number,
  ) {}

  /** A boot of `instance` (namespace/name) went as planned on this host. */
  add(instance: string): void {
    this.pending.push(instance);
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.periodMs);
    this.timer.unref();
  }

  /** Records what has gathered (also on shutdown, so nothing goes unsaid). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const booted = this.pending;
    this.pending = [];
    const named = booted.slice(0, NAMED).join(', ');
    const more = booted.length > NAMED ? ` and ${booted.length - NAMED} more` : '';
    const message = `${booted.length} instance(s) spawned and running on ${this.host}: ${named}${more}`;
    this.events.record(
      { kind: 'ComputeNode', metadata: { name: this.host, namespace: 'default' } },
      'Normal',
      EventReason.Spawned,
      message,
    );
  }
}
