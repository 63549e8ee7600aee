// The benchmark's command line (see docs/performance.md, "Running it").
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../devenv/components.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    hosts: { type: 'string', default: '100' },
    instances: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '50' },
    sample: { type: 'string', default: '0.05' },
    'agent-processes': { type: 'string', default: '10' },
    'heartbeat-interval': { type: 'string', default: '10' },
    'status-report-interval': { type: 'string', default: '60' },
    'idle-seconds': { type: 'string', default: '30' },
    'limit-boots': { type: 'string' },
    'boot-flavor': { type: 'string', default: 'm1.tiny' },
    'resize-flavor': { type: 'string', default: 'bench.resize' },
    'invariant-interval': { type: 'string', default: '1000' },
    timeout: { type: 'string', default: '180' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-keepalive-limit': { type: 'boolean', default: true },
    'agent-keepalive': { type: 'boolean', default: true },
    keep: { type: 'boolean', default: false },
    'quiet-load': { type: 'string' },
    'quiet-wait': { type: 'string', default: '300' },
    'results-dir': { type: 'string', default: join(repoRoot, 'bench', 'results') },
    'open-loop-rates': { type: 'string', default: '10,20,40' },
    'open-loop-seconds': { type: 'string', default: '10' },
    repeat: { type: 'string', default: '3' },
    pods: { type: 'boolean', default: true },
    help: { type: 'boolean', default: false },
  },
  allowNegative: true,
});

export const help = `npm run bench -- [--hosts 100] [--instances 1000] [--concurrency 50] [--sample 0.05]
  [--agent-processes 10] [--heartbeat-interval 10] [--status-report-interval 60 (0: no node Lease)] [--idle-seconds 30] [--limit-boots N] [--boot-flavor m1.tiny] [--resize-flavor bench.resize]
  [--invariant-interval 1000] [--timeout 180] [--cpu-prof] [--no-no-keepalive-limit] [--no-agent-keepalive] [--quiet-load N] [--quiet-wait 300] [--keep] [--results-dir DIR]
  [--open-loop-rates 10,20,40 (boots/s; '' for none)] [--open-loop-seconds 10] [--repeat 3] [--no-pods]
`;

const num = (name: keyof typeof args, min: number): number => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < min)
    throw new Error(`--${name} must be a number >= ${min}, got ${String(args[name])}`);
  return v;
};

export function parseOptions() {
  return {
    help: args.help ?? false,
    resultsDir: args['results-dir'] ?? join(repoRoot, 'bench', 'results'),
    hosts: num('hosts', 1),
    instances: num('instances', 1),
    concurrency: num('concurrency', 1),
    sample: num('sample', 0),
    agentProcesses: num('agent-processes', 1),
    heartbeatInterval: num('heartbeat-interval', 0.1),
    /** The agents' --status-report-interval: 0 runs them without node Leases, every heartbeat a status write. */
    statusReportInterval: num('status-report-interval', 0),
    /** How long the idle hosts are measured before the first boot (0: not at all). */
    idleSeconds: num('idle-seconds', 0),
    limitBoots: args['limit-boots'] !== undefined ? num('limit-boots', 1) : Math.max(300, Number(args.instances)),
    bootFlavor: args['boot-flavor'] ?? 'm1.tiny',
    resizeFlavor: args['resize-flavor'] ?? 'bench.resize',
    invariantIntervalMs: num('invariant-interval', 50),
    timeoutMs: num('timeout', 1) * 1000,
    cpuProf: args['cpu-prof'] ?? false,
    noKeepaliveLimit: args['no-keepalive-limit'] ?? true,
    agentKeepalive: args['agent-keepalive'] ?? true,
    keep: args.keep ?? false,
    /**
     * Start only once the 1-minute load average is below this (default: the number of cores),
     * waiting at most quietWaitS.
     */
    quietLoad: args['quiet-load'] !== undefined ? num('quiet-load', 0) : cpus().length,
    quietWaitS: num('quiet-wait', 0),
    /** Open-loop arrival rates (boots/s), each held for openLoopSeconds, once after the rounds. */
    openLoopRates: (args['open-loop-rates'] ?? '')
      .split(',')
      .filter((r) => r.trim() !== '')
      .map((r) => {
        const v = Number(r);
        if (!Number.isFinite(v) || v <= 0) throw new Error(`--open-loop-rates: ${r} is not a rate > 0`);
        return v;
      }),
    openLoopSeconds: num('open-loop-seconds', 1),
    /** Rounds within the one run, each kubenova's boots then the pods referee's (rounds.ts). */
    repeat: Math.round(num('repeat', 1)),
    /** The pods referee (pods.ts): kube-scheduler and KWOK on the same API server. */
    pods: args.pods ?? true,
  };
}

export type Options = ReturnType<typeof parseOptions>;
