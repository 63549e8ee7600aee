// `npm run bench -- --repeat N`: the whole benchmark N times, one run after another (each with
// its own control plane, limit and result file), then the median and the spread (min, max) of
// every headline figure over the runs, in bench/results/<stamp>-repeat<N>-<hosts>x<instances>.json.
// A shared machine drifts within minutes; one run's figure is one sample of it.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The top-level numeric figures summarised over the runs. */
export const HEADLINE = [
  'writesPerBoot',
  'conflictsPerBoot',
  'agentWatchEventsPerBoot',
  'bootsPerSecond',
  'p99TimeToActiveSeconds',
  'invariantViolations',
  'stuck',
  'operatorPeakRssMiB',
  'openLoopMaxRateP99Under5s',
] as const;

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN, runs: [...values] };
}

/** Median and spread of each headline figure, and of each open-loop rate's p50 and p99. */
export function summarizeRuns(results: readonly Record<string, unknown>[]): Record<string, Spread> {
  const out: Record<string, Spread> = {};
  for (const key of HEADLINE) {
    const values = results.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
    if (values.length === results.length && values.length > 0) out[key] = spread(values);
  }
  const rates = new Set(
    results.flatMap((r) => ((r.openLoop as { rate: number }[] | undefined) ?? []).map((o) => o.rate)),
  );
  for (const rate of rates) {
    for (const q of ['p50', 'p99'] as const) {
      const values = results
        .map((r) =>
          (r.openLoop as { rate: number; p50: number; p99: number }[] | undefined)?.find((o) => o.rate === rate),
        )
        .map((o) => o?.[q])
        .filter((v): v is number => typeof v === 'number');
      if (values.length > 0) out[`openLoop ${rate}/s ${q}`] = spread(values);
    }
  }
  return out;
}

/**
 * Runs `script` (the benchmark) `times` times with `args`, each writing its result into
 * `resultsDir`; writes and returns the summary. A failed run ends the series.
 */
export function runRepeated(script: string, args: string[], times: number, resultsDir: string): string {
  const files: string[] = [];
  for (let i = 0; i < times; i++) {
    process.stdout.write(`[bench] run ${i + 1} of ${times}\n`);
    const before = new Set(readdirSync(resultsDir));
    const run = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
    if (run.status !== 0) throw new Error(`run ${i + 1} of ${times} failed (exit ${run.status ?? run.signal})`);
    const made = readdirSync(resultsDir).filter(
      (f) => !before.has(f) && f.endsWith('.json') && !f.endsWith('.tmp.json'),
    );
    if (made.length !== 1) throw new Error(`run ${i + 1} of ${times} left ${made.length} result files`);
    files.push(made[0]!);
  }
  const results = files.map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as Record<string, unknown>);
  const summary = summarizeRuns(results);
  const first = results[0] as { options?: { hosts?: number; instances?: number }; startedAt?: string };
  const stamp = (first.startedAt ?? new Date().toISOString()).replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const file = join(resultsDir, `${stamp}-repeat${times}-${first.options?.hosts}x${first.options?.instances}.json`);
  writeFileSync(file, `${JSON.stringify({ kind: 'kubenova-bench-repeat/v1', runs: files, summary }, null, 2)}\n`);
  for (const [k, v] of Object.entries(summary)) {
    process.stdout.write(`${k.padEnd(36)} median ${fmt(v.median)}  (min ${fmt(v.min)}, max ${fmt(v.max)})\n`);
  }
  process.stdout.write(`\nsummary: ${file}\n`);
  return file;
}

const fmt = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : '-');
