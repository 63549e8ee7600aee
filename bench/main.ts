// `npm run bench`: kubenova at scale against this machine's own limit.
//
//   1. a real control plane (kube-apiserver with its in-flight limits raised), the CRDs and
//      the sample flavors;
//   2. the limit: a plain client loop replays the writes of one boot (limit.ts) on throwaway
//      objects with the benchmark's concurrency, before anything else runs;
//   3. the operator and one simulated-hosts process (devenv/simulated-hosts) posing as --hosts
//      hosts, each a full node agent with the fake driver (--agent-processes splits them);
//   4. --instances boots by --concurrency closed-loop clients (each creates an Instance and
//      waits until a watch shows it active before creating the next), then a --sample of them
//      resized and as many others cold-migrated, each confirmed, then every instance deleted;
//   5. a table and bench/results/<timestamp>-<hosts>x<instances>.json.
//
// See docs/performance.md for what the numbers mean.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Instance, Migration } from '../common/api/types.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import {
  AGENT_USERNAME_PREFIX,
  RELEASE_NAMESPACE,
  applySampleFlavors,
  distDir,
  installCrds,
  repoRoot,
} from '../devenv/components.js';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { startProcess, type ManagedProcess } from '../devenv/controlplane/processes.js';
import { InvariantWatcher } from '../devenv/invariants.js';
import { simulatedHostNames } from '../devenv/simulated-hosts/hosts.js';
import { HttpClient } from './http.js';
import { BOOT_WRITES, LimitProbe, WRITES_PER_BOOT, type LimitResult } from './limit.js';
import {
  MUTATING,
  addCounts,
  cpuSeconds,
  diffCounts,
  findPids,
  loadAverage,
  machineBusySeconds,
  parseConflicts,
  parseCounterBy,
  parseRequestTotals,
  parseWatchEvents,
  peakRssMiB,
  summarize,
  sumCounts,
  type Summary,
} from './measure.js';
import { runRepeated } from './repeat.js';
import { formatTable } from './report.js';
import { WATCH_EVENTS_METRIC } from '../node-agent/host-watches.js';
import { TimeoutError, CollectionWatch } from './watch.js';

const GROUP_PATH = '/apis/compute.kubenova.io/v1alpha1';
const MERGE = 'application/merge-patch+json';
const NAMESPACE = 'bench';

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    hosts: { type: 'string', default: '100' },
    instances: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '50' },
    sample: { type: 'string', default: '0.05' },
    'agent-processes': { type: 'string', default: '10' },
    'heartbeat-interval': { type: 'string', default: '10' },
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
    repeat: { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
  allowNegative: true,
});

if (args.help) {
  process.stdout.write(`npm run bench -- [--hosts 100] [--instances 1000] [--concurrency 50] [--sample 0.05]
  [--agent-processes 10] [--heartbeat-interval 10] [--limit-boots N] [--boot-flavor m1.tiny] [--resize-flavor bench.resize]
  [--invariant-interval 1000] [--timeout 180] [--cpu-prof] [--no-no-keepalive-limit] [--no-agent-keepalive] [--quiet-load N] [--quiet-wait 300] [--keep] [--results-dir DIR]
  [--open-loop-rates 10,20,40 (boots/s; '' for none)] [--open-loop-seconds 10] [--repeat 1]\n`);
  process.exit(0);
}

const num = (name: keyof typeof args, min: number): number => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < min)
    throw new Error(`--${name} must be a number >= ${min}, got ${String(args[name])}`);
  return v;
};

const opts = {
  hosts: num('hosts', 1),
  instances: num('instances', 1),
  concurrency: num('concurrency', 1),
  sample: num('sample', 0),
  agentProcesses: num('agent-processes', 1),
  heartbeatInterval: num('heartbeat-interval', 0.1),
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
  /** Open-loop arrival rates (boots/s), each held for openLoopSeconds after the closed-loop boots. */
  openLoopRates: (args['open-loop-rates'] ?? '')
    .split(',')
    .filter((r) => r.trim() !== '')
    .map((r) => {
      const v = Number(r);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`--open-loop-rates: ${r} is not a rate > 0`);
      return v;
    }),
  openLoopSeconds: num('open-loop-seconds', 1),
  /** Whole runs, one after another, summarised by median and spread (repeat.ts). */
  repeat: num('repeat', 1),
};

const log = (msg: string) => process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Proc {
  name: string;
  pid: number;
}

interface Snapshot {
  at: number;
  machineBusy: number;
  load: number;
  requests: Map<string, number>;
  /** Requests the API server answered 409 Conflict. */
  conflicts: Map<string, number>;
  watchEvents: Map<string, number>;
  /** Watch events the agent processes counted as delivered to their hosts, by kind. */
  agentWatchEvents: Map<string, number>;
  cpu: Record<string, number>;
  invariantSamples: number;
}

const activeAndReady = (i: Instance | undefined) =>
  i?.status?.vmState === 'active' &&
  !i.status.taskState &&
  i.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const failed = (i: Instance | undefined) => i?.status?.vmState === 'error';
const settled = (i: Instance | undefined) => activeAndReady(i) && !i?.status?.migration;
const migrationFinished = (m: Migration | undefined) =>
  m?.status?.status === 'finished' || m?.status?.status === 'error';
const migrationConfirmed = (m: Migration | undefined) =>
  m?.status?.status === 'confirmed' || m?.status?.status === 'error';

async function main(): Promise<void> {
  const dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-bench-'));
  const stateDir = join(dir, 'agents');
  const profDir = join(dir, 'profiles');
  mkdirSync(stateDir, { recursive: true });
  // The machine is shared: start when it is quiet enough, so the limit and the run see the same machine.
  const quietSince = performance.now();
  while ((loadAverage()[0] ?? 0) > opts.quietLoad && performance.now() - quietSince < opts.quietWaitS * 1000) {
    if (performance.now() - quietSince < 1000)
      log(
        `waiting up to ${opts.quietWaitS} s for the 1-minute load (${loadAverage()[0]}) to fall below ${opts.quietLoad}`,
      );
    await new Promise((r) => setTimeout(r, 5_000));
  }
  const waitedForQuietS = round((performance.now() - quietSince) / 1000, 0);
  const startedAt = new Date();
  const loadBefore = loadAverage();
  log(`${opts.hosts} hosts x ${opts.instances} instances, concurrency ${opts.concurrency}; work dir ${dir}`);
  const cp = await ControlPlane.start({
    dir: join(dir, 'controlplane'),
    // The default in-flight limits (400 reads, 200 writes) are sized for shared clusters;
    // this server has one tenant, the benchmark, and should not be the one to say no first.
    apiserverFlags: ['--max-requests-inflight=2000', '--max-mutating-requests-inflight=1000'],
  });
  const processes: ManagedProcess[] = [];
  let finishing = false;
  const cleanUp = async () => {
    finishing = true;
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 10_000)));
    await cp.stop();
  };
  process.on('SIGINT', () => {
    void cleanUp().finally(() => process.exit(130));
  });
  let keepDir = opts.keep;
  try {
    installCrds(cp);
    applySampleFlavors(cp);
    // A resize target with a small root disk: the fake driver writes 64 KiB of SHA-256-derived
    // content per GiB when it grows a disk, on the agent's one thread; with m1.small that is
    // 1.2 MiB per resize, which measures the fake disk, not kubenova.
    cp.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'Flavor',
        metadata: { name: 'bench.resize' },
        spec: { vcpus: 2, memoryMiB: 1024, rootDiskGiB: 2 },
      }),
    );
    const ca = readFileSync(cp.caPath);
    const client = new HttpClient({ server: cp.server, ca, token: cp.adminToken, keepAlive: true });
    const servers: Proc[] = [
      ...findPids(cp.binaries.kubeApiserver, cp.dir).map((pid) => ({ name: 'kube-apiserver', pid })),
      ...findPids(cp.binaries.etcd, cp.dir).map((pid) => ({ name: 'etcd', pid })),
      ...findPids(cp.binaries.kubeControllerManager, cp.dir).map((pid) => ({ name: 'kube-controller-manager', pid })),
    ];

    // --- The limit, before kubenova runs -------------------------------------------------
    log(
      `limit: ${opts.limitBoots} throwaway boots x ${WRITES_PER_BOOT} writes, concurrency ${opts.concurrency}, keep-alive client`,
    );
    const limits: LimitResult[] = [];
    const serverCpu = () =>
      Object.fromEntries(
        [...servers, { name: 'bench', pid: process.pid }].map((p) => [p.name, cpuSeconds(p.pid) ?? NaN]),
      );
    const timed = async (
      run: () => Promise<Omit<LimitResult, 'keepAlive'>>,
      keepAlive: boolean,
      when: 'before' | 'after',
    ) => {
      const before = serverCpu();
      const busyBefore = machineBusySeconds();
      const r = await run();
      const after = serverCpu();
      const cpu = Object.fromEntries(
        Object.keys(after).map((k) => [k, round((after[k] ?? NaN) - (before[k] ?? NaN), 2)]),
      );
      const ours = Object.values(cpu).reduce((a, b) => a + b, 0);
      limits.push({
        keepAlive,
        when,
        ...r,
        cpuSeconds: cpu,
        otherCpuSeconds: round(machineBusySeconds() - busyBefore - ours, 2),
      });
    };
    const probe = new LimitProbe(client, 'bench-limit', opts.hosts);
    await probe.setUp();
    await timed(() => probe.run(opts.limitBoots, opts.concurrency), true, 'before');
    log(`limit: ${limits[0]!.writesPerSecond.toFixed(0)} writes/s = ${limits[0]!.bootsPerSecond.toFixed(1)} boots/s`);
    if (opts.noKeepaliveLimit) {
      // The same loop with a new TLS connection per request, as @kubernetes/client-node 1.x makes them.
      const fresh = new HttpClient({ server: cp.server, ca, token: cp.adminToken, keepAlive: false });
      const freshProbe = new LimitProbe(fresh, 'bench-limit', opts.hosts);
      await freshProbe.setUp();
      const boots = Math.max(100, Math.round(opts.limitBoots / 3));
      await timed(() => freshProbe.run(boots, opts.concurrency, opts.limitBoots), false, 'before');
      log(`limit without keep-alive: ${limits[1]!.writesPerSecond.toFixed(0)} writes/s`);
      await freshProbe.tearDown();
      fresh.close();
    }
    await probe.tearDown();
    await waitUntil(
      'throwaway namespace gone',
      async () => {
        try {
          await client.raw('GET', '/api/v1/namespaces/bench-limit');
          return false;
        } catch {
          return true;
        }
      },
      120_000,
    );

    // --- kubenova --------------------------------------------------------------------------
    await client.json('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NAMESPACE },
    });
    // --cpu-prof is not allowed in NODE_OPTIONS, so profiled components get it as a node flag.
    const nodeFlags = opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    const operator = startNode(
      'operator',
      join(distDir, 'operator', 'main.js'),
      [
        `--kubeconfig=${cp.kubeconfigPath}`,
        `--release-namespace=${RELEASE_NAMESPACE}`,
        `--agent-username-prefix=${AGENT_USERNAME_PREFIX}`,
      ],
      join(dir, 'operator.log'),
      nodeFlags,
    );
    processes.push(operator);
    const agents: ManagedProcess[] = [];
    // Every simulated host gets its own identity, as local agents do (devenv/components.ts), so
    // the operator issues it a transfer certificate.
    const hostKubeconfigs = simulatedHostNames('sim', opts.hosts).map((host) =>
      cp.userKubeconfig(`${AGENT_USERNAME_PREFIX}${host}`, ['system:masters']),
    );
    const hostKubeconfig = (hostKubeconfigs[0] ?? '').replace(/sim-\d+/, '{host}');
    const perProcess = Math.ceil(opts.hosts / opts.agentProcesses);
    for (let p = 0, offset = 0; offset < opts.hosts; p++, offset += perProcess) {
      const count = Math.min(perProcess, opts.hosts - offset);
      // The simulated-hosts launcher with the node-agent flags the harness gives every agent
      // (devenv/components.ts): hosts sim-000, sim-001, ... split over the processes.
      const agent = startNode(
        `agent-${p}`,
        join(distDir, 'devenv', 'simulated-hosts', 'main.js'),
        [
          '--host-prefix=sim',
          `--hosts=${count}`,
          `--host-offset=${offset}`,
          `--kubeconfig=${cp.kubeconfigPath}`,
          `--host-kubeconfig=${hostKubeconfig}`,
          `--release-namespace=${RELEASE_NAMESPACE}`,
          `--state-dir=${stateDir}`,
          '--capacity-vcpus=8',
          '--capacity-memory-mib=16384',
          '--capacity-disk-gib=200',
          `--heartbeat-interval=${opts.heartbeatInterval}`,
        ],
        join(dir, `agent-${p}.log`),
        nodeFlags,
        { KUBENOVA_API_KEEPALIVE: String(opts.agentKeepalive) },
      );
      agents.push(agent);
      processes.push(agent);
    }
    const exitedEarly = () => {
      const dead = processes.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
      if (dead) throw new FatalError(`${dead.name} exited at start; see ${join(dir, `${dead.name}.log`)}`);
    };
    const kubenova: Proc[] = [
      { name: 'operator', pid: operator.pid },
      ...agents.map((a, i) => ({ name: agents.length > 1 ? `agent-${i}` : 'agent', pid: a.pid })),
    ];
    const t0 = performance.now();
    await waitUntil(
      `${opts.hosts} ComputeNodes Ready`,
      async () => {
        exitedEarly();
        const list = await client.json<{ items: { status?: { conditions?: { type: string; status: string }[] } }[] }>(
          'GET',
          `${GROUP_PATH}/computenodes`,
        );
        return (
          list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
            .length >= opts.hosts
        );
      },
      120_000,
      500,
    );
    const registerSeconds = (performance.now() - t0) / 1000;
    log(`${opts.hosts} hosts registered in ${registerSeconds.toFixed(1)} s`);
    await waitUntil(
      'operator running',
      () => exitedEarly() ?? /"msg":"operator running"/.test(readFileSync(join(dir, 'operator.log'), 'utf8')),
      60_000,
    );

    const instances = new CollectionWatch<Instance>(client, `${GROUP_PATH}/namespaces/${NAMESPACE}/instances`);
    const migrations = new CollectionWatch<Migration>(client, `${GROUP_PATH}/namespaces/${NAMESPACE}/migrations`);
    // A component that dies mid-run ends the run: every pending wait fails at once and no new
    // work starts, instead of each wait running into its timeout.
    const crashed: string[] = [];
    const onCrash = (name: string, code: number | NodeJS.Signals) => {
      if (finishing) return;
      crashed.push(`${name} exited (${String(code)})`);
      log(`${name} exited (${String(code)}); ending the run`);
      const err = new Error(`${name} exited`);
      instances.failAll(err);
      migrations.failAll(err);
    };
    for (const p of processes) void p.exited.then((code) => onCrash(p.name, code));
    const kube = new Kube(loadKubeConfig(cp.kubeconfigPath), 'kubenova-bench');
    const invariants = new InvariantWatcher(kube, stateDir, opts.invariantIntervalMs).start();
    await Promise.all([instances.start(), migrations.start()]);

    const all = [...servers, ...kubenova, { name: 'bench', pid: process.pid }];
    const agentLogs = agents.map((_, i) => join(dir, `agent-${i}.log`));
    const snapshot = async (): Promise<Snapshot> => {
      const metrics = await cp.get('/metrics');
      return {
        at: performance.now(),
        machineBusy: machineBusySeconds(),
        load: loadAverage()[0] ?? NaN,
        requests: parseRequestTotals(metrics),
        conflicts: parseConflicts(metrics),
        watchEvents: parseWatchEvents(metrics),
        agentWatchEvents: await scrapeAgentWatchEvents(agentLogs),
        cpu: Object.fromEntries(all.map((p) => [p.name, cpuSeconds(p.pid) ?? NaN])),
        invariantSamples: invariants.report.samples,
      };
    };
    const clientCounts = () => new Map(client.counts);

    // --- Boot ------------------------------------------------------------------------------
    const names = Array.from({ length: opts.instances }, (_, i) => `b-${String(i).padStart(5, '0')}`);
    const bootBefore = await snapshot();
    const bootClientBefore = clientCounts();
    const timeToActive: number[] = [];
    /** [seconds since the boot phase began when the create was sent, time to active], per boot. */
    const timeline: [number, number][] = [];
    const bootT0 = performance.now();
    const serverTimeToActive: number[] = [];
    const bootFailures: string[] = [];
    let reschedules = 0;
    await forEachConcurrently(
      names,
      opts.concurrency,
      async (name) => {
        const done = instances.waitFor(name, (i) => activeAndReady(i) || failed(i), opts.timeoutMs);
        const start = performance.now();
        try {
          await client.json('POST', `${GROUP_PATH}/namespaces/${NAMESPACE}/instances`, {
            apiVersion: 'compute.kubenova.io/v1alpha1',
            kind: 'Instance',
            metadata: { name, namespace: NAMESPACE },
            spec: { flavor: opts.bootFlavor, image: 'cirros', powerState: 'Running' },
          });
          const { obj, at } = await done;
          if (!activeAndReady(obj)) {
            bootFailures.push(
              `${name}: ${obj?.status?.vmState} ${obj?.status?.fault?.reason ?? ''} ${obj?.status?.fault?.message ?? ''}`,
            );
            return;
          }
          timeToActive.push((at - start) / 1000);
          timeline.push([round((start - bootT0) / 1000, 2), round((at - start) / 1000, 3)]);
          const ready = obj?.status?.conditions?.find((c) => c.type === 'Ready');
          const created = Date.parse(obj?.metadata.creationTimestamp as unknown as string);
          if (ready && Number.isFinite(created))
            serverTimeToActive.push((Date.parse(ready.lastTransitionTime) - created) / 1000);
          reschedules += Math.max(0, (obj?.status?.scheduling?.attempts ?? 1) - 1);
        } catch (err) {
          done.catch(() => undefined);
          bootFailures.push(
            `${name}: ${err instanceof TimeoutError ? 'stuck (not active in time)' : (err as Error).message}`,
          );
        }
      },
      () => crashed.length > 0,
    );
    const bootAfter = await snapshot();
    timeline.sort((a, b) => a[0] - b[0]);
    const bootClient = diffCounts(clientCounts(), bootClientBefore);
    const bootSeconds = (bootAfter.at - bootBefore.at) / 1000;
    const booted = timeToActive.length;
    log(
      `boot: ${booted}/${opts.instances} active in ${bootSeconds.toFixed(1)} s (${(booted / bootSeconds).toFixed(1)}/s), ${bootFailures.length} failed or stuck`,
    );

    // --- Open loop: creates at a fixed rate, whatever the answers ---------------------------
    // A closed loop's latency is set by its concurrency (Little's law); arrivals at a fixed
    // rate show what a boot takes at that load, and from which rate kubenova falls behind.
    const openLoop: { rate: number; p50: number; p99: number; booted: number; failed: number; stuck: number }[] = [];
    for (const [r, rate] of opts.openLoopRates.entries()) {
      if (crashed.length > 0) break;
      const count = Math.max(1, Math.round(rate * opts.openLoopSeconds));
      const times: number[] = [];
      let failedHere = 0;
      let stuckHere = 0;
      const t0 = performance.now();
      const boots = Array.from({ length: count }, async (_, i) => {
        const name = `o${r}-${String(i).padStart(5, '0')}`;
        names.push(name);
        const due = t0 + (i * 1000) / rate;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
        const done = instances.waitFor(name, (inst) => activeAndReady(inst) || failed(inst), opts.timeoutMs);
        const start = performance.now();
        try {
          await client.json('POST', `${GROUP_PATH}/namespaces/${NAMESPACE}/instances`, {
            apiVersion: 'compute.kubenova.io/v1alpha1',
            kind: 'Instance',
            metadata: { name, namespace: NAMESPACE },
            spec: { flavor: opts.bootFlavor, image: 'cirros', powerState: 'Running' },
          });
          const { obj, at } = await done;
          // An error (NoValidHost when the hosts are full) is an answer, not a stuck task.
          if (activeAndReady(obj)) times.push((at - start) / 1000);
          else failedHere++;
        } catch {
          done.catch(() => undefined);
          stuckHere++;
        }
      });
      await Promise.all(boots);
      const s = summarize(times);
      openLoop.push({
        rate,
        p50: round(s.p50, 3),
        p99: round(s.p99, 3),
        booted: times.length,
        failed: failedHere,
        stuck: stuckHere,
      });
      log(
        `open loop ${rate}/s: ${times.length}/${count} active, ${failedHere} in error, ${stuckHere} stuck; p50 ${s.p50.toFixed(2)} s, p99 ${s.p99.toFixed(2)} s`,
      );
    }

    // --- Resize and cold-migrate a sample, confirm each ------------------------------------
    const sampleSize = Math.min(Math.floor(booted / 2), Math.ceil(opts.instances * opts.sample));
    const activeNames = names.filter((n) => activeAndReady(instances.objects.get(n)));
    const resizeNames = activeNames.filter((_, i) => i % 2 === 0).slice(0, sampleSize);
    const migrateNames = activeNames.filter((_, i) => i % 2 === 1).slice(0, sampleSize);
    const sampleBefore = await snapshot();
    const resizeTimes: number[] = [];
    const migrateTimes: number[] = [];
    const confirmTimes: number[] = [];
    const sampleFailures: string[] = [];
    const jobs = [
      ...resizeNames.map((n) => ({ name: n, kind: 'resize' as const })),
      ...migrateNames.map((n) => ({ name: n, kind: 'migration' as const })),
    ];
    await forEachConcurrently(
      jobs,
      opts.concurrency,
      async ({ name, kind }) => {
        const inst = instances.objects.get(name);
        const migName = kind === 'resize' ? `${name}-resize-${(inst?.metadata.generation ?? 1) + 1}` : `${name}-move`;
        const finished = migrations.waitFor(migName, migrationFinished, opts.timeoutMs);
        const start = performance.now();
        try {
          if (kind === 'resize') {
            await client.json(
              'PATCH',
              `${GROUP_PATH}/namespaces/${NAMESPACE}/instances/${name}`,
              { spec: { flavor: opts.resizeFlavor } },
              MERGE,
            );
          } else {
            await client.json('POST', `${GROUP_PATH}/namespaces/${NAMESPACE}/migrations`, {
              apiVersion: 'compute.kubenova.io/v1alpha1',
              kind: 'Migration',
              metadata: { name: migName, namespace: NAMESPACE },
              spec: { instance: name },
            });
          }
          const f = await finished;
          if (f.obj?.status?.status !== 'finished') {
            sampleFailures.push(`${migName}: ${f.obj?.status?.status} ${f.obj?.status?.fault?.message ?? ''}`);
            return;
          }
          (kind === 'resize' ? resizeTimes : migrateTimes).push((f.at - start) / 1000);
          const confirmed = migrations.waitFor(migName, migrationConfirmed, opts.timeoutMs);
          const back = instances.waitFor(
            name,
            (i) => settled(i) && i?.status?.flavor?.name === (kind === 'resize' ? opts.resizeFlavor : opts.bootFlavor),
            opts.timeoutMs,
          );
          // Awaited below only when the confirm succeeds; never an unhandled rejection.
          back.catch(() => undefined);
          const decided = performance.now();
          await client.json(
            'PATCH',
            `${GROUP_PATH}/namespaces/${NAMESPACE}/migrations/${migName}`,
            { spec: { decision: 'Confirm' } },
            MERGE,
          );
          const c = await confirmed;
          if (c.obj?.status?.status !== 'confirmed') {
            sampleFailures.push(`${migName}: confirm ended ${c.obj?.status?.status}`);
            return;
          }
          const b = await back;
          confirmTimes.push((Math.max(c.at, b.at) - decided) / 1000);
        } catch (err) {
          finished.catch(() => undefined);
          sampleFailures.push(`${migName}: ${err instanceof TimeoutError ? 'stuck' : (err as Error).message}`);
        }
      },
      () => crashed.length > 0,
    );
    const sampleAfter = await snapshot();
    log(
      `sample: ${resizeTimes.length} resized, ${migrateTimes.length} migrated, ${confirmTimes.length} confirmed, ${sampleFailures.length} failed or stuck`,
    );

    // --- Delete everything -------------------------------------------------------------------
    const deleteBefore = await snapshot();
    const deleteTimes: number[] = [];
    const deleteFailures: string[] = [];
    await forEachConcurrently(
      names.filter((n) => instances.objects.has(n)),
      opts.concurrency,
      async (name) => {
        const gone = instances.waitFor(name, (i) => i === undefined, opts.timeoutMs);
        const start = performance.now();
        try {
          await client.raw('DELETE', `${GROUP_PATH}/namespaces/${NAMESPACE}/instances/${name}`);
          deleteTimes.push(((await gone).at - start) / 1000);
        } catch (err) {
          gone.catch(() => undefined);
          deleteFailures.push(
            `${name}: ${err instanceof TimeoutError ? 'stuck (not gone in time)' : (err as Error).message}`,
          );
        }
      },
      () => crashed.length > 0,
    );
    const deleteAfter = await snapshot();
    log(
      `delete: ${deleteTimes.length} deleted in ${((deleteAfter.at - deleteBefore.at) / 1000).toFixed(1)} s, ${deleteFailures.length} failed or stuck`,
    );

    // One more invariant sample with everything gone, then what is left must be nothing.
    await invariants.sample();
    const report = await invariants.stop();
    const nodes = (await kube.computeNodes.list()).items;
    const leftoverClaims = nodes.flatMap((n) =>
      (n.status?.claims ?? []).map((c) => `${n.metadata.name}: ${c.kind} ${c.instance ?? c.consumer}`),
    );
    const leftoverDomains = countDomains(stateDir);
    const notReadyNodes = nodes
      .filter((n) => !n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
      .map((n) => n.metadata.name);
    await Promise.all([instances.stop(), migrations.stop()]);

    const peak = Object.fromEntries([...kubenova, ...servers].map((p) => [p.name, peakRssMiB(p.pid) ?? NaN]));
    const operatorMetrics = await scrapeComponentMetrics(join(dir, 'operator.log'));
    const agentMetrics = await scrapeComponentMetrics(join(dir, 'agent-0.log'));
    const logProblems = Object.fromEntries(
      ['operator.log', ...agents.map((_, i) => `agent-${i}.log`)].map((f) => [
        f.replace('.log', ''),
        countLogProblems(join(dir, f)),
      ]),
    );
    finishing = true;
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 20_000)));
    processes.length = 0;
    // The limit once more, with kubenova stopped: the machine may have been busier (or quieter)
    // at the start, and the better of the two is the limit.
    log(`limit again, after the run: ${opts.limitBoots} throwaway boots`);
    const probeAfter = new LimitProbe(client, 'bench-limit-after', opts.hosts);
    await probeAfter.setUp();
    await timed(() => probeAfter.run(opts.limitBoots, opts.concurrency, 2 * opts.limitBoots), true, 'after');
    log(`limit after: ${limits.at(-1)!.writesPerSecond.toFixed(0)} writes/s`);
    await probeAfter.tearDown();
    const loadAfter = loadAverage();

    // --- Results -------------------------------------------------------------------------------
    // What kubenova itself asked of the API server while booting: everything the server
    // counted, less the bench's own requests (its creates, its watches' lists) and the
    // invariant watcher's ComputeNode lists. Non-resource paths (/metrics) are left out.
    const bootRequests = diffCounts(bootAfter.requests, bootBefore.requests);
    const own = new Map(bootClient);
    own.set(
      'LIST computenodes',
      (own.get('LIST computenodes') ?? 0) + (bootAfter.invariantSamples - bootBefore.invariantSamples),
    );
    const kubenovaRequests = new Map<string, number>();
    for (const [k, v] of bootRequests) {
      const n = v - (own.get(k) ?? 0);
      if (n > 0 && !k.endsWith(' ')) kubenovaRequests.set(k, n);
    }
    const bootsPerSecond = booted / bootSeconds;
    const limit = limits.filter((l) => l.keepAlive).reduce((a, b) => (b.writesPerSecond > a.writesPerSecond ? b : a));
    const ratio = bootsPerSecond / limit.bootsPerSecond;
    const cpuDelta = (a: Snapshot, b: Snapshot) =>
      Object.fromEntries(Object.keys(b.cpu).map((k) => [k, round((b.cpu[k] ?? NaN) - (a.cpu[k] ?? NaN), 2)]));
    // CPU per boot: the machine-time cost, which neighbours' load barely changes. If this
    // machine were ours alone and CPU-bound, achieved/limit would tend to the ratio of the two.
    const sumCpu = (c: Record<string, number> | undefined) =>
      Object.values(c ?? {}).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const bootCpu = cpuDelta(bootBefore, bootAfter);
    const kubenovaCpuMsPerBoot = (1000 * sumCpu(bootCpu)) / Math.max(1, booted);
    const limitCpuMsPerBoot = (1000 * sumCpu(limit.cpuSeconds)) / Math.max(1, limit.boots - limit.errors);
    const otherCpu = (a: Snapshot, b: Snapshot) => round(b.machineBusy - a.machineBusy - sumCpu(cpuDelta(a, b)), 2);
    const stuck =
      openLoop.reduce((n, o) => n + o.stuck, 0) +
      bootFailures.length +
      sampleFailures.length +
      deleteFailures.length +
      leftoverClaims.length +
      (crashed.length ? opts.instances - deleteTimes.length : 0);
    const requestsPerBoot = sumCounts(kubenovaRequests) / Math.max(1, booted);
    const mutatingPerBoot = sumCounts(kubenovaRequests, (k) => MUTATING.test(k)) / Math.max(1, booted);
    // Every write the API server counted while booting, the users' creates included (as
    // BOOT_WRITES counts them), and heartbeats, leases and Events: the figure the limit is set by.
    const writesPerBoot = sumCounts(bootRequests, (k) => MUTATING.test(k)) / Math.max(1, booted);
    const bootConflicts = diffCounts(bootAfter.conflicts, bootBefore.conflicts);
    const conflictsPerBoot = sumCounts(bootConflicts) / Math.max(1, booted);
    const bootAgentWatchEvents = diffCounts(bootAfter.agentWatchEvents, bootBefore.agentWatchEvents);
    const agentWatchEventsPerBoot = sumCounts(bootAgentWatchEvents) / Math.max(1, booted);
    // CPU per boot by component: the agent processes together, then each server.
    const perBoot = (seconds: number) => round((1000 * seconds) / Math.max(1, booted), 2);
    const cpuMsPerBootByComponent: Record<string, number> = {};
    for (const [name, seconds] of Object.entries(bootCpu)) {
      const component = name.startsWith('agent') ? 'agents' : name;
      cpuMsPerBootByComponent[component] = (cpuMsPerBootByComponent[component] ?? 0) + seconds;
    }
    for (const k of Object.keys(cpuMsPerBootByComponent))
      cpuMsPerBootByComponent[k] = perBoot(cpuMsPerBootByComponent[k] ?? NaN);
    const p99TimeToActive = summarize(timeToActive).p99;
    const result = {
      kind: 'kubenova-bench/v1',
      // The headline figures, each counted during the boot phase (see docs/performance.md).
      writesPerBoot: round(writesPerBoot, 2),
      conflictsPerBoot: round(conflictsPerBoot, 3),
      agentWatchEventsPerBoot: round(agentWatchEventsPerBoot, 2),
      bootsPerSecond: round(bootsPerSecond, 2),
      p99TimeToActiveSeconds: round(p99TimeToActive, 3),
      invariantViolations: report.violations.length,
      stuck,
      operatorPeakRssMiB: round(peak.operator ?? NaN, 1),
      cpuMsPerBootByComponent,
      openLoop,
      /** The highest open-loop rate whose p99 time-to-active stayed at or under 5 s. */
      openLoopMaxRateP99Under5s: Math.max(0, ...openLoop.filter((o) => o.p99 <= 5).map((o) => o.rate)),
      startedAt: startedAt.toISOString(),
      commit: gitCommit(),
      machine: {
        cpus: cpus().length,
        waitedForQuietS,
        node: process.version,
        kubernetes: cp.binaries.kubernetesVersion,
        loadAverageBefore: loadBefore,
        loadAverageAfter: loadAfter,
      },
      options: { ...opts },
      registerSeconds: round(registerSeconds, 2),
      boot: {
        instances: opts.instances,
        active: booted,
        seconds: round(bootSeconds, 2),
        bootsPerSecond: round(bootsPerSecond, 2),
        timeToActive: roundSummary(summarize(timeToActive)),
        // The first `concurrency` creates go out at once into cold processes; the rest is steady state.
        timeToActiveAfterFirstBurst: roundSummary(summarize(timeline.slice(opts.concurrency).map(([, v]) => v))),
        serverTimeToActive: roundSummary(summarize(serverTimeToActive)),
        reschedules,
        failures: bootFailures.slice(0, 20),
        timeline,
        apiRequestsPerBoot: round(requestsPerBoot, 2),
        apiWritesPerBoot: round(mutatingPerBoot, 2),
        apiRequests: sortedObject(kubenovaRequests),
        watchEventsPerBoot: round(
          sumCounts(diffCounts(bootAfter.watchEvents, bootBefore.watchEvents)) / Math.max(1, booted),
          2,
        ),
        watchEvents: sortedObject(diffCounts(bootAfter.watchEvents, bootBefore.watchEvents)),
        conflicts: sortedObject(bootConflicts),
        agentWatchEvents: sortedObject(bootAgentWatchEvents),
        benchRequests: sortedObject(own),
        cpuSeconds: bootCpu,
        otherCpuSeconds: otherCpu(bootBefore, bootAfter),
        loadAverage: [round(bootBefore.load, 2), round(bootAfter.load, 2)],
        cpuMsPerBoot: round(kubenovaCpuMsPerBoot, 1),
      },
      sample: {
        resized: resizeTimes.length,
        migrated: migrateTimes.length,
        confirmed: confirmTimes.length,
        resize: roundSummary(summarize(resizeTimes)),
        migration: roundSummary(summarize(migrateTimes)),
        confirm: roundSummary(summarize(confirmTimes)),
        failures: sampleFailures.slice(0, 20),
        apiRequests: sortedObject(diffCounts(sampleAfter.requests, sampleBefore.requests)),
        cpuSeconds: cpuDelta(sampleBefore, sampleAfter),
      },
      delete: {
        deleted: deleteTimes.length,
        seconds: round((deleteAfter.at - deleteBefore.at) / 1000, 2),
        time: roundSummary(summarize(deleteTimes)),
        failures: deleteFailures.slice(0, 20),
        cpuSeconds: cpuDelta(deleteBefore, deleteAfter),
      },
      limit: {
        writesPerBoot: WRITES_PER_BOOT,
        bootWrites: BOOT_WRITES,
        runs: limits.map((l) => ({
          ...l,
          seconds: round(l.seconds, 2),
          writesPerSecond: round(l.writesPerSecond, 1),
          bootsPerSecond: round(l.bootsPerSecond, 2),
        })),
        used: limits.indexOf(limit),
        achievedRatio: round(ratio, 3),
        cpuMsPerBoot: round(limitCpuMsPerBoot, 1),
        cpuNormalizedRatio: round(limitCpuMsPerBoot / kubenovaCpuMsPerBoot, 3),
      },
      cpuSecondsTotal: Object.fromEntries(Object.entries(deleteAfter.cpu).map(([k, v]) => [k, round(v, 2)])),
      peakRssMiB: Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, round(v, 1)])),
      operatorMetrics,
      agentMetrics,
      logProblems,
      invariants: {
        samples: report.samples,
        violations: report.violations.length,
        examples: [...new Set(report.violations)].slice(0, 20),
      },
      leftovers: {
        claims: leftoverClaims.slice(0, 20),
        claimCount: leftoverClaims.length,
        domains: leftoverDomains,
        notReadyNodes,
      },
      crashed,
      stuckTasks: stuck,
      targets: {
        allActive: booted === opts.instances,
        zeroViolations: report.violations.length === 0,
        zeroStuck: stuck === 0 && crashed.length === 0,
        p99TimeToActiveAtMost5s: summarize(timeToActive).p99 <= 5,
        atLeastHalfTheLimit: ratio >= 0.5,
        operatorPeakRssAtMost256MiB: (peak.operator ?? Infinity) <= 256,
      },
    };
    const resultsDir = args['results-dir']!;
    mkdirSync(resultsDir, { recursive: true });
    const stamp = startedAt
      .toISOString()
      .replace(/[:.]/g, '-')
      .replace(/-\d{3}Z$/, 'Z');
    const file = join(resultsDir, `${stamp}-${opts.hosts}x${opts.instances}.json`);
    // Written under the ignored *.tmp.json name first, so a half-written result is never picked up.
    writeFileSync(`${file.slice(0, -5)}.tmp.json`, `${JSON.stringify(result, null, 2)}\n`);
    renameSync(`${file.slice(0, -5)}.tmp.json`, file);
    process.stdout.write(`\n${formatTable(result)}\n\nresults: ${file}\n`);
    if (opts.cpuProf) {
      keepDir = true;
      log(`CPU profiles in ${profDir}: node dist/bench/profile.js ${profDir}/<file>.cpuprofile`);
    }
    if (stuck > 0 || report.violations.length > 0) keepDir = true;
  } catch (err) {
    keepDir = true;
    throw err;
  } finally {
    await cleanUp();
    if (keepDir) log(`logs and data kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

function startNode(
  name: string,
  script: string,
  args: string[],
  logFile: string,
  nodeFlags: string[],
  env: NodeJS.ProcessEnv = {},
): ManagedProcess {
  return startProcess({
    name,
    command: process.execPath,
    args: [...nodeFlags, script, ...args],
    env: { ...process.env, ...env },
    logFile,
  });
}

async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop()) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

class FatalError extends Error {}

async function waitUntil(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
}

function countDomains(stateDir: string): number {
  let n = 0;
  for (const host of existsSync(stateDir) ? readdirSync(stateDir) : []) {
    const dir = join(stateDir, host, 'instances');
    if (!existsSync(dir)) continue;
    n += readdirSync(dir).filter((d) => existsSync(join(dir, d, 'domain.json'))).length;
  }
  return n;
}

/**
 * controller_runtime_reconcile_total and workqueue_retries_total of a component, from the metrics
 * address it logged.
 */
async function scrapeComponentMetrics(logFile: string): Promise<Record<string, number>> {
  try {
    const m = /"metrics":"([^"]+)"/.exec(readFileSync(logFile, 'utf8'));
    if (!m) return {};
    const text = await (await fetch(`http://${m[1]}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const mm =
        /^(controller_runtime_reconcile_total|workqueue_retries_total|workqueue_adds_total)\{([^}]*)\} (\S+)/.exec(
          line,
        );
      if (!mm) continue;
      const labels = Object.fromEntries(
        [...mm[2]!.matchAll(/(\w+)="([^"]*)"/g)].filter((l) => l[1] !== 'component').map((l) => [l[1], l[2]]),
      );
      out[
        `${mm[1]}{${Object.entries(labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')}}`
      ] = Number(mm[3]);
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * The watch events every agent process counted as delivered to its hosts (WATCH_EVENTS_METRIC),
 * summed by kind, from the metrics address each logged. A process not yet answering counts 0.
 */
async function scrapeAgentWatchEvents(logFiles: readonly string[]): Promise<Map<string, number>> {
  let total = new Map<string, number>();
  for (const file of logFiles) {
    try {
      const m = /"metrics":"([^"]+)"/.exec(readFileSync(file, 'utf8'));
      if (!m) continue;
      const text = await (await fetch(`http://${m[1]}/metrics`)).text();
      total = addCounts(total, parseCounterBy(text, WATCH_EVENTS_METRIC, 'kind'));
    } catch {
      // not answering (yet): nothing counted from it
    }
  }
  return total;
}

/** Warnings and errors a component logged, by message. */
function countLogProblems(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const level = /"level":"(\w+)"/.exec(line)?.[1];
    if (level !== 'warn' && level !== 'error' && level !== 'fatal') continue;
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? '?';
    out[msg] = (out[msg] ?? 0) + 1;
  }
  return out;
}

function gitCommit(): string | undefined {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return undefined;
  }
}

function round(v: number, digits: number): number {
  return Number.isFinite(v) ? Number(v.toFixed(digits)) : v;
}

function roundSummary(s: Summary): Summary {
  return {
    n: s.n,
    p50: round(s.p50, 3),
    p95: round(s.p95, 3),
    p99: round(s.p99, 3),
    max: round(s.max, 3),
    mean: round(s.mean, 3),
  };
}

function sortedObject(m: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));
}

if (opts.repeat > 1) {
  // Each run is this script once more, without --repeat; then the median and spread.
  const rest = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--repeat') && all[i - 1] !== '--repeat');
  try {
    mkdirSync(args['results-dir']!, { recursive: true });
    runRepeated(process.argv[1]!, rest, Math.round(opts.repeat), args['results-dir']!);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(1);
  }
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
