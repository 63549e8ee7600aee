// Interleaved rounds: one run (one control plane) alternates kubenova's boots and the pods
// referee's pods, so both see the same machine at nearly the same time, and each headline
// figure is reported as the median over the rounds with its spread (min, max). A shared
// machine drifts within minutes; one round's figure is one sample of it.

/** The headline figures of one round, named as the result's top-level fields. */
export interface RoundFigures {
  writesPerBoot: number;
  conflictsPerBoot: number;
  agentWatchEventsPerBoot: number;
  bootsPerSecond: number;
  p99TimeToActiveSeconds: number;
  podsPerSecond?: number;
  p99TimeToReadySeconds?: number;
  writesPerPod?: number;
  /** This round's bootsPerSecond / podsPerSecond: the two ran minutes apart on the same server. */
  ratioToPods?: number;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  rounds: number[];
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN, rounds: [...values] };
}

/** Median and spread of every figure that each round has. */
export function summarizeRounds(rounds: readonly RoundFigures[]): Record<string, Spread> {
  const out: Record<string, Spread> = {};
  const keys = new Set(rounds.flatMap((r) => Object.keys(r))) as Set<keyof RoundFigures>;
  for (const key of keys) {
    const values = rounds.map((r) => r[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (values.length === rounds.length && values.length > 0) out[key] = spread(values);
  }
  return out;
}

/** The index of the round whose `key` is the median (the lower middle one for an even count). */
export function medianRound(rounds: readonly RoundFigures[], key: keyof RoundFigures): number {
  const order = rounds.map((r, i) => [r[key] ?? NaN, i] as const).sort((a, b) => a[0] - b[0]);
  return order[Math.floor((order.length - 1) / 2)]?.[1] ?? 0;
}
