// Which hosts one node-agent process serves, and when each starts. A real agent serves one
// host, its --node-name, starting at once. With --simulate-hosts=N the process poses as N
// hosts named <node-name>-000 ... <node-name>-<N-1> (zero-padded to at least three digits,
// more when the indices need them), each a full HostAgent: its own ComputeNode, lock,
// tracker, fake-driver directory and transfer server. --simulate-host-offset lets several
// processes split one numbered range (sim-000..049 in one, sim-050..099 in another).
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

/**
 * The hosts this process serves. `simulateHosts` 0 means a real agent: one host named exactly
 * `nodeName`, started at once.
 */
export function planHosts(nodeName: string, simulateHosts: number, offset: number, spreadMs: number): HostPlan[] {
  if (!Number.isInteger(simulateHosts) || simulateHosts < 0) throw new RangeError(`simulated host count must be a whole number >= 0, got ${simulateHosts}`);
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`simulated host offset must be a whole number >= 0, got ${offset}`);
  if (simulateHosts === 0) return [{ host: nodeName, startDelayMs: 0 }];
  const names = simulatedHostNames(nodeName, simulateHosts, offset);
  const delays = staggerDelays(simulateHosts, spreadMs);
  return names.map((host, i) => ({ host, startDelayMs: delays[i] ?? 0 }));
}
