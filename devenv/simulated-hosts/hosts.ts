// Which hosts one simulated-hosts process (main.ts) poses as, and when each starts. With
// --hosts=N it serves N hosts named <prefix>-000 ... <prefix>-<N-1> (zero-padded to at least
// three digits, more when the indices need them), each a full HostAgent: its own ComputeNode,
// lock, tracker, fake-driver directory and transfer server. --host-offset lets several
// processes split one numbered range (sim-000..049 in one, sim-050..099 in another). A real
// node agent (node-agent/main.ts) serves exactly one host and knows nothing of this.
//
// Every HostAgent arms its heartbeat and audit timers when its start() completes, so host i
// is started i/N of the way through one heartbeat interval: the N hosts' heartbeats are then
// spread evenly over the interval instead of all writing their ComputeNode at the same instant
// (and registration itself is spread the same way).

export interface HostPlan {
  host: string;
  /** Delay before this host registers and arms its timers. */
  startDelayMs: number;
}

/** Digits used for simulated host indices: at least three, so names sort in index order. */
export function indexWidth(lastIndex: number): number {
  return Math.max(3, String(Math.max(0, lastIndex)).length);
}

export function simulatedHostName(prefix: string, index: number, width: number): string {
  return `${prefix}-${String(index).padStart(width, '0')}`;
}

/** Host names for `count` simulated hosts starting at index `offset`. */
export function simulatedHostNames(prefix: string, count: number, offset = 0): string[] {
  const width = indexWidth(offset + count - 1);
  return Array.from({ length: count }, (_, i) => simulatedHostName(prefix, offset + i, width));
}

/**
 * Start delays that spread `count` hosts evenly over `spreadMs`: host i waits i*spread/count,
 * so consecutive hosts are spread/count apart and all have started within one spread.
 */
export function staggerDelays(count: number, spreadMs: number): number[] {
  if (count <= 1 || spreadMs <= 0) return Array.from({ length: Math.max(0, count) }, () => 0);
  return Array.from({ length: count }, (_, i) => Math.floor((i * spreadMs) / count));
}

/** The `count` hosts this process serves, from index `offset`, their starts spread over `spreadMs`. */
export function planHosts(prefix: string, count: number, offset: number, spreadMs: number): HostPlan[] {
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`host count must be a whole number >= 1, got ${count}`);
  if (!Number.isInteger(offset) || offset < 0)
    throw new RangeError(`host offset must be a whole number >= 0, got ${offset}`);
  const names = simulatedHostNames(prefix, count, offset);
  const delays = staggerDelays(count, spreadMs);
  return names.map((host, i) => ({ host, startDelayMs: delays[i] ?? 0 }));
}
