// kubenova's phases of a benchmark run: a round of closed-loop boots, the open-loop rates, the
// resize and migration sample, and deleting instances until the hosts hold nothing.
import { performance } from 'node:perf_hooks';
import type { Instance, Migration } from '../common/api/types.js';
import type { HttpClient } from './http.js';
import { closedLoop, forEachConcurrently, openLoop, type CreateAndWait, type Outcome } from './loops.js';
import { MUTATING, diffCounts, isLeaseWrite, summarize, sumCounts } from './measure.js';
import type { Options } from './options.js';
import { perItem, round, roundSummary, sortedObject, type Snapshot } from './snapshot.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { TimeoutError, type CollectionWatch } from './watch.js';

export const GROUP_PATH = '/apis/compute.kubenova.io/v1alpha1';
export const NAMESPACE = 'bench';
const MERGE = 'application/merge-patch+json';

export const activeAndReady = (i: Instance | undefined) =>
  i?.status?.vmState === 'active' &&
  !i.status.taskState &&
  i.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const failed = (i: Instance | undefined) => i?.status?.vmState === 'error';
const settled = (i: Instance | undefined) => activeAndReady(i) && !i?.status?.migration;
const migrationFinished = (m: Migration | undefined) =>
  m?.status?.status === 'finished' || m?.status?.status === 'error';
const migrationConfirmed = (m: Migration | undefined) =>
  m?.status?.status === 'confirmed' || m?.status?.status === 'error';

export interface Phases {
  opts: Options;
  client: HttpClient;
  instances: CollectionWatch<Instance>;
  migrations: CollectionWatch<Migration>;
  snapshot: () => Promise<Snapshot>;
  /** Components that died: a run with any ends every phase early. */
  crashed: string[];
  log: (msg: string) => void;
  /** The claim-invariant sampler: it lists every ComputeNode each interval, so the idle measurement pauses it. */
  invariants?: { pause(): Promise<void>; resume(): Promise<void> };
}

export interface IdleCost {
  seconds: number;
  /** Every write the API server counted, per second: heartbeats (Lease renewals, status reports), audits, checks. */
  writesPerSecond: number;
  writes: Record<string, number>;
  /** CPU milliseconds each component spent per second (thousandths of a core), and per host and second. */
  cpuMsPerSecond: Record<string, number>;
  cpuMsPerHostSecond: number;
}

/**
 * What the registered hosts cost while nothing happens, before the first boot: the part of the
 * cost that grows with hosts, not with boots. One heartbeat interval (15 s at most) is left to the
 * registrations to settle first; the invariant sampler, the bench's own reader of every ComputeNode, rests.
 */
export async function measureIdle(p: Phases): Promise<IdleCost | undefined> {
  const { idleSeconds, hosts, heartbeatInterval } = p.opts;
  if (idleSeconds <= 0) return undefined;
  await sleep(Math.min(heartbeatInterval, 15) * 1000);
  await p.invariants?.pause();
  const a = await p.snapshot();
  await sleep(idleSeconds * 1000);
  const b = await p.snapshot();
  await p.invariants?.resume();
  const seconds = (b.at - a.at) / 1000;
  const per = perItem(a, b, 1);
  const writes = new Map(
    [...per.requests].filter(([k]) => MUTATING.test(k)).map(([k, v]) => [k, round(v / seconds, 2)]),
  );
  const cpuMsPerSecond = Object.fromEntries(
    Object.entries(per.cpuMsByComponent).map(([k, v]) => [k, round(v / seconds, 1)]),
  );
  const idle: IdleCost = {
    seconds: round(seconds, 1),
    writesPerSecond: round(sumCounts(per.requests, (k) => MUTATING.test(k)) / seconds, 2),
    writes: sortedObject(writes),
    cpuMsPerSecond,
    cpuMsPerHostSecond: round(per.cpuMsAll / seconds / hosts, 3),
  };
  p.log(
    `idle: ${hosts} hosts, ${idle.writesPerSecond} writes/s; CPU ms per second: ` +
      Object.entries(cpuMsPerSecond)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
  );
  return idle;
}

function bootSpec(p: Phases): CreateAndWait<Instance> {
  return {
    client: p.client,
    watch: p.instances,
    path: `${GROUP_PATH}/namespaces/${NAMESPACE}/instances`,
    body: (name) => ({
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name, namespace: NAMESPACE },
      spec: { flavor: p.opts.bootFlavor, image: 'cirros', powerState: 'Running' },
    }),
    ended: (i) => activeAndReady(i) || failed(i),
    ok: activeAndReady,
    timeoutMs: p.opts.timeoutMs,
  };
}

const describeFailure = (o: Outcome<Instance>) =>
  o.kind === 'stuck'
    ? `${o.name}: ${o.error}`
    : `${o.name}: ${o.obj?.status?.vmState} ${o.obj?.status?.fault?.reason ?? ''} ${o.obj?.status?.fault?.message ?? ''}`;

/**
 * One round of closed-loop boots: --instances creates by --concurrency clients, each waiting
 * until a watch shows its instance active and Ready; what they cost, counted by the API server.
 */
export async function bootRound(p: Phases, r: number) {
  const names = Array.from({ length: p.opts.instances }, (_, i) => `b${r}-${String(i).padStart(5, '0')}`);
  const before = await p.snapshot();
  const clientBefore = new Map(p.client.counts);
  const outcomes = await closedLoop(bootSpec(p), names, p.opts.concurrency, () => p.crashed.length > 0);
  const after = await p.snapshot();
  const ok = outcomes.filter((o) => o.kind === 'ok');
  const booted = ok.length;
  const t0 = before.at;
  /** [seconds since the round began when the create was sent, time to active], per boot. */
  const timeline = ok
    .map((o): [number, number] => [round((o.start - t0) / 1000, 2), round((o.at - o.start) / 1000, 3)])
    .sort((a, b) => a[0] - b[0]);
  const timeToActive = ok.map((o) => (o.at - o.start) / 1000);
  const serverTimeToActive: number[] = [];
  let reschedules = 0;
  for (const { obj } of ok) {
    const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
    const created = Date.parse(obj.metadata.creationTimestamp as unknown as string);
    if (ready && Number.isFinite(created))
      serverTimeToActive.push((Date.parse(ready.lastTransitionTime) - created) / 1000);
    reschedules += Math.max(0, (obj.status?.scheduling?.attempts ?? 1) - 1);
  }
  const per = perItem(before, after, booted);
  // What kubenova itself asked of the API server: everything the server counted, less the
  // bench's own requests (its creates, its watches' lists) and the invariant watcher's
  // ComputeNode lists. Non-resource paths (/metrics) are left out.
  const own = diffCounts(new Map(p.client.counts), clientBefore);
  own.set(
    'LIST computenodes',
    (own.get('LIST computenodes') ?? 0) + (after.invariantSamples - before.invariantSamples),
  );
  const kubenovaRequests = new Map<string, number>();
  for (const [k, v] of per.requests) {
    const n = v - (own.get(k) ?? 0);
    if (n > 0 && !k.endsWith(' ')) kubenovaRequests.set(k, n);
  }
  const n = Math.max(1, booted);
  const bootsPerSecond = booted / per.seconds;
  const failures = outcomes.filter((o) => o.kind !== 'ok').map(describeFailure);
  p.log(
    `boot round ${r + 1}: ${booted}/${p.opts.instances} active in ${per.seconds.toFixed(1)} s (${bootsPerSecond.toFixed(1)}/s), p99 ${summarize(timeToActive).p99.toFixed(2)} s, ${per.writes.toFixed(2)} writes per boot (${per.leaseWrites.toFixed(2)} of them Lease renewals), ${failures.length} failed or stuck`,
  );
  return {
    names,
    figures: {
      writesPerBoot: round(per.writes, 2),
      conflictsPerBoot: round(per.conflictsPer, 3),
      agentWatchEventsPerBoot: round(per.agentWatchEventsPer, 2),
      bootsPerSecond: round(bootsPerSecond, 2),
      p99TimeToActiveSeconds: round(summarize(timeToActive).p99, 3),
    },
    stuck: outcomes.filter((o) => o.kind === 'stuck').length,
    cpuMsPerBootByComponent: per.cpuMsByComponent,
    boot: {
      round: r,
      instances: p.opts.instances,
      active: booted,
      seconds: round(per.seconds, 2),
      bootsPerSecond: round(bootsPerSecond, 2),
      timeToActive: roundSummary(summarize(timeToActive)),
      // The first `concurrency` creates go out at once into cold processes; the rest is steady state.
      timeToActiveAfterFirstBurst: roundSummary(summarize(timeline.slice(p.opts.concurrency).map(([, v]) => v))),
      serverTimeToActive: roundSummary(summarize(serverTimeToActive)),
      reschedules,
      failures: failures.slice(0, 20),
      failed: failures.length,
      timeline,
      apiRequestsPerBoot: round(sumCounts(kubenovaRequests) / n, 2),
      apiWritesPerBoot: round(sumCounts(kubenovaRequests, (k) => MUTATING.test(k)) / n, 2),
      leaseWritesPerBoot: round(per.leaseWrites, 2),
      apiRequests: sortedObject(kubenovaRequests),
      watchEventsPerBoot: round(per.watchEventsPer, 2),
      watchEvents: sortedObject(diffCounts(after.watchEvents, before.watchEvents)),
      conflicts: sortedObject(per.conflicts),
      agentWatchEvents: sortedObject(per.agentWatchEvents),
      benchRequests: sortedObject(own),
      cpuSeconds: per.cpu,
      otherCpuSeconds: per.otherCpuSeconds,
      loadAverage: per.loadAverage,
      cpuMsPerBoot: round(per.cpuMsAll, 1),
    },
  };
}

export type BootRound = Awaited<ReturnType<typeof bootRound>>;

export interface OpenLoopRate {
  rate: number;
  p50: number;
  p99: number;
  booted: number;
  failed: number;
  stuck: number;
}

/**
 * Open loop: creates at each fixed rate for --open-loop-seconds, whatever the answers. A closed
 * loop's latency is set by its concurrency (Little's law); arrivals at a fixed rate show what a
 * boot takes at that load, and from which rate kubenova falls behind. Returns the names created.
 */
export async function openLoopRates(p: Phases): Promise<{ names: string[]; openLoop: OpenLoopRate[] }> {
  const rates: OpenLoopRate[] = [];
  const all: string[] = [];
  for (const [r, rate] of p.opts.openLoopRates.entries()) {
    if (p.crashed.length > 0) break;
    const count = Math.max(1, Math.round(rate * p.opts.openLoopSeconds));
    const names = Array.from({ length: count }, (_, i) => `o${r}-${String(i).padStart(5, '0')}`);
    all.push(...names);
    const outcomes = await openLoop(bootSpec(p), names, rate);
    const times = outcomes.filter((o) => o.kind === 'ok').map((o) => (o.at - o.start) / 1000);
    // An error (NoValidHost when the hosts are full) is an answer, not a stuck task.
    const failedHere = outcomes.filter((o) => o.kind === 'failed').length;
    const stuckHere = outcomes.filter((o) => o.kind === 'stuck').length;
    const s = summarize(times);
    rates.push({
      rate,
      p50: round(s.p50, 3),
      p99: round(s.p99, 3),
      booted: times.length,
      failed: failedHere,
      stuck: stuckHere,
    });
    p.log(
      `open loop ${rate}/s: ${times.length}/${count} active, ${failedHere} in error, ${stuckHere} stuck; p50 ${s.p50.toFixed(2)} s, p99 ${s.p99.toFixed(2)} s`,
    );
  }
  return { names: all, openLoop: rates };
}

/** A --sample of `names` resized and as many others cold-migrated, each confirmed. */
export async function resizeAndMigrate(p: Phases, names: readonly string[]) {
  const { client, instances, migrations, opts } = p;
  const activeNames = names.filter((n) => activeAndReady(instances.objects.get(n)));
  const sampleSize = Math.min(Math.floor(activeNames.length / 2), Math.ceil(opts.instances * opts.sample));
  const resizeNames = activeNames.filter((_, i) => i % 2 === 0).slice(0, sampleSize);
  const migrateNames = activeNames.filter((_, i) => i % 2 === 1).slice(0, sampleSize);
  const before = await p.snapshot();
  const resizeTimes: number[] = [];
  const migrateTimes: number[] = [];
  const confirmTimes: number[] = [];
  const failures: string[] = [];
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
          failures.push(`${migName}: ${f.obj?.status?.status} ${f.obj?.status?.fault?.message ?? ''}`);
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
          failures.push(`${migName}: confirm ended ${c.obj?.status?.status}`);
          return;
        }
        const b = await back;
        confirmTimes.push((Math.max(c.at, b.at) - decided) / 1000);
      } catch (err) {
        finished.catch(() => undefined);
        failures.push(`${migName}: ${err instanceof TimeoutError ? 'stuck' : (err as Error).message}`);
      }
    },
    () => p.crashed.length > 0,
  );
  const after = await p.snapshot();
  const requests = diffCounts(after.requests, before.requests);
  // Every write of the phase per completed move (resize or migration), counted as per boot: the
  // user's request and confirm included, and whatever heartbeats fell into the phase.
  const moves = Math.max(1, resizeTimes.length + migrateTimes.length);
  const writesPerMove = round(sumCounts(requests, (k) => MUTATING.test(k)) / moves, 1);
  const leaseWritesPerMove = round(sumCounts(requests, isLeaseWrite) / moves, 1);
  // What the moves' writes woke in the agents: the source and the destination each hear of
  // every Migration and Instance write of the move, once per watch of theirs that matches.
  const agentWatchEvents = diffCounts(after.agentWatchEvents, before.agentWatchEvents);
  const agentWatchEventsPerMove = round(sumCounts(agentWatchEvents) / moves, 1);
  p.log(
    `sample: ${resizeTimes.length} resized, ${migrateTimes.length} migrated, ${confirmTimes.length} confirmed, ${failures.length} failed or stuck; ${writesPerMove} writes per move (${leaseWritesPerMove} of them Lease renewals), ${agentWatchEventsPerMove} agent watch events per move`,
  );
  return {
    resized: resizeTimes.length,
    migrated: migrateTimes.length,
    confirmed: confirmTimes.length,
    resize: roundSummary(summarize(resizeTimes)),
    migration: roundSummary(summarize(migrateTimes)),
    confirm: roundSummary(summarize(confirmTimes)),
    failures: failures.slice(0, 20),
    failed: failures.length,
    writesPerMove,
    leaseWritesPerMove,
    agentWatchEventsPerMove,
    agentWatchEvents: sortedObject(agentWatchEvents),
    apiRequests: sortedObject(requests),
    cpuSeconds: perItem(before, after, 1).cpu,
  };
}

/**
 * Every instance of `names` that exists deleted, each waited for until gone; then waits until
 * no ComputeNode holds a claim (the hosts are empty for the next phase).
 */
export async function deleteInstances(p: Phases, names: readonly string[]) {
  const before = await p.snapshot();
  const times: number[] = [];
  const failures: string[] = [];
  await forEachConcurrently(
    names.filter((n) => p.instances.objects.has(n)),
    p.opts.concurrency,
    async (name) => {
      const gone = p.instances.waitFor(name, (i) => i === undefined, p.opts.timeoutMs);
      const start = performance.now();
      try {
        await p.client.raw('DELETE', `${GROUP_PATH}/namespaces/${NAMESPACE}/instances/${name}`);
        times.push(((await gone).at - start) / 1000);
      } catch (err) {
        gone.catch(() => undefined);
        failures.push(`${name}: ${err instanceof TimeoutError ? 'stuck (not gone in time)' : (err as Error).message}`);
      }
    },
    () => p.crashed.length > 0,
  );
  const after = await p.snapshot();
  p.log(
    `delete: ${times.length} deleted in ${((after.at - before.at) / 1000).toFixed(1)} s, ${failures.length} failed or stuck`,
  );
  // The hosts empty: no claim left on any ComputeNode (an agent drops its claim after the
  // instance is gone from the API).
  const deadline = Date.now() + 60_000;
  let held = Infinity;
  while (held > 0 && Date.now() < deadline && p.crashed.length === 0) {
    const list = await p.client.json<{ items: { status?: { claims?: unknown[] } }[] }>(
      'GET',
      `${GROUP_PATH}/computenodes`,
    );
    held = list.items.reduce((s, n) => s + (n.status?.claims?.length ?? 0), 0);
    if (held > 0) await new Promise((r) => setTimeout(r, 500));
  }
  return {
    deleted: times.length,
    seconds: round((after.at - before.at) / 1000, 2),
    times,
    failures,
    claimsLeftAfter60s: Number.isFinite(held) ? held : 0,
    cpuSeconds: perItem(before, after, 1).cpu,
  };
}
