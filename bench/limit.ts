// The machine's own limit: how fast this kube-apiserver (and its etcd) accepts the writes one
// kubenova boot makes, when nothing else asks anything of it. A plain client loop replays, on
// throwaway objects, exactly the write sequence of a boot — same objects, same patch bodies,
// same resourceVersion guards — with the same concurrency as the benchmark's boots.
import { Mutex } from '../common/runtime/mutex.js';
import { randomBytes } from 'node:crypto';
import { HttpClient } from './http.js';
import { forEachConcurrently } from './loops.js';

const GROUP_PATH = '/apis/compute.kubenova.io/v1alpha1';
const MERGE = 'application/merge-patch+json';

/**
 * The writes of one boot, in order, as kubenova makes them today (see the code named):
 * every one is counted by the API server's apiserver_request_total.
 */
export const BOOT_WRITES = [
  // The clean-up finalizer comes with the create (the chart's instance-finalizer policy, which
  // the bench installs); without the policy the operator patches it in, one write more.
  { write: 'POST instances', by: 'the user (kubectl apply)' },
  {
    write: 'PATCH instances/status (building/scheduling, selectedHost)',
    by: 'operator: BootConductor (recordAttempt)',
  },
  { write: 'PATCH computenodes/status (claim)', by: 'agent: ResourceTracker.claim' },
  { write: 'PATCH instances/status (host, active)', by: 'agent: InstanceWorker.spawnClaimed' },
] as const;
export const WRITES_PER_BOOT = BOOT_WRITES.length;

export interface LimitResult {
  keepAlive: boolean;
  concurrency: number;
  boots: number;
  writes: number;
  errors: number;
  seconds: number;
  writesPerSecond: number;
  /** writesPerSecond / WRITES_PER_BOOT: the boots per second this API server could take. */
  bootsPerSecond: number;
  /** CPU seconds each server process (and the bench client) spent during the run. */
  cpuSeconds?: Record<string, number>;
  /** CPU seconds every other process on the machine spent meanwhile (colleagues' work). */
  otherCpuSeconds?: number;
  /** When it ran: before kubenova started, or after it stopped. */
  when?: 'before' | 'after';
}

interface Obj {
  metadata: { name: string; resourceVersion?: string; uid?: string };
}

interface ThrowawayNode {
  name: string;
  lock: Mutex;
  resourceVersion: string;
  claims: {
    consumer: string;
    kind: 'instance';
    instance: string;
    vcpus: number;
    memoryMiB: number;
    diskGiB: number;
    createdAt: string;
  }[];
}

const FLAVOR = { name: 'm1.tiny', vcpus: 1, memoryMiB: 512, rootDiskGiB: 1, ephemeralDiskGiB: 0 };
const ALLOCATABLE = { vcpus: 32, memoryMiB: 15872, diskGiB: 200 };

function condition(type: string, status: string, reason: string, message: string, at: string) {
  return { type, status, reason, message, lastTransitionTime: at };
}

function nodeStatus(node: ThrowawayNode, now: string) {
  const allocated = node.claims.reduce(
    (a, c) => ({ vcpus: a.vcpus + c.vcpus, memoryMiB: a.memoryMiB + c.memoryMiB, diskGiB: a.diskGiB + c.diskGiB }),
    { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
  );
  return {
    capacity: { vcpus: 8, memoryMiB: 16384, diskGiB: 200 },
    allocatable: ALLOCATABLE,
    allocated,
    claims: node.claims,
    usage: {
      vcpus: `${allocated.vcpus}/32`,
      memory: `${allocated.memoryMiB}/15872Mi`,
      disk: `${allocated.diskGiB}/200Gi`,
    },
    heartbeatTime: now,
    driver: 'fake',
    conditions: [condition('Ready', 'True', 'AgentReady', `node agent on ${node.name} is posting heartbeats`, now)],
    migrationEndpoint: '127.0.0.1:40000',
  };
}

export class LimitProbe {
  private readonly nodes: ThrowawayNode[] = [];
  private readonly runId = randomBytes(3).toString('hex');

  constructor(
    private readonly client: HttpClient,
    private readonly namespace: string,
    private readonly hosts: number,
  ) {}

  private q = (fieldManager: string) => `?fieldManager=${fieldManager}`;

  /** Creates the namespace and the throwaway ComputeNodes (not timed). */
  async setUp(): Promise<void> {
    await this.client
      .json('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: this.namespace } })
      .catch(() => undefined);
    for (let i = 0; i < this.hosts; i++) {
      const name = `limit-${this.runId}-${String(i).padStart(3, '0')}`;
      const created = await this.client.json<Obj>('POST', `${GROUP_PATH}/computenodes`, {
        apiVersion: 'compute.kubenova.io/v1alpha1',
        kind: 'ComputeNode',
        metadata: { name, labels: { 'bench.kubenova.io/throwaway': 'true' } },
        spec: {},
      });
      const node: ThrowawayNode = {
        name,
        lock: new Mutex(),
        resourceVersion: created.metadata.resourceVersion ?? '',
        claims: [],
      };
      const patched = await this.client.json<Obj>(
        'PATCH',
        `${GROUP_PATH}/computenodes/${name}/status`,
        { metadata: { resourceVersion: node.resourceVersion }, status: nodeStatus(node, new Date().toISOString()) },
        MERGE,
      );
      node.resourceVersion = patched.metadata.resourceVersion ?? '';
      this.nodes.push(node);
    }
  }

  /** Removes every throwaway object (not timed); no operator is there to lift their finalizers. */
  async tearDown(): Promise<void> {
    const base = `${GROUP_PATH}/namespaces/${this.namespace}/instances`;
    const list = await this.client.json<{ items: Obj[] }>('GET', base).catch(() => ({ items: [] as Obj[] }));
    await forEachConcurrently(list.items, 20, async (i) => {
      await this.client
        .json('PATCH', `${base}/${i.metadata.name}`, { metadata: { finalizers: null } }, MERGE)
        .catch(() => undefined);
    });
    for (const n of this.nodes)
      await this.client.raw('DELETE', `${GROUP_PATH}/computenodes/${n.name}`).catch(() => undefined);
    await this.client.raw('DELETE', `/api/v1/namespaces/${this.namespace}`).catch(() => undefined);
  }

  /** One boot's writes, in kubenova's order, each guarded by the resourceVersion it read. */
  private async boot(index: number): Promise<void> {
    const ns = this.namespace;
    const name = `t-${this.runId}-${index}`;
    const base = `${GROUP_PATH}/namespaces/${ns}/instances`;
    const node = this.nodes[index % this.nodes.length]!;
    const host = node.name;
    const t = () => new Date().toISOString();
    let inst = await this.client.json<Obj>('POST', `${base}${this.q('kubenova-bench')}`, {
      apiVersion: 'compute.kubenova.io/v1alpha1',
      kind: 'Instance',
      metadata: { name, namespace: ns },
      spec: { flavor: 'm1.tiny', image: 'cirros', powerState: 'Running' },
    });
    const scheduled = condition('Scheduled', 'True', 'Scheduled', `placed on ${host} (attempt 1)`, t());
    inst = await this.client.json<Obj>(
      'PATCH',
      `${base}/${name}/status${this.q('kubenova-operator')}`,
      {
        metadata: { resourceVersion: inst.metadata.resourceVersion },
        status: {
          vmState: 'building',
          taskState: 'scheduling',
          powerState: 'nostate',
          observedGeneration: 1,
          flavor: FLAVOR,
          scheduling: { attempts: 1, triedHosts: [host], selectedHost: host, claimFailure: null },
          conditions: [scheduled],
        },
      },
      MERGE,
    );
    await node.lock.run(async () => {
      node.claims.push({
        consumer: inst.metadata.uid ?? name,
        kind: 'instance',
        instance: `${ns}/${name}`,
        vcpus: 1,
        memoryMiB: 512,
        diskGiB: 1,
        createdAt: t(),
      });
      const patched = await this.client.json<Obj>(
        'PATCH',
        `${GROUP_PATH}/computenodes/${host}/status${this.q(`kubenova-agent-${host}`)}`,
        { metadata: { resourceVersion: node.resourceVersion }, status: nodeStatus(node, t()) },
        MERGE,
      );
      node.resourceVersion = patched.metadata.resourceVersion ?? '';
    });
    const now = t();
    await this.client.json<Obj>(
      'PATCH',
      `${base}/${name}/status${this.q(`kubenova-agent-${host}`)}`,
      {
        metadata: { resourceVersion: inst.metadata.resourceVersion },
        status: {
          host,
          vmState: 'active',
          taskState: '',
          powerState: 'running',
          launchedAt: now,
          fault: null,
          guest: {
            vcpus: 1,
            memoryKiB: 524288,
            diskBytes: 1073741824,
            marker: randomBytes(16).toString('hex'),
            reportedAt: now,
          },
          conditions: [condition('Ready', 'True', 'Running', `running on ${host}`, now), scheduled],
        },
      },
      MERGE,
    );
  }

  /** `boots` throwaway boots by `concurrency` loops; writes per second over the whole run. */
  async run(boots: number, concurrency: number, offset = 0): Promise<Omit<LimitResult, 'keepAlive'>> {
    let next = 0;
    let errors = 0;
    const started = process.hrtime.bigint();
    const loop = async () => {
      while (next < boots) {
        const i = offset + next++;
        try {
          await this.boot(i);
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, boots) }, loop));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const writes = (boots - errors) * WRITES_PER_BOOT;
    const writesPerSecond = writes / seconds;
    return {
      concurrency,
      boots,
      writes,
      errors,
      seconds,
      writesPerSecond,
      bootsPerSecond: writesPerSecond / WRITES_PER_BOOT,
    };
  }
}
