// Where a component's CPU went: reads a V8 .cpuprofile (written by `npm run bench -- --cpu-prof`)
// and prints self time by package/file and by function, and inclusive time of kubenova's own
// functions. Usage: node dist/bench/profile.js <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** node_modules/<pkg>, node:internal, or a path relative to the repository's dist/. */
export function bucketOf(url: string): string {
  if (!url) return '(native/gc/idle)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? url.slice(dist + 6) : url;
}

export function analyze(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Time per node from samples and their deltas (more exact than hitCount x interval).
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++)
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
    .reduce((a, [, v]) => a + v, 0);
  const busy = total - idle;

  const selfByBucket = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclusiveByFn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') continue;
    const bucket = bucketOf(n.callFrame.url);
    selfByBucket.set(bucket, (selfByBucket.get(bucket) ?? 0) + us);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${bucket}:${n.callFrame.lineNumber + 1}`;
    selfByFn.set(fn, (selfByFn.get(fn) ?? 0) + us);
    // Inclusive time of kubenova's own frames (each counted once per stack).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const b = bucketOf(f.url);
      if (!/^(common|operator|node-agent)\//.test(b)) continue;
      const key = `${f.functionName || '(anonymous)'} ${b}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusiveByFn.set(key, (inclusiveByFn.get(key) ?? 0) + us);
    }
  }
  const fmt = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `  ${(us / 1e6).toFixed(2).padStart(7)} s ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  return [
    `wall ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(2)} s (idle ${(idle / 1e6).toFixed(1)} s)`,
    'self time by package / file:',
    fmt(selfByBucket),
    'self time by function:',
    fmt(selfByFn),
    "inclusive time of kubenova's own functions:",
    fmt(inclusiveByFn),
  ].join('\n');
}

if (process.argv[2]) {
  process.stdout.write(
    `${analyze(JSON.parse(readFileSync(process.argv[2], 'utf8')) as CpuProfile, Number(process.argv[3] ?? 25))}\n`,
  );
}
