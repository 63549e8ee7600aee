// What the benchmark measures outside kubenova itself: latency percentiles, process CPU and
// peak memory from /proc, and the API server's own request counters.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** The middle value (of an even count, the upper of the two middle ones): a median of repeated runs. */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

let clockTicks: number | undefined;
function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process, in seconds (undefined once it has exited). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / clkTck();
  } catch {
    return undefined;
  }
}

/** Peak resident set (VmHWM) in MiB, undefined once the process has exited. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Pids of processes whose command line contains every one of `needles`. */
export function findPids(...needles: string[]): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (needles.every((n) => cmdline.includes(n))) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Busy CPU seconds of the whole machine since boot (all cores; idle and iowait excluded). */
export function machineBusySeconds(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) / clkTck();
  } catch {
    return NaN;
  }
}

/** 1-minute load average: the machine is shared, so every result records how busy it was. */
export function loadAverage(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

/** apiserver_request_total summed by "VERB resource[/subresource]" (all codes, groups, scopes). */
export function parseRequestTotals(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = Object.fromEntries(
      [...line.slice(line.indexOf('{') + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    const value = Number(line.slice(close + 1).trim());
    const key = `${labels.verb ?? '?'} ${labels.resource ?? ''}${labels.subresource ? `/${labels.subresource}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}

/** apiserver_watch_events_total summed by resource: events the API server sent to watchers. */
export function parseWatchEvents(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_watch_events_total{')) continue;
    const close = line.lastIndexOf('}');
    const resource =
      /resource="([^"]*)"/.exec(line.slice(0, close))?.[1] ?? /kind="([^"]*)"/.exec(line.slice(0, close))?.[1] ?? '?';
    out.set(resource, (out.get(resource) ?? 0) + Number(line.slice(close + 1).trim()));
  }
  return out;
}

export function diffCounts(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

export function sumCounts(counts: Map<string, number>, filter: (key: string) => boolean = () => true): number {
  let n = 0;
  for (const [k, v] of counts) if (filter(k)) n += v;
  return n;
}

export const MUTATING = /^(POST|PUT|PATCH|DELETE|DELETECOLLECTION|APPLY|CREATE|UPDATE) /;

/**
 * Lease writes: heartbeats of every host and the operator's leader election. They come at a rate
 * set by the number of hosts, not by the boots or moves in the window, so figures show them apart.
 */
export const isLeaseWrite = (k: string): boolean => MUTATING.test(k) && k.endsWith(' leases');

/** apiserver_request_total answered 409 Conflict, summed by "VERB resource[/subresource]". */
export function parseConflicts(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_request_total{') || !line.includes('code="409"')) continue;
    const close = line.lastIndexOf('}');
    const head = line.slice(0, close);
    const verb = /verb="([^"]*)"/.exec(head)?.[1] ?? '?';
    const resource = /[{,]resource="([^"]*)"/.exec(head)?.[1] ?? '';
    const sub = /subresource="([^"]*)"/.exec(head)?.[1];
    const key = `${verb} ${resource}${sub ? `/${sub}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(close + 1).trim()));
  }
  return out;
}

/** A counter of a component's /metrics summed over its label sets, by one label's value. */
export function parseCounterBy(metrics: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const value = new RegExp(`[{,]${label}="([^"]*)"`).exec(line.slice(0, close))?.[1] ?? '?';
    out.set(value, (out.get(value) ?? 0) + Number(line.slice(close + 1).trim()));
  }
  return out;
}

/** Adds `b` into a copy of `a`. */
export function addCounts(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map(a);
  for (const [k, v] of b) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}
