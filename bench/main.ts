// `npm run bench`: kubenova at scale against this machine's own limit and against Kubernetes'
// own scheduler.
//
//   1. a real control plane (kube-apiserver with its in-flight limits raised), the CRDs and
//      the sample flavors;
//   2. the limit: a plain client loop replays the writes of one boot (limit.ts) on throwaway
//      objects with the benchmark's concurrency, before anything else runs;
//   3. the operator and the simulated-hosts processes (devenv/simulated-hosts) posing as --hosts
//      hosts, each a full node agent with the fake driver (--agent-processes splits them);
//   4. --repeat interleaved rounds (rounds.ts), each: --instances boots by --concurrency
//      closed-loop clients (kubenova-phases.ts), every instance deleted until the hosts are
//      empty, then as many pods on as many KWOK nodes placed by kube-scheduler (pods.ts);
//      after the last round's boots, once: the open-loop rates and a --sample resized and
//      cold-migrated, each confirmed;
//   5. the limit again; a table and bench/results/<timestamp>-<hosts>x<instances>.json, whose
//      top-level figures are the medians over the rounds.
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
import type { FlavorSpec, Instance, Migration } from '../common/api/types.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import {
  AGENT_USERNAME_PREFIX,
  RELEASE_NAMESPACE,
  applySampleFlavors,
  distDir,
  installCrds,
  installFinalizerPolicy,
  repoRoot,
} from '../devenv/components.js';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { hasExited, startProcess, type ManagedProcess } from '../devenv/controlplane/processes.js';
import { InvariantWatcher } from '../devenv/invariants.js';
import { simulatedHostNames } from '../devenv/simulated-hosts/hosts.js';
import { HttpClient } from './http.js';
import {
  GROUP_PATH,
  NAMESPACE,
  bootRound,
  deleteInstances,
  measureIdle,
  openLoopRates,
  resizeAndMigrate,
  type BootRound,
  type OpenLoopRate,
  type Phases,
} from './kubenova-phases.js';
import { BOOT_WRITES, LimitProbe, WRITES_PER_BOOT, type LimitResult } from './limit.js';
import { cpuSeconds, findPids, loadAverage, machineBusySeconds, peakRssMiB, summarize } from './measure.js';
import { help, parseOptions } from './options.js';
import { PodsReferee, type PodRound } from './pods.js';
import { formatTable } from './report.js';
import { medianRound, summarizeRounds, type RoundFigures } from './rounds.js';
import { round, roundSummary, snapshotter, sumCpu, type Proc } from './snapshot.js';
import { CollectionWatch } from './watch.js';

const opts = parseOptions();
if (opts.help) {
  process.stdout.write(help);
  process.exit(0);
}

const log = (msg: string) => process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

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
    // As helm install does on a cluster with MutatingAdmissionPolicy (see docs/performance.md).
    await installFinalizerPolicy(cp);
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
          `--status-report-interval=${opts.statusReportInterval}`,
        ],
        join(dir, `agent-${p}.log`),
        nodeFlags,
        { KUBENOVA_API_KEEPALIVE: String(opts.agentKeepalive) },
      );
      agents.push(agent);
      processes.push(agent);
    }
    const exitedEarly = () => {
      const dead = processes.find(hasExited);
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
      // 300 hosts took 116 s on a busy machine: allow 0.6 s per host, 2 minutes at least.
      Math.max(120_000, opts.hosts * 600),
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
    const agentLogs = agents.map((_, i) => join(dir, `agent-${i}.log`));
    const snapshot = snapshotter(
      cp,
      [...servers, ...kubenova, { name: 'bench', pid: process.pid }],
      agentLogs,
      invariants,
    );
    const phases: Phases = {
      opts,
      client,
      instances,
      migrations,
      snapshot: () => snapshot(),
      crashed,
      log,
      invariants,
    };
    const idle = await measureIdle(phases);

    // --- The pods referee's Nodes, as many as hosts, each with a ComputeNode's allocatable ----
    let referee: PodsReferee | undefined;
    if (opts.pods) {
      const node = (await kube.computeNodes.list()).items[0];
      const flavor = await client.json<{ spec: FlavorSpec }>('GET', `${GROUP_PATH}/flavors/${opts.bootFlavor}`);
      const a = node?.status?.allocatable;
      if (!a) throw new Error('pods referee: no ComputeNode with status.allocatable to copy');
      referee = new PodsReferee({
        cp,
        client,
        dir,
        nodes: opts.hosts,
        allocatable: { cpu: String(a.vcpus), memory: `${a.memoryMiB}Mi`, 'ephemeral-storage': `${a.diskGiB}Gi` },
        requests: {
          cpu: String(flavor.spec.vcpus),
          memory: `${flavor.spec.memoryMiB}Mi`,
          'ephemeral-storage': `${flavor.spec.rootDiskGiB + (flavor.spec.ephemeralDiskGiB ?? 0)}Gi`,
        },
        concurrency: opts.concurrency,
        timeoutMs: opts.timeoutMs,
        log,
      });
      await referee.prepare();
    }

    // --- Interleaved rounds: kubenova's boots, the hosts emptied, the referee's pods ---------
    const rounds: {
      figures: RoundFigures;
      boot: BootRound['boot'];
      cpuMsPerBootByComponent: Record<string, number>;
      pods?: PodRound;
    }[] = [];
    const deletes: Awaited<ReturnType<typeof deleteInstances>>[] = [];
    let sample: Awaited<ReturnType<typeof resizeAndMigrate>> | undefined;
    let openLoop: OpenLoopRate[] = [];
    let stuck = 0;
    for (let r = 0; r < opts.repeat && crashed.length === 0; r++) {
      const b = await bootRound(phases, r);
      stuck += b.stuck;
      const names = [...b.names];
      if (r === opts.repeat - 1) {
        // Once, after the last round's boots, while they are still there: the open-loop rates
        // (on top of them) and the resize and migration sample.
        const o = await openLoopRates(phases);
        openLoop = o.openLoop;
        names.push(...o.names);
        stuck += openLoop.reduce((n, x) => n + x.stuck, 0);
        sample = await resizeAndMigrate(phases, b.names);
        stuck += sample.failed;
      }
      const d = await deleteInstances(phases, names);
      deletes.push(d);
      stuck += d.failures.length;
      const figures: RoundFigures = { ...b.figures };
      let pods: PodRound | undefined;
      if (referee && crashed.length === 0) {
        pods = await referee.round(r, opts.instances, snapshot, () => crashed.length > 0);
        figures.podsPerSecond = pods.podsPerSecond;
        figures.p99TimeToReadySeconds = pods.timeToReady.p99;
        figures.writesPerPod = pods.writesPerPod;
        figures.ratioToPods = round(b.figures.bootsPerSecond / pods.podsPerSecond, 3);
        log(`round ${r + 1}: boots/s over pods/s = ${figures.ratioToPods}`);
      }
      rounds.push({ figures, boot: b.boot, cpuMsPerBootByComponent: b.cpuMsPerBootByComponent, pods });
    }
    await referee?.close();

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
    const cpuSecondsTotal = Object.fromEntries(
      [...servers, ...kubenova, { name: 'bench', pid: process.pid }].map((p) => [
        p.name,
        round(cpuSeconds(p.pid) ?? NaN, 2),
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
    // The top-level figures are the medians over the rounds; `spread` has each one's min and max.
    const spreads = summarizeRounds(rounds.map((r) => r.figures));
    const median = (k: keyof RoundFigures) => spreads[k]?.median ?? NaN;
    const mid =
      rounds[
        medianRound(
          rounds.map((r) => r.figures),
          'bootsPerSecond',
        )
      ];
    const bootsPerSecond = median('bootsPerSecond');
    const limit = limits.filter((l) => l.keepAlive).reduce((a, b) => (b.writesPerSecond > a.writesPerSecond ? b : a));
    const ratio = bootsPerSecond / limit.bootsPerSecond;
    const limitCpuMsPerBoot = (1000 * sumCpu(limit.cpuSeconds)) / Math.max(1, limit.boots - limit.errors);
    const deleteTimes = deletes.flatMap((d) => d.times);
    const totalStuck =
      stuck + leftoverClaims.length + (crashed.length ? opts.instances * opts.repeat - deleteTimes.length : 0);
    const operatorPeak = peak.operator ?? NaN;
    const result = {
      kind: 'kubenova-bench/v2',
      // The headline figures: medians over the rounds (see docs/performance.md).
      writesPerBoot: median('writesPerBoot'),
      conflictsPerBoot: median('conflictsPerBoot'),
      agentWatchEventsPerBoot: median('agentWatchEventsPerBoot'),
      bootsPerSecond,
      podsPerSecond: median('podsPerSecond'),
      ratioToPods: median('ratioToPods'),
      p99TimeToActiveSeconds: median('p99TimeToActiveSeconds'),
      p99TimeToReadySeconds: median('p99TimeToReadySeconds'),
      writesPerPod: median('writesPerPod'),
      invariantViolations: report.violations.length,
      stuck: totalStuck,
      operatorPeakRssMiB: round(operatorPeak, 1),
      cpuMsPerBootByComponent: mid?.cpuMsPerBootByComponent ?? {},
      openLoop,
      /** The highest open-loop rate whose p99 time-to-active stayed at or under 5 s. */
      openLoopMaxRateP99Under5s: Math.max(0, ...openLoop.filter((o) => o.p99 <= 5).map((o) => o.rate)),
      /** Each figure's median, min and max over the rounds, and every round's value. */
      spread: spreads,
      rounds: rounds.map((r) => ({ figures: r.figures, boot: r.boot, pods: r.pods })),
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
      // Where results go is this machine's business, not the result's.
      options: { ...opts, resultsDir: undefined, help: undefined },
      registerSeconds: round(registerSeconds, 2),
      idle,
      /** The round whose boots per second was the median, in full (every round's is in `rounds`). */
      boot: mid?.boot ?? ({} as BootRound['boot']),
      pods: mid?.pods,
      sample,
      delete: {
        deleted: deleteTimes.length,
        seconds: round(
          deletes.reduce((s, d) => s + d.seconds, 0),
          2,
        ),
        time: roundSummary(summarize(deleteTimes)),
        failures: deletes.flatMap((d) => d.failures).slice(0, 20),
        claimsLeftAfter60s: deletes.map((d) => d.claimsLeftAfter60s),
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
        cpuNormalizedRatio: round(limitCpuMsPerBoot / (mid?.boot.cpuMsPerBoot ?? NaN), 3),
      },
      cpuSecondsTotal,
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
      stuckTasks: totalStuck,
      targets: {
        allActive: rounds.every((r) => r.boot.active === opts.instances),
        zeroViolations: report.violations.length === 0,
        zeroStuck: totalStuck === 0 && crashed.length === 0,
        writesPerBootAtMost5: median('writesPerBoot') <= 5,
        conflictsPerBootAtMost005: median('conflictsPerBoot') <= 0.05,
        ...(opts.pods ? { ratioToPodsAtLeast05: median('ratioToPods') >= 0.5 } : {}),
        operatorPeakRssAtMost512MiB: operatorPeak <= 512,
      },
    };
    mkdirSync(opts.resultsDir, { recursive: true });
    const stamp = startedAt
      .toISOString()
      .replace(/[:.]/g, '-')
      .replace(/-\d{3}Z$/, 'Z');
    const file = join(opts.resultsDir, `${stamp}-${opts.hosts}x${opts.instances}.json`);
    // Written under the ignored *.tmp.json name first, so a half-written result is never picked up.
    writeFileSync(`${file.slice(0, -5)}.tmp.json`, `${JSON.stringify(result, null, 2)}\n`);
    renameSync(`${file.slice(0, -5)}.tmp.json`, file);
    process.stdout.write(`\n${formatTable(result)}\n\nresults: ${file}\n`);
    if (opts.cpuProf) {
      keepDir = true;
      log(`CPU profiles in ${profDir}: node dist/bench/profile.js ${profDir}/<file>.cpuprofile`);
    }
    if (totalStuck > 0 || report.violations.length > 0) keepDir = true;
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

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
