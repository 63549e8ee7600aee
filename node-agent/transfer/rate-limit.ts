// A token bucket per key (a peer's host name, an address) that only failures drain: a key may
// fail `burst` times at once and `perSecond` times a second after that; beyond it the key is
// blocked until its bucket refills. Bounded: past `maxKeys` the key idle longest is forgotten.
export class FailureLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly maxKeys = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  private refill(key: string): { tokens: number; at: number } {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    return b;
  }

  /** Whether `key` has used up its failures for now. */
  blocked(key: string): boolean {
    if (!this.buckets.has(key)) return false;
    return this.refill(key).tokens < 1;
  }

  /** Counts one failure of `key`. */
  failed(key: string): void {
    const b = this.refill(key);
    b.tokens = Math.max(0, b.tokens - 1);
    // Re-inserting keeps the map in least-recently-failed order.
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
  }
}
