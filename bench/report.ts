// The benchmark's table, from the result it writes as JSON (so an old result file can be
// printed again: node dist/bench/report.js bench/results/<file>.json).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Summary } from './measure.js';

export interface ReportInput {
  /** The headline figures (absent from results written before they were counted). */
  writesPerBoot?: number;
  conflictsPerBoot?: number;
  agentWatchEventsPerBoot?: number;
  cpuMsPerBootByComponent?: Record<string, number>;
  podsPerSecond?: number;
  ratioToPods?: number;
  /** Median, min and max over the interleaved rounds (results from before rounds have none). */
  spread?: Record<string, { median: number; min: number; max: number; rounds: number[] }>;
  pods?: {
    pods: number;
    ready: number;
    seconds: number;
    podsPerSecond: number;
    timeToReady: Summary;
    writesPerPod: number;
    kubenovaWritesPerPod: number;
    cpuMsPerPodByComponent: Record<string, number>;
    cpuMsPerPod: number;
  };
  openLoop?: { rate: number; p50: number; p99: number; booted: number; failed: number; stuck?: number }[];
  startedAt: string;
  commit?: string;
  machine: { cpus: number; loadAverageBefore: number[] };
  options: {
    hosts: number;
    instances: number;
    concurrency: number;
    sample: number;
    agentProcesses: number;
    agentKeepalive?: boolean;
  };
  registerSeconds: number;
  idle?: {
    seconds: number;
    writesPerSecond: number;
    cpuMsPerSecond: Record<string, number>;
    cpuMsPerHostSecond: number;
  };
  boot: {
    instances: number;
    active: number;
    seconds: number;
    bootsPerSecond: number;
    timeToActive: Summary;
    timeToActiveAfterFirstBurst?: Summary;
    serverTimeToActive: Summary;
    reschedules: number;
    apiRequestsPerBoot: number;
    apiWritesPerBoot: number;
    /** Every Lease write in the boot window per boot (heartbeats, leader election); absent before it was counted. */
    leaseWritesPerBoot?: number;
    watchEventsPerBoot: number;
    cpuSeconds: Record<string, number>;
    otherCpuSeconds?: number;
    cpuMsPerBoot?: number;
  };
  sample?: {
    resized: number;
    migrated: number;
    confirmed: number;
    resize: Summary;
    migration: Summary;
    confirm: Summary;
    /** Absent in results from before it was counted. */
    writesPerMove?: number;
    /** Of writesPerMove, the Lease writes (heartbeats, leader election); absent before it was counted. */
    leaseWritesPerMove?: number;
    /** Watch events delivered to the agents per move (source and destination); absent before it was counted. */
    agentWatchEventsPerMove?: number;
    agentWatchEvents?: Record<string, number>;
  };
  delete: { deleted: number; seconds: number; time: Summary };
  limit: {
    writesPerBoot: number;
    runs: {
      keepAlive: boolean;
      when?: string;
      writes: number;
      seconds: number;
      writesPerSecond: number;
      bootsPerSecond: number;
      cpuSeconds?: Record<string, number>;
      otherCpuSeconds?: number;
    }[];
    used?: number;
    achievedRatio: number;
    cpuMsPerBoot?: number;
    cpuNormalizedRatio?: number;
  };
  cpuSecondsTotal: Record<string, number>;
  peakRssMiB: Record<string, number>;
  invariants: { samples: number; violations: number };
  stuckTasks: number;
  crashed?: string[];
  targets: Record<string, boolean>;
}

const s2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
/** kube-apiserver CPU milliseconds per request of a limit run. */
const msPerWrite = (l: { writes: number; cpuSeconds?: Record<string, number> }) =>
  s2((1000 * (l.cpuSeconds?.['kube-apiserver'] ?? NaN)) / l.writes);
const pct = (s: Summary, keys: ('p50' | 'p95' | 'p99')[]) => keys.map((k) => s2(s[k])).join(' / ');

export function formatTable(r: ReportInput): string {
  const agentNames = Object.keys(r.cpuSecondsTotal).filter((k) => k.startsWith('agent'));
  const used = r.limit.runs[r.limit.used ?? 0];
  const fresh = r.limit.runs.find((l) => !l.keepAlive);
  const others = (cpu: number | undefined, seconds: number) =>
    cpu === undefined ? '' : `; other processes used ${s2(Math.max(0, cpu / seconds))} cores meanwhile`;
  const rows: [string, string][] = [
    [
      'hosts x instances (concurrency)',
      `${r.options.hosts} x ${r.options.instances} (${r.options.concurrency}), ${r.options.agentProcesses} agent process(es)${r.options.agentKeepalive === false ? ', agent without keep-alive' : ''}`,
    ],
    [
      'machine',
      `${r.machine.cpus} cores, load ${r.machine.loadAverageBefore.map((l) => l.toFixed(1)).join(' ')} before; commit ${r.commit ?? '?'}`,
    ],
    ['hosts registered in (s)', s2(r.registerSeconds)],
    ...(r.idle
      ? ([
          [
            `idle hosts, ${r.idle.seconds} s: writes/s`,
            `${s2(r.idle.writesPerSecond)}  (heartbeats, status reports, audits, checks)`,
          ],
          [
            '  CPU ms per second',
            `${Object.entries(r.idle.cpuMsPerSecond)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}; all ${r.idle.cpuMsPerHostSecond} per host`,
          ],
        ] as [string, string][])
      : []),
    [
      'active / requested',
      `${r.boot.active} / ${r.boot.instances} in ${s2(r.boot.seconds)} s${others(r.boot.otherCpuSeconds, r.boot.seconds)}`,
    ],
    ['boots per second', s2(r.boot.bootsPerSecond)],
    [
      'time-to-active p50 / p95 / p99 (s)',
      `${pct(r.boot.timeToActive, ['p50', 'p95', 'p99'])}  (bench: create sent -> watch shows active+Ready)`,
    ],
    ...(r.boot.timeToActiveAfterFirstBurst
      ? [
          [
            '  after the first burst of creates',
            `${pct(r.boot.timeToActiveAfterFirstBurst, ['p50', 'p95', 'p99'])}  (the first ${r.options.concurrency} creates left out)`,
          ] as [string, string],
        ]
      : []),
    [
      '  server clocks p50 / p95 / p99 (s)',
      `${pct(r.boot.serverTimeToActive, ['p50', 'p95', 'p99'])}  (creationTimestamp, 1 s resolution -> Ready lastTransitionTime)`,
    ],
    ...(r.openLoop ?? []).map((o): [string, string] => [
      `open loop ${o.rate} boots/s: p50 / p99 (s)`,
      `${s2(o.p50)} / ${s2(o.p99)}  (${o.booted} active, ${o.failed} in error, ${o.stuck ?? 0} stuck)`,
    ]),
    ['reschedules', String(r.boot.reschedules)],
    ...(r.sample ? sampleRows(r.sample) : []),
    [
      'delete p50 / p99 (s)',
      `${pct(r.delete.time, ['p50', 'p99'])}  (${r.delete.deleted} deleted in ${s2(r.delete.seconds)} s)`,
    ],
    [
      'operator CPU s (boot / whole run)',
      `${s2(r.boot.cpuSeconds.operator ?? NaN)} / ${s2(r.cpuSecondsTotal.operator ?? NaN)}`,
    ],
    ...agentNames.map((a): [string, string] => [
      `${a} CPU s (boot / whole run)`,
      `${s2(r.boot.cpuSeconds[a] ?? NaN)} / ${s2(r.cpuSecondsTotal[a] ?? NaN)}`,
    ]),
    [
      'kube-apiserver / etcd CPU s (boot)',
      `${s2(r.boot.cpuSeconds['kube-apiserver'] ?? NaN)} / ${s2(r.boot.cpuSeconds.etcd ?? NaN)}`,
    ],
    ['bench client CPU s (boot)', s2(r.boot.cpuSeconds.bench ?? NaN)],
    ['operator peak RSS (MiB)', s2(r.peakRssMiB.operator ?? NaN)],
    ...agentNames.map((a): [string, string] => [`${a} peak RSS (MiB)`, s2(r.peakRssMiB[a] ?? NaN)]),
    [
      'API requests per boot (all / writes)',
      `${s2(r.boot.apiRequestsPerBoot)} / ${s2(r.boot.apiWritesPerBoot)}  (kube-apiserver apiserver_request_total, bench's own excluded)`,
    ],
    ...(r.boot.leaseWritesPerBoot === undefined
      ? []
      : [
          [
            '  of the writes, Lease renewals',
            `${s2(r.boot.leaseWritesPerBoot)}  (per boot; they come with the hosts and the boot rate, not the boots)`,
          ] as [string, string],
        ]),
    ...(r.conflictsPerBoot !== undefined
      ? [
          [
            '409 conflicts per boot',
            `${s2(r.conflictsPerBoot)}  (kube-apiserver apiserver_request_total code 409)`,
          ] as [string, string],
        ]
      : []),
    ['watch events sent per boot', s2(r.boot.watchEventsPerBoot)],
    ...(r.agentWatchEventsPerBoot !== undefined
      ? [
          ['watch events delivered to agents per boot', `${s2(r.agentWatchEventsPerBoot)}  (all agent processes)`] as [
            string,
            string,
          ],
        ]
      : []),
    ...Object.entries(r.cpuMsPerBootByComponent ?? {}).map(([component, ms]): [string, string] => [
      `  CPU ms per boot: ${component}`,
      s2(ms),
    ]),
    ['kube-apiserver CPU ms per boot', s2((1000 * (r.boot.cpuSeconds['kube-apiserver'] ?? NaN)) / r.boot.active)],
    ['CPU ms per boot, all processes', `${s2(r.boot.cpuMsPerBoot ?? NaN)} (servers, operator, agents, bench)`],
    ...r.limit.runs
      .filter((l) => l.keepAlive)
      .map((l): [string, string] => [
        `write limit ${l.when ?? ''} (writes/s)${l === used ? ' *' : ''}`,
        `${s2(l.writesPerSecond)}  (${r.limit.writesPerBoot} writes per boot -> ${s2(l.bootsPerSecond)} boots/s; kube-apiserver ${msPerWrite(l)} ms CPU per write${others(l.otherCpuSeconds, l.seconds)})`,
      ]),
    ...(fresh
      ? [
          [
            '  new TLS connection per request',
            `${s2(fresh.writesPerSecond)} writes/s -> ${s2(fresh.bootsPerSecond)} boots/s; kube-apiserver ${msPerWrite(fresh)} ms CPU per write`,
          ] as [string, string],
        ]
      : []),
    ['achieved / limit (* = the limit used)', s2(r.limit.achievedRatio)],
    [
      '  CPU-normalized',
      `${s2(r.limit.cpuNormalizedRatio ?? NaN)}  (limit CPU ms per boot ${s2(r.limit.cpuMsPerBoot ?? NaN)} / kubenova CPU ms per boot)`,
    ],
    ...(r.pods ? podRows(r.pods, r.ratioToPods) : []),
    ...Object.entries(r.spread ?? {}).map(([k, v]): [string, string] => [
      `  ${k} over rounds`,
      `median ${s2(v.median)} (min ${s2(v.min)}, max ${s2(v.max)}; ${v.rounds.map(s2).join(', ')})`,
    ]),
    [
      'invariant check',
      `${r.invariants.violations === 0 ? 'OK' : 'VIOLATED'}: ${r.invariants.violations} violations in ${r.invariants.samples} samples`,
    ],
    ['stuck tasks', String(r.stuckTasks)],
    ...(r.crashed?.length ? [['CRASHED', r.crashed.join('; ')] as [string, string]] : []),
    [
      'targets',
      Object.entries(r.targets)
        .map(([k, v]) => `${v ? 'met' : 'MISSED'} ${k}`)
        .join('; '),
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

function sampleRows(sample: NonNullable<ReportInput['sample']>): [string, string][] {
  return [
    [
      'resize p50 / p99 (s)',
      `${pct(sample.resize, ['p50', 'p99'])}  (${sample.resized} resized: patch -> Migration finished)`,
    ],
    [
      'migration p50 / p99 (s)',
      `${pct(sample.migration, ['p50', 'p99'])}  (${sample.migrated} migrated: create -> Migration finished)`,
    ],
    [
      'confirm p50 / p99 (s)',
      `${pct(sample.confirm, ['p50', 'p99'])}  (${sample.confirmed} confirmed: decision -> confirmed, instance active)`,
    ],
    ...(sample.writesPerMove === undefined
      ? []
      : ([
          [
            'writes per resize or migration',
            `${s2(sample.writesPerMove)}  (the request, each phase, claims, Events, the transfer credential, the confirm` +
              (sample.leaseWritesPerMove === undefined
                ? ')'
                : `; of which ${s2(sample.leaseWritesPerMove)} Lease renewals, which come with the hosts, not the moves)`),
          ],
        ] as [string, string][])),
    ...(sample.agentWatchEventsPerMove === undefined
      ? []
      : ([
          [
            'agent watch events per move',
            `${s2(sample.agentWatchEventsPerMove)}  (${Object.entries(sample.agentWatchEvents ?? {})
              .map(([kind, n]) => `${kind} ${n}`)
              .join(', ')}; delivered to the source and destination agents)`,
          ],
        ] as [string, string][])),
  ];
}

function podRows(p: NonNullable<ReportInput['pods']>, ratio: number | undefined): [string, string][] {
  return [
    [
      'pods referee (round of the median boots)',
      `${p.ready} / ${p.pods} Ready in ${s2(p.seconds)} s: ${s2(p.podsPerSecond)} pods/s`,
    ],
    [
      '  time-to-ready p50 / p95 / p99 (s)',
      `${pct(p.timeToReady, ['p50', 'p95', 'p99'])}  (create sent -> watch shows Running+Ready)`,
    ],
    ['  writes per pod', `${s2(p.writesPerPod)}  (of which kubenova's idle heartbeats ${s2(p.kubenovaWritesPerPod)})`],
    [
      '  CPU ms per pod, all processes',
      `${s2(p.cpuMsPerPod)}  (${Object.entries(p.cpuMsPerPodByComponent)
        .map(([k, v]) => `${k} ${s2(v)}`)
        .join(', ')})`,
    ],
    ['boots/s over pods/s (ratioToPods, median of rounds)', s2(ratio ?? NaN)],
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const file of process.argv.slice(2))
    process.stdout.write(`${file}\n${formatTable(JSON.parse(readFileSync(file, 'utf8')) as ReportInput)}\n\n`);
}
