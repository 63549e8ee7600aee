// `npm run bench:write-cost`: what one status write of a booted Instance and of a host's
// ComputeNode costs kube-apiserver in CPU, sent as a node agent is (its service account, its node
// named in the token), in four setups: the CRD schemas as shipped (status one atomic unit for
// managed fields); their status tracked field by field, as before; their status left opaque
// (x-kubernetes-preserve-unknown-fields, only the fields that field selectors and CEL rules name
// still declared); and as shipped with the chart's node-agent admission policy, which a real
// install evaluates on every agent write and `npm run bench` does not (its simulated hosts have
// no pods, so no node-bound tokens). A custom resource's write is decoded, pruned, defaulted and
// checked field by field, so its cost follows the fields the object carries: this separates that
// cost from the rest of a boot, on a local control plane with nothing else running.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { Agent, request } from 'undici';
import { GROUP, type ComputeNodeStatus, type InstanceStatus } from '../common/api/types.js';
import { sleep } from '../common/runtime/sleep.js';
import { ensureBinaries } from '../devenv/controlplane/binaries.js';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { renderChartTemplate, repoRoot } from '../devenv/components.js';
import { cpuSeconds, findPids, median } from './measure.js';

const WRITES = Number(process.env.WRITES ?? 2000);
const CLIENTS = 8;
const REPEATS = Number(process.env.REPEATS ?? 3);

type Schema = { type?: string; description?: string; properties?: Record<string, Schema> } & Record<string, unknown>;
type Crd = {
  metadata: { name: string };
  spec: { group: string; versions: { schema: { openAPIV3Schema: Schema } }[] };
};

interface Subject {
  plural: 'instances' | 'computenodes';
  kind: 'Instance' | 'ComputeNode';
  namespaced: boolean;
  /** Status fields a selectable field or a CEL rule names: an opaque status keeps them declared. */
  declared: (status: Record<string, Schema>) => Record<string, Schema>;
  /** The status as kubenova leaves it on `host`; each write changes one timestamp in it. */
  status: (host: string, at: string) => InstanceStatus | ComputeNodeStatus;
  /** The merge patch one write sends, as the agent on `host` sends it. */
  patch: (host: string, at: string) => { status: InstanceStatus | ComputeNodeStatus };
}

const T0 = '2026-01-01T00:00:00.000Z';

/** A booted Instance: the operator's scheduling and flavor, the agent's active write. */
function bootedInstance(host: string, at: string): InstanceStatus {
  return {
    vmState: 'active',
    taskState: '',
    powerState: 'running',
    host,
    launchedAt: T0,
    observedGeneration: 1,
    flavor: { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 },
    scheduling: { attempts: 1, selectedHost: host, triedHosts: [host] },
    guest: { vcpus: 1, memoryKiB: 2097152, diskBytes: 21474836480, marker: 'ffd2ae511b34dbee', reportedAt: at },
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Running', message: `running on ${host}`, lastTransitionTime: T0 },
      {
        type: 'Scheduled',
        status: 'True',
        reason: 'Scheduled',
        message: `placed on ${host}`,
        lastTransitionTime: T0,
      },
    ],
  };
}

/** A host holding ten instances, as its agent writes it on each claim (the whole status). */
function hostWithTenClaims(_host: string, at: string): ComputeNodeStatus {
  const claims = Array.from({ length: 10 }, (_, k) => ({
    consumer: `0b1c2d3e-0000-4000-8000-00000000${String(k).padStart(4, '0')}`,
    kind: 'instance' as const,
    instance: `tenant-${k % 5}/web-${k}`,
    vcpus: 1,
    memoryMiB: 2048,
    diskGiB: 20,
    createdAt: T0,
  }));
  return {
    capacity: { vcpus: 8, memoryMiB: 16384, diskGiB: 200 },
    allocatable: { vcpus: 32, memoryMiB: 15872, diskGiB: 200 },
    allocated: { vcpus: 10, memoryMiB: 20480, diskGiB: 200 },
    claims,
    usage: { vcpus: '10/32', memory: '20480/15872Mi', disk: '200/200Gi' },
    heartbeatTime: at,
    driver: 'fake',
    migrationEndpoint: '10.0.0.1:7443',
    conditions: [
      { type: 'Ready', status: 'True', reason: 'AgentReady', message: 'posting heartbeats', lastTransitionTime: T0 },
    ],
  };
}

const SUBJECTS: Subject[] = [
  {
    plural: 'instances',
    kind: 'Instance',
    namespaced: true,
    declared: (s) => ({
      host: s.host!,
      taskState: s.taskState!,
      vmState: s.vmState!,
      scheduling: opaque(s.scheduling!, { selectedHost: s.scheduling!.properties!.selectedHost! }),
    }),
    status: bootedInstance,
    patch: (_host, at) => ({ status: { guest: { reportedAt: at } } }),
  },
  {
    plural: 'computenodes',
    kind: 'ComputeNode',
    namespaced: false,
    declared: (s) => ({ capacity: s.capacity!, allocated: s.allocated! }),
    status: hostWithTenClaims,
    patch: (host, at) => ({ status: hostWithTenClaims(host, at) }),
  },
];

function opaque(schema: Schema, properties: Record<string, Schema>): Schema {
  return { type: 'object', description: schema.description, 'x-kubernetes-preserve-unknown-fields': true, properties };
}

const VARIANTS = {
  shipped: (_subject: Subject, schema: Schema) => schema,
  'opaque status': (subject: Subject, schema: Schema) => {
    const status = schema.properties!.status!;
    return {
      ...schema,
      properties: { ...schema.properties, status: opaque(status, subject.declared(status.properties!)) },
    };
  },
  'status field by field': (_subject: Subject, schema: Schema) => {
    const { 'x-kubernetes-map-type': _atomic, ...status } = schema.properties!.status!;
    return { ...schema, properties: { ...schema.properties, status } };
  },
  'shipped + node-agent policy': (_subject: Subject, schema: Schema) => schema,
} as const;
type Variant = keyof typeof VARIANTS;
const WITH_POLICY: Variant = 'shipped + node-agent policy';

/** The subject's CRD under a group of its own per variant, so all are served side by side. */
function crdFor(subject: Subject, variant: Variant, group: string): Crd {
  const file = join(repoRoot, 'crds', `${subject.plural}.${GROUP}.yaml`);
  const crd = yaml.load(readFileSync(file, 'utf8')) as Crd;
  crd.metadata.name = `${subject.plural}.${group}`;
  crd.spec.group = group;
  for (const v of crd.spec.versions) v.schema.openAPIV3Schema = VARIANTS[variant](subject, v.schema.openAPIV3Schema);
  return crd;
}

type PolicyDoc = {
  kind: string;
  metadata: { name: string };
  spec: { matchConstraints?: { resourceRules: { apiGroups: string[] }[] }; matchConditions?: { expression: string }[] };
};

/**
 * The chart's node-agent admission policy as `helm template` renders it, matching `groups`
 * instead of kubenova's, and the user they apply to (the agent's service account).
 */
function nodeAgentPolicy(groups: string[]): { manifests: PolicyDoc[]; agentUser: string } {
  const rendered = renderChartTemplate(ensureBinaries().helm, 'templates/node-agent-admission-policy.yaml');
  // The policy on ComputeNodes, Instances and Migrations (the others are about Events and Leases).
  const manifests = yaml
    .loadAll(rendered)
    .filter((d): d is PolicyDoc => d !== null && typeof d === 'object')
    .filter((d) => d.metadata.name.endsWith('-own-host'));
  for (const d of manifests) for (const rule of d.spec.matchConstraints?.resourceRules ?? []) rule.apiGroups = groups;
  const condition = manifests
    .flatMap((d) => d.spec.matchConditions ?? [])
    .map((c) => c.expression)
    .join(' ');
  const agentUser = /request\.userInfo\.username == "([^"]+)"/.exec(condition)?.[1];
  if (!agentUser) throw new Error('the rendered node-agent policy names no agent user in its matchConditions');
  return { manifests, agentUser };
}

const hostName = (k: number) => `host-${String(k).padStart(4, '0')}`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-write-cost-'));
  const cp = await ControlPlane.start({ dir });
  const agent = new Agent({ connect: { ca: readFileSync(cp.caPath) } });
  try {
    const [apiserver] = findPids('kube-apiserver', dir);
    if (apiserver === undefined) throw new Error(`no kube-apiserver process found for ${dir}`);
    const cases = SUBJECTS.flatMap((subject) =>
      (Object.keys(VARIANTS) as Variant[]).map((variant, i) => {
        const group = `v${i}.write-cost.${GROUP}`;
        const path = `/apis/${group}/v1alpha1/${subject.namespaced ? 'namespaces/default/' : ''}${subject.plural}`;
        return { subject, variant, group, path, ms: [] as number[] };
      }),
    );
    const policy = nodeAgentPolicy(cases.filter((c) => c.variant === WITH_POLICY).map((c) => c.group));
    /** As the admin, or (`host` given) as the agent of that host, the way its bound token names it. */
    const send = async (method: 'POST' | 'PATCH', path: string, body: unknown, host?: string) => {
      const as = host
        ? { 'impersonate-user': policy.agentUser, 'impersonate-extra-authentication.kubernetes.io%2Fnode-name': host }
        : {};
      const contentType = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      const res = await request(cp.server + path, {
        method,
        dispatcher: agent,
        headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': contentType, ...as },
        body: JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
    };
    for (const c of cases)
      cp.kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(crdFor(c.subject, c.variant, c.group)));
    cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    // Every case writes as the agent, so they differ only in schema and policy.
    const agentRole = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'write-cost-agent' },
      rules: [{ apiGroups: cases.map((c) => c.group), resources: ['*'], verbs: ['*'] }],
    };
    const agentBinding = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'write-cost-agent' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'write-cost-agent' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: policy.agentUser }],
    };
    for (const m of [agentRole, agentBinding, ...policy.manifests]) cp.kubectl(['apply', '-f', '-'], JSON.stringify(m));
    for (const c of cases) {
      for (let k = 0; k < CLIENTS; k++) {
        const host = hostName(k);
        const spec = c.subject.kind === 'Instance' ? { flavor: 'm1.small', image: 'cirros' } : {};
        await send('POST', c.path, {
          apiVersion: `${c.group}/v1alpha1`,
          kind: c.subject.kind,
          metadata: { name: host },
          spec,
        });
        await send('PATCH', `${c.path}/${host}/status`, { status: c.subject.status(host, T0) });
      }
    }
    // A policy is in effect some time after it is created: wait until it refuses a write it must.
    const probe = cases.find((c) => c.variant === WITH_POLICY && c.subject.kind === 'ComputeNode')!;
    for (let deadline = Date.now() + 60_000; ;) {
      // Only the policy's own answer counts: any other failure is the tool's and ends it.
      const refused = await send('PATCH', `${probe.path}/${hostName(0)}/status`, { status: {} }, hostName(1)).then(
        () => false,
        (err: unknown) => {
          if (/: 403 .*-own-host' denied request/.test(String(err))) return true;
          throw err;
        },
      );
      if (refused) break;
      if (Date.now() > deadline) throw new Error('the node-agent policy was not in effect 60 s after it was applied');
      await sleep(250);
    }
    let tick = 0;
    for (let r = 0; r < REPEATS; r++) {
      for (const c of cases) {
        const before = cpuSeconds(apiserver)!;
        let sent = 0;
        await Promise.all(
          Array.from({ length: CLIENTS }, async (_, k) => {
            const host = hostName(k);
            while (sent < WRITES) {
              sent++;
              const at = new Date(Date.parse(T0) + ++tick * 1000).toISOString();
              await send('PATCH', `${c.path}/${host}/status`, c.subject.patch(host, at), host);
            }
          }),
        );
        c.ms.push(((cpuSeconds(apiserver)! - before) * 1000) / WRITES);
      }
    }
    console.log(
      `kube-apiserver CPU per status write as a node agent (ms), median of ${REPEATS} interleaved runs of ${WRITES}`,
    );
    for (const c of cases) {
      const spread = `${Math.min(...c.ms).toFixed(2)} to ${Math.max(...c.ms).toFixed(2)}`;
      console.log(`  ${c.subject.kind.padEnd(12)} ${c.variant.padEnd(28)} ${median(c.ms).toFixed(2)} (${spread})`);
    }
  } finally {
    await agent.close();
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
