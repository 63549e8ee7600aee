// The pods referee: what Kubernetes itself does with the same work on the same API server.
// As many fake Nodes as kubenova has hosts, each with a ComputeNode's allocatable; kube-scheduler
// (built from the pinned Kubernetes, its client's QPS raised, no leader election) places pods
// on them and KWOK plays their kubelets (Running and Ready at once, heartbeats with a Lease).
// Pods with the boot flavor's requests are created by the benchmark's own client in the same
// closed loop the boots use, each timed from its create until a watch shows it Running and
// Ready. kube-scheduler and KWOK run only during a pods round, so they cost kubenova's boots
// nothing, while kubenova's operator and agents idle on (heartbeats) through the pods rounds.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureNodeBinaries } from '../devenv/controlplane/binaries.js';
import type { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { hasExited, startProcess, type ManagedProcess } from '../devenv/controlplane/processes.js';
import { ensureKwok } from '../devenv/kwok/kwok.js';
import { ApiError, type HttpClient } from './http.js';
import { closedLoop, createAndWait, forEachConcurrently, type CreateAndWait, type Outcome } from './loops.js';
import { MUTATING, summarize, sumCounts } from './measure.js';
import { perItem, round, roundSummary, sortedObject, type Proc, type Snapshot } from './snapshot.js';
import { CollectionWatch } from './watch.js';

export const POD_NAMESPACE = 'bench-pods';
const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';
const NODE_LABEL = 'kubenova-bench/referee';

interface Pod {
  metadata: { name: string; resourceVersion?: string };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

interface Node {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

const podReady = (p: Pod | undefined) =>
  p?.status?.phase === 'Running' &&
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const podEnded = (p: Pod | undefined) => podReady(p) || p?.status?.phase === 'Failed';

/** Kubernetes quantities for one host's allocatable and one boot's requests. */
export interface PodResources {
  cpu: string;
  memory: string;
  'ephemeral-storage': string;
}

export interface RefereeOptions {
  cp: ControlPlane;
  client: HttpClient;
  dir: string;
  nodes: number;
  /** A ComputeNode's allocatable, as the Nodes' capacity and allocatable (pods: 110, the kubelet's default). */
  allocatable: PodResources;
  /** The boot flavor, as each pod's requests. */
  requests: PodResources;
  concurrency: number;
  timeoutMs: number;
  log: (msg: string) => void;
}

/** Writes on kubenova's own resources: its operator and agents idling on during a pods round. */
const KUBENOVA_RESOURCE =
  /^\S+ (instances|migrations|computenodes|flavors|computequotas|servergroups|networks|ports|ipallocations)(\/|$)/;

export class PodsReferee {
  private readonly pods: CollectionWatch<Pod>;
  private binaries?: { kubeScheduler: string; kwok: string; stages: string };
  private readonly schedulerConfig: string;

  constructor(private readonly o: RefereeOptions) {
    this.pods = new CollectionWatch<Pod>(o.client, `/api/v1/namespaces/${POD_NAMESPACE}/pods`);
    this.schedulerConfig = join(o.dir, 'kube-scheduler.yaml');
  }

  /** Builds kube-scheduler and KWOK if they are not yet (minutes, once), makes the namespace and the Nodes. */
  async prepare(): Promise<void> {
    this.o.log('pods referee: finding kube-scheduler and KWOK (each built on first use: several minutes, once)');
    const nodeBinaries = ensureNodeBinaries();
    const kwok = ensureKwok();
    this.binaries = { kubeScheduler: nodeBinaries.kubeScheduler, ...kwok };
    // JSON is YAML: the scheduler's client may send 500 requests/s (burst 1000) instead of 50/100.
    writeFileSync(
      this.schedulerConfig,
      JSON.stringify({
        apiVersion: 'kubescheduler.config.k8s.io/v1',
        kind: 'KubeSchedulerConfiguration',
        clientConnection: { kubeconfig: this.o.cp.kubeconfigPath, qps: 500, burst: 1000 },
        leaderElection: { leaderElect: false },
      }),
    );
    await this.o.client.json('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: POD_NAMESPACE },
    });
    const resources = { ...this.o.allocatable, pods: '110' };
    const taint = { key: KWOK_ANNOTATION, value: 'fake', effect: 'NoSchedule' };
    for (let i = 0; i < this.o.nodes; i++) {
      const name = `kwok-${String(i).padStart(3, '0')}`;
      await this.o.client.json('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { [KWOK_ANNOTATION]: 'fake' },
          labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', type: 'kwok', [NODE_LABEL]: 'true' },
        },
        // Only pods that tolerate it land here (the benchmark's do).
        spec: { taints: [taint] },
        status: { capacity: resources, allocatable: resources },
      });
      // The API server taints every new Node not-ready (TaintNodesByCondition); the node lifecycle
      // controller, which would lift it once KWOK reports Ready, does not run here: lift it now.
      await this.o.client.json(
        'PATCH',
        `/api/v1/nodes/${name}`,
        { spec: { taints: [taint] } },
        'application/merge-patch+json',
      );
    }
    await this.pods.start();
  }

  private start(round: number): ManagedProcess[] {
    const b = this.binaries!;
    return [
      startProcess({
        name: 'kube-scheduler',
        command: b.kubeScheduler,
        args: [`--config=${this.schedulerConfig}`, '--secure-port=0', '--v=1'],
        logFile: join(this.o.dir, `kube-scheduler-${round}.log`),
      }),
      startProcess({
        name: 'kwok',
        command: b.kwok,
        args: [
          `--config=${b.stages}`,
          `--kubeconfig=${this.o.cp.kubeconfigPath}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}=fake`,
          // Pod addresses come from here: room for every pod of a round.
          '--cidr=10.0.0.0/8',
          '--node-ip=10.255.255.254',
        ],
        logFile: join(this.o.dir, `kwok-${round}.log`),
      }),
    ];
  }

  private spec(): CreateAndWait<Pod> {
    return {
      client: this.o.client,
      watch: this.pods,
      path: `/api/v1/namespaces/${POD_NAMESPACE}/pods`,
      body: (name) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: POD_NAMESPACE },
        spec: {
          containers: [{ name: 'guest', image: 'fake', resources: { requests: this.o.requests } }],
          tolerations: [{ key: KWOK_ANNOTATION, operator: 'Exists', effect: 'NoSchedule' }],
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 0,
        },
      }),
      ended: podEnded,
      ok: podReady,
      timeoutMs: this.o.timeoutMs,
    };
  }

  /**
   * One round: kube-scheduler and KWOK started, a warm-up pod Ready (not timed), then `count`
   * pods in the closed loop between two snapshots; every pod deleted and both stopped.
   */
  async round(
    round: number,
    count: number,
    snapshot: (extra: readonly Proc[]) => Promise<Snapshot>,
    stop: () => boolean,
  ) {
    const procs = this.start(round);
    const extra = procs.map((p) => ({ name: p.name, pid: p.pid }));
    try {
      await this.waitNodesReady(procs);
      const warm = await createAndWait({ ...this.spec(), timeoutMs: 120_000 }, `warmup-${round}`);
      if (warm.kind !== 'ok') throw new Error(`pods referee: the warm-up pod did not become Ready (${warm.kind})`);
      const names = Array.from({ length: count }, (_, i) => `p${round}-${String(i).padStart(5, '0')}`);
      const before = await snapshot(extra);
      const outcomes = await closedLoop(this.spec(), names, this.o.concurrency, stop);
      const after = await snapshot(extra);
      const result = podFigures(outcomes, count, before, after);
      this.o.log(
        `pods round ${round + 1}: ${result.ready}/${count} Ready in ${result.seconds.toFixed(1)} s (${result.podsPerSecond.toFixed(1)}/s), p99 ${result.timeToReady.p99.toFixed(2)} s, ${result.writesPerPod.toFixed(2)} writes per pod`,
      );
      await this.deleteAll();
      return result;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 10_000)));
    }
  }

  private async waitNodesReady(procs: ManagedProcess[]): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const dead = procs.find(hasExited);
      if (dead) throw new Error(`pods referee: ${dead.name} exited; see ${join(this.o.dir, `${dead.name}-*.log`)}`);
      const list = await this.o.client.json<{ items: Node[] }>(
        'GET',
        `/api/v1/nodes?labelSelector=${encodeURIComponent(`${NODE_LABEL}=true`)}`,
      );
      const ready = list.items.filter((n) =>
        n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      ).length;
      if (ready >= this.o.nodes) return;
      if (Date.now() > deadline) throw new Error(`pods referee: ${ready}/${this.o.nodes} Nodes Ready after 120 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * Every pod deleted (grace 0: nothing to stop on a fake node), `concurrency` at a time, and
   * waited for until gone. One DeleteCollection of 5,000 pods outlasts a request's timeout.
   */
  private async deleteAll(): Promise<void> {
    const names = [...this.pods.objects.keys()];
    const body = JSON.stringify({ kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 });
    await forEachConcurrently(names, this.o.concurrency, async (name) => {
      try {
        await this.o.client.raw('DELETE', `/api/v1/namespaces/${POD_NAMESPACE}/pods/${name}`, body);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
    });
    const deadline = Date.now() + Math.max(120_000, 100 * names.length);
    while (this.pods.objects.size > 0) {
      if (Date.now() > deadline) throw new Error(`pods referee: ${this.pods.objects.size} pods still there`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The Nodes and the namespace removed. */
  async close(): Promise<void> {
    await this.pods.stop();
    try {
      await this.o.client.raw(
        'DELETE',
        `/api/v1/nodes?labelSelector=${encodeURIComponent(`${NODE_LABEL}=true`)}`,
        JSON.stringify({ kind: 'DeleteOptions', apiVersion: 'v1' }),
      );
      await this.o.client.raw('DELETE', `/api/v1/namespaces/${POD_NAMESPACE}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }
}

/** A pods round's figures, counted as a boot round's are (snapshot.ts). */
function podFigures(outcomes: Outcome<Pod>[], count: number, before: Snapshot, after: Snapshot) {
  const times = outcomes.filter((o) => o.kind === 'ok').map((o) => (o.at - o.start) / 1000);
  const per = perItem(before, after, times.length);
  const s = summarize(times);
  return {
    pods: count,
    ready: times.length,
    seconds: round(per.seconds, 2),
    podsPerSecond: round(times.length / per.seconds, 2),
    timeToReady: roundSummary(s),
    failures: outcomes
      .filter((o) => o.kind !== 'ok')
      .slice(0, 20)
      .map((o) => `${o.name}: ${o.kind === 'stuck' ? o.error : `phase ${o.obj?.status?.phase ?? '?'}`}`),
    failed: outcomes.filter((o) => o.kind !== 'ok').length,
    /** Every write the API server counted during the round, the creates included, per Ready pod. */
    writesPerPod: round(per.writes, 2),
    /** Of which kubenova's idle operator and agents wrote (heartbeats), per pod. */
    kubenovaWritesPerPod: round(
      sumCounts(per.requests, (k) => MUTATING.test(k) && KUBENOVA_RESOURCE.test(k)) / Math.max(1, times.length),
      2,
    ),
    conflictsPerPod: round(per.conflictsPer, 3),
    watchEventsPerPod: round(per.watchEventsPer, 2),
    apiRequests: sortedObject(per.requests),
    cpuMsPerPodByComponent: per.cpuMsByComponent,
    cpuMsPerPod: round(per.cpuMsAll, 1),
    cpuSeconds: per.cpu,
    otherCpuSeconds: per.otherCpuSeconds,
    loadAverage: per.loadAverage,
  };
}

export type PodRound = ReturnType<typeof podFigures>;
