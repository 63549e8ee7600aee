// `npm run bench:write-cost`: what one status write of a booted Instance and of a host's
// ComputeNode costs kube-apiserver in CPU, with the CRD schemas as shipped and with their status
// left opaque (x-kubernetes-preserve-unknown-fields, only the fields that field selectors and CEL
// rules name still declared). A custom resource's write is decoded, pruned, defaulted and checked
// field by field, so its cost follows the fields the object carries: this separates that cost
// from the rest of a boot, on a local control plane with nothing else running.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { Agent, request } from 'undici';
import { GROUP, type ComputeNodeStatus, type InstanceStatus } from '../common/api/types.js';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { repoRoot } from '../devenv/components.js';
import { cpuSeconds, findPids } from './measure.js';

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
  /** The status as kubenova leaves it; each write changes one timestamp in it. */
  status: (at: string) => InstanceStatus | ComputeNodeStatus;
  /** The merge patch one write sends, as the component that owns it sends it. */
  patch: (at: string) => { status: InstanceStatus | ComputeNodeStatus };
}

const T0 = '2026-01-01T00:00:00.000Z';

/** A booted Instance: the operator's scheduling and flavor, the agent's active write. */
function bootedInstance(at: string): InstanceStatus {
  return {
    vmState: 'active',
    taskState: '',
    powerState: 'running',
    host: 'host-0001',
    launchedAt: T0,
    observedGeneration: 1,
    flavor: { name: 'm1.small', vcpus: 1, memoryMiB: 2048, rootDiskGiB: 20, ephemeralDiskGiB: 0 },
    scheduling: { attempts: 1, selectedHost: 'host-0001', triedHosts: ['host-0001'] },
    guest: { vcpus: 1, memoryKiB: 2097152, diskBytes: 21474836480, marker: 'ffd2ae511b34dbee', reportedAt: at },
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Running', message: 'running on host-0001', lastTransitionTime: T0 },
      {
        type: 'Scheduled',
        status: 'True',
        reason: 'Scheduled',
        message: 'placed on host-0001',
        lastTransitionTime: T0,
      },
    ],
  };
}

/** A host holding ten instances, as its agent writes it on each claim (the whole status). */
function hostWithTenClaims(at: string): ComputeNodeStatus {
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
    patch: (at) => ({ status: { guest: { reportedAt: at } } }),
  },
  {
    plural: 'computenodes',
    kind: 'ComputeNode',
    namespaced: false,
    declared: (s) => ({ capacity: s.capacity!, allocated: s.allocated! }),
    status: hostWithTenClaims,
    patch: (at) => ({ status: hostWithTenClaims(at) }),
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
} as const;
type Variant = keyof typeof VARIANTS;

/** The subject's CRD under a group of its own per variant, so both are served side by side. */
function crdFor(subject: Subject, variant: Variant, group: string): Crd {
  const file = join(repoRoot, 'crds', `${subject.plural}.${GROUP}.yaml`);
  const crd = yaml.load(readFileSync(file, 'utf8')) as Crd;
  crd.metadata.name = `${subject.plural}.${group}`;
  crd.spec.group = group;
  for (const v of crd.spec.versions) v.schema.openAPIV3Schema = VARIANTS[variant](subject, v.schema.openAPIV3Schema);
  return crd;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-write-cost-'));
  const cp = await ControlPlane.start({ dir });
  const agent = new Agent({ connect: { ca: readFileSync(cp.caPath) } });
  try {
    const [apiserver] = findPids('kube-apiserver', dir);
    if (apiserver === undefined) throw new Error(`no kube-apiserver process found for ${dir}`);
    const send = async (method: string, path: string, body: unknown, contentType = 'application/json') => {
      const res = await request(cp.server + path, {
        method: method as 'POST' | 'PATCH',
        dispatcher: agent,
        headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': contentType },
        body: JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
    };
    const cases = SUBJECTS.flatMap((subject) =>
      (Object.keys(VARIANTS) as Variant[]).map((variant, i) => {
        const group = `v${i}.write-cost.${GROUP}`;
        const path = `/apis/${group}/v1alpha1/${subject.namespaced ? 'namespaces/default/' : ''}${subject.plural}`;
        return { subject, variant, group, path, ms: [] as number[] };
      }),
    );
    for (const c of cases)
      cp.kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(crdFor(c.subject, c.variant, c.group)));
    cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    for (const c of cases) {
      for (let k = 0; k < CLIENTS; k++) {
        const metadata = { name: `object-${k}` };
        await send('POST', c.path, {
          apiVersion: `${c.group}/v1alpha1`,
          kind: c.subject.kind,
          metadata,
          spec: c.subject.kind === 'Instance' ? { flavor: 'm1.small', image: 'cirros' } : {},
        });
        await send(
          'PATCH',
          `${c.path}/object-${k}/status`,
          { status: c.subject.status(T0) },
          'application/merge-patch+json',
        );
      }
    }
    let tick = 0;
    for (let r = 0; r < REPEATS; r++) {
      for (const c of cases) {
        const before = cpuSeconds(apiserver)!;
        let sent = 0;
        await Promise.all(
          Array.from({ length: CLIENTS }, async (_, k) => {
            while (sent < WRITES) {
              sent++;
              const at = new Date(Date.parse(T0) + ++tick * 1000).toISOString();
              await send('PATCH', `${c.path}/object-${k}/status`, c.subject.patch(at), 'application/merge-patch+json');
            }
          }),
        );
        c.ms.push(((cpuSeconds(apiserver)! - before) * 1000) / WRITES);
      }
    }
    console.log(`kube-apiserver CPU per status write (ms), median of ${REPEATS} interleaved runs of ${WRITES} writes`);
    for (const c of cases) {
      const spread = `${Math.min(...c.ms).toFixed(2)} to ${Math.max(...c.ms).toFixed(2)}`;
      console.log(`  ${c.subject.kind.padEnd(12)} ${c.variant.padEnd(14)} ${median(c.ms).toFixed(2)} (${spread})`);
    }
  } finally {
    await agent.close();
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
