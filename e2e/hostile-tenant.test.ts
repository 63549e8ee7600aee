// A hostile tenant against the real API server, under the chart's RBAC and admission
// policies: a ServiceAccount of namespace tenant-a bound to Kubernetes' `edit` there may run
// its own instances and migrations, and nothing else. Every other attempt (another
// namespace's instances, a forced host or target host, an evacuation, ComputeNodes, Flavors,
// ComputeQuotas, the status of its own instances, the release namespace's Secrets) is refused
// with a message that says what is missing, and a full snapshot before and after shows that
// nothing changed. The same for a node agent's own credentials against the admin fields of
// its ComputeNode and Events. docs/security.md maps each threat to these tests.
//
// kubenova's operator and agents run as local processes here (as a cluster admin); what is
// under test is what the chart grants and forbids the identities that attack.
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { apiRequest, applyChartPolicies, runTool, writeTokenKubeconfig, type RunResult } from './harness/chart.js';
import { TestEnv } from './harness/env.js';
import { localOnly } from './harness/mode.js';
import { diffSnapshots, settledSnapshot, type SnapshotOptions } from './harness/snapshot.js';

const API = 'compute.kubenova.io/v1alpha1';
const RELEASE_NS = 'kubenova-system';
const TENANT_NS = 'tenant-a';
const OTHER_NS = 'tenant-b';
const TENANT = `system:serviceaccount:${TENANT_NS}:tenant`;
const OPERATOR = `system:serviceaccount:${RELEASE_NS}:kubenova-operator`;
const AGENT = `system:serviceaccount:${RELEASE_NS}:kubenova-node-agent`;
const SNAPSHOT: SnapshotOptions = { secretNamespaces: [RELEASE_NS, TENANT_NS, OTHER_NS] };

let env: TestEnv;
let tenant: Credentials;
let agent: Credentials;

interface Credentials {
  token: string;
  kubeconfig: string;
}

const instance = (name: string, namespace: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: API,
  kind: 'Instance',
  metadata: { name, namespace },
  spec: { flavor: 'm1.tiny', image: 'cirros', ...spec },
});
const migration = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: 'Migration',
  metadata: { name, namespace: TENANT_NS },
  spec,
});
const settled = (i: Instance) => i.status?.vmState === 'active' && i.status.taskState === '';

beforeAll(async () => {
  env = await TestEnv.start({ agents: [{ name: 'node-a' }, { name: 'node-b' }] });
  await applyChartPolicies({ kubectl: (a, i) => env.kubectl(a, i), dir: join(env.dir, 'helm'), namespace: RELEASE_NS });
  // What a tenant would most like to read: a credential in the release namespace.
  env.kubectl(['create', 'secret', 'generic', 'transfer-credential', '-n', RELEASE_NS, '--from-literal=token=s3cr3t']);
  for (const ns of [TENANT_NS, OTHER_NS]) env.kubectl(['create', 'namespace', ns]);
  env.kubectl(['create', 'serviceaccount', 'tenant', '-n', TENANT_NS]);
  env.kubectl([
    'create',
    'rolebinding',
    'tenant-edit',
    '-n',
    TENANT_NS,
    '--clusterrole=edit',
    `--serviceaccount=${TENANT_NS}:tenant`,
  ]);
  tenant = credentials(['tenant', '-n', TENANT_NS], 'tenant');
  agent = agentPodCredentials('node-a');
  env.apply({
    apiVersion: API,
    kind: 'ComputeQuota',
    metadata: { name: 'quota', namespace: TENANT_NS },
    spec: { hard: { instances: 5 } },
  });
  env.apply(instance('victim', OTHER_NS));
  await env.waitForInstance('victim', settled, 'active', 60_000, OTHER_NS);
});

afterAll(async () => {
  await env?.stop();
});

/** A token from `kubectl create token <args>`, and a kubeconfig holding it. */
function credentials(args: string[], user: string): Credentials {
  const token = env.kubectl(['create', 'token', ...args, '--duration=2h']).trim();
  const kubeconfig = join(env.dir, `kubeconfig-${user}`);
  writeTokenKubeconfig(kubeconfig, env.cp.server, env.cp.caPath, token, user);
  return { token, kubeconfig };
}

/**
 * The node agent's own credentials on `node`: the chart's service-account token bound to an
 * agent pod on that Node, which carries the node name the admission policies read (the
 * kubelet's part, as in helm-journey.test.ts; no pod runs).
 */
function agentPodCredentials(node: string): Credentials {
  const pod = `kubenova-node-agent-${node}`;
  env.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
  env.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: RELEASE_NS },
    spec: {
      serviceAccountName: 'kubenova-node-agent',
      nodeName: node,
      containers: [{ name: 'agent', image: 'kubenova' }],
    },
  });
  return credentials(
    ['kubenova-node-agent', '-n', RELEASE_NS, '--bound-object-kind=Pod', `--bound-object-name=${pod}`],
    `agent-${node}`,
  );
}

function kubectlWith(who: Credentials, args: string[], input?: object): RunResult {
  return runTool(
    env.cp.binaries.kubectl,
    ['--kubeconfig', who.kubeconfig, ...args],
    input ? JSON.stringify(input) : undefined,
  );
}
const asTenant = (args: string[], input?: object) => kubectlWith(tenant, args, input);

function succeeds(r: RunResult): string {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

/** A request to try: kubectl arguments (and stdin), or a raw merge PATCH (kubectl reads before it patches). */
type Attempt = { name: string; expect: RegExp } & (
  { args: string[]; input?: object } | { patch: string; body: object }
);

/** Runs an attempt as `who`; resolves with the refusal's message, and fails when it was not refused. */
async function refusal(who: Credentials, attempt: Attempt): Promise<string> {
  if ('patch' in attempt) {
    const r = await apiRequest(env.cp.server, env.cp.caPath, who.token, 'PATCH', attempt.patch, attempt.body);
    expect(r.status, r.message).toBe(403);
    return r.message;
  }
  const r = kubectlWith(who, attempt.args, attempt.input);
  expect(r.status, r.stdout).not.toBe(0);
  expect(r.stderr).toMatch(/^Error from server \(Forbidden\)/);
  return r.stderr;
}

const GROUP = `/apis/${API}`;
const mergePatch = (kind: string, name: string, body: object, namespace: string) => [
  'patch',
  kind,
  name,
  '-n',
  namespace,
  '--type=merge',
  '-p',
  JSON.stringify(body),
];

localOnly('a tenant with edit in its own namespace', () => {
  it('creates an Instance and a cold Migration there and confirms it; reads its quota', async () => {
    succeeds(asTenant(['create', '-f', '-'], instance('mine', TENANT_NS)));
    const booted = await env.waitForInstance('mine', settled, 'active', 60_000, TENANT_NS);
    succeeds(asTenant(['create', '-f', '-'], migration('mine-move', { instance: 'mine' })));
    await env.waitFor(
      'Migration mine-move finished',
      async () => (await env.migration('mine-move', TENANT_NS))?.status?.status === 'finished',
    );
    succeeds(asTenant(mergePatch('migration', 'mine-move', { spec: { decision: 'Confirm' } }, TENANT_NS)));
    await env.waitFor(
      'Migration mine-move confirmed',
      async () => (await env.migration('mine-move', TENANT_NS))?.status?.status === 'confirmed',
    );
    const moved = await env.waitForInstance('mine', settled, 'active again', 60_000, TENANT_NS);
    expect(moved.status?.host).not.toBe(booted.status?.host);
    expect(
      succeeds(asTenant(['get', 'instances,migrations', '-n', TENANT_NS, '-o', 'name']))
        .trim()
        .split('\n'),
    ).toEqual(['instance.compute.kubenova.io/mine', 'migration.compute.kubenova.io/mine-move']);
    expect(succeeds(asTenant(['get', 'computequota', 'quota', '-n', TENANT_NS, '-o', 'name'])).trim()).toBe(
      'computequota.compute.kubenova.io/quota',
    );
  });

  const forbidden = (verb: string, resource: string, where: string) =>
    new RegExp(`User "${TENANT}" cannot ${verb} resource "${resource}" in API group "[^"]*" ${where}`);
  const inNs = (ns: string) => `in the namespace "${ns}"`;
  const lacks = (permission: string) =>
    new RegExp(
      `${TENANT} lacks permission create on ${permission} \\(compute.kubenova.io\\) in namespace ${TENANT_NS}\\..*` +
        `kubectl create rolebinding <name> -n ${TENANT_NS} --clusterrole=kubenova-forced-placement --user=${TENANT}`,
    );

  const attempts: Attempt[] = [
    {
      name: "listing another namespace's instances",
      args: ['get', 'instances', '-n', OTHER_NS],
      expect: forbidden('list', 'instances', inNs(OTHER_NS)),
    },
    {
      name: "reading another namespace's instance by name",
      args: ['get', 'instance', 'victim', '-n', OTHER_NS],
      expect: forbidden('get', 'instances', inNs(OTHER_NS)),
    },
    {
      name: "deleting another namespace's instance",
      args: ['delete', 'instance', 'victim', '-n', OTHER_NS, '--wait=false'],
      expect: forbidden('delete', 'instances', inNs(OTHER_NS)),
    },
    {
      name: 'creating an instance with a forced host (spec.host)',
      args: ['create', '-f', '-'],
      input: instance('forced', TENANT_NS, { host: 'node-b' }),
      expect: /setting spec.host \(a forced host, node-b\) on Instance tenant-a\/forced is for cloud admins/,
    },
    {
      name: 'forcing the host of its running instance afterwards',
      args: mergePatch('instance', 'mine', { spec: { host: 'node-a' } }, TENANT_NS),
      expect: lacks('instances/forcehost'),
    },
    {
      name: 'creating a migration with a target host',
      args: ['create', '-f', '-'],
      input: migration('aimed', { instance: 'mine', targetHost: 'node-a' }),
      expect: lacks('migrations/forcehost'),
    },
    {
      name: 'creating an Evacuation',
      args: ['create', '-f', '-'],
      input: migration('flee', { instance: 'mine', type: 'Evacuation' }),
      expect: lacks('migrations/evacuate'),
    },
    {
      name: 'writing the status of its own instance (a host, a state)',
      patch: `${GROUP}/namespaces/${TENANT_NS}/instances/mine/status`,
      body: { status: { host: 'node-b', vmState: 'error' } },
      expect: forbidden('patch', 'instances/status', inNs(TENANT_NS)),
    },
    {
      name: 'enabling or resizing a ComputeNode',
      patch: `${GROUP}/computenodes/node-a`,
      body: { spec: { disabled: false, allocationRatio: { cpu: 64 } } },
      expect: forbidden('patch', 'computenodes', 'at the cluster scope'),
    },
    {
      name: 'creating a Flavor',
      args: ['create', '-f', '-'],
      input: {
        apiVersion: API,
        kind: 'Flavor',
        metadata: { name: 'huge' },
        spec: { vcpus: 64, memoryMiB: 262144, rootDiskGiB: 1 },
      },
      expect: forbidden('create', 'flavors', 'at the cluster scope'),
    },
    {
      name: 'raising its own ComputeQuota',
      patch: `${GROUP}/namespaces/${TENANT_NS}/computequotas/quota`,
      body: { spec: { hard: { instances: 1000 } } },
      expect: forbidden('patch', 'computequotas', inNs(TENANT_NS)),
    },
    {
      name: 'creating a second ComputeQuota',
      args: ['create', '-f', '-'],
      input: { apiVersion: API, kind: 'ComputeQuota', metadata: { name: 'more', namespace: TENANT_NS }, spec: {} },
      expect: forbidden('create', 'computequotas', inNs(TENANT_NS)),
    },
    {
      name: "listing the release namespace's Secrets",
      args: ['get', 'secrets', '-n', RELEASE_NS],
      expect: forbidden('list', 'secrets', inNs(RELEASE_NS)),
    },
    {
      name: 'reading a Secret of the release namespace by name',
      args: ['get', 'secret', 'transfer-credential', '-n', RELEASE_NS],
      expect: forbidden('get', 'secrets', inNs(RELEASE_NS)),
    },
  ];

  it.each(attempts)('is refused $name with a clear message, and nothing changes', async (attempt) => {
    const before = await settledSnapshot(env, SNAPSHOT);
    expect(await refusal(tenant, attempt)).toMatch(attempt.expect);
    const after = await settledSnapshot(env, SNAPSHOT);
    expect(diffSnapshots(before, after)).toEqual([]);
  });
});

localOnly("the components' service accounts", () => {
  it.each([
    ['operator', OPERATOR],
    ['node agent', AGENT],
  ])(
    "%s: its service account cannot get, list or watch Secrets cluster-wide or in a tenant's namespace, only get them in the release namespace",
    (_what, user) => {
      const canI = (verb: string, scope: string[]) => {
        const r = runTool(env.cp.binaries.kubectl, [
          '--kubeconfig',
          env.kubeconfigPath,
          'auth',
          'can-i',
          verb,
          'secrets',
          `--as=${user}`,
          ...scope,
        ]);
        return `${verb} ${scope.join(' ')}: ${r.stdout.trim()}`;
      };
      expect([
        canI('get', ['-A']),
        canI('list', ['-A']),
        canI('watch', ['-A']),
        canI('get', ['-n', TENANT_NS]),
        canI('get', ['-n', RELEASE_NS]),
      ]).toEqual(['get -A: no', 'list -A: no', 'watch -A: no', `get -n ${TENANT_NS}: no`, `get -n ${RELEASE_NS}: yes`]);
    },
  );
});

localOnly("a node agent's own credentials", () => {
  beforeAll(() => {
    // An admin has taken node-a out of service.
    env.kubectl([
      'patch',
      'computenode',
      'node-a',
      '--type=merge',
      '-p',
      '{"spec":{"disabled":true,"disabledReason":"disk failing"}}',
    ]);
  });

  const adminField = (fields: string) =>
    new RegExp(
      `the kubenova node agent on node node-a may not change ${fields} of ComputeNode node-a: only a cluster admin disables, fences or sizes a host`,
    );
  const attempts: Attempt[] = [
    {
      name: 'enabling its disabled host again',
      patch: `${GROUP}/computenodes/node-a`,
      body: { spec: { disabled: false, disabledReason: null } },
      expect: adminField('spec.disabled, spec.disabledReason'),
    },
    {
      name: 'raising its allocation ratio',
      patch: `${GROUP}/computenodes/node-a`,
      body: { spec: { allocationRatio: { cpu: 64 } } },
      expect: adminField('spec.allocationRatio'),
    },
    {
      name: 'lowering its reserved memory',
      patch: `${GROUP}/computenodes/node-a`,
      body: { spec: { reserved: { memoryMiB: 0 } } },
      expect: adminField('spec.reserved'),
    },
    {
      name: 'declaring itself forced down',
      patch: `${GROUP}/computenodes/node-a`,
      body: { spec: { forcedDown: true } },
      expect: adminField('spec.forcedDown'),
    },
    {
      name: "writing another host's ComputeNode",
      patch: `${GROUP}/computenodes/node-b/status`,
      body: { status: { driver: 'fake' } },
      expect: /may only write its own ComputeNode node-a, not ComputeNode node-b \(status\)/,
    },
    {
      name: 'recording an Event about something that is not kubenova',
      args: ['create', '-f', '-'],
      input: event({ apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: TENANT_NS }, 'node-a'),
      expect:
        /may record Events only about Instances and Migrations \(compute.kubenova.io\), in their own namespace, and about its own ComputeNode; not about Pod tenant-a\/web/,
    },
    {
      name: 'recording an Event in the name of another host',
      args: ['create', '-f', '-'],
      input: event({ apiVersion: API, kind: 'Instance', name: 'mine', namespace: TENANT_NS }, 'node-b'),
      expect: /must name its own node as the reporting instance of its Events .*names node-b/,
    },
  ];

  it.each(attempts)("is refused $name with the policy's message, and nothing changes", async (attempt) => {
    const before = await settledSnapshot(env, SNAPSHOT);
    expect(await refusal(agent, attempt)).toMatch(attempt.expect);
    const after = await settledSnapshot(env, SNAPSHOT);
    expect(diffSnapshots(before, after)).toEqual([]);
    expect(suiteEvents()).toEqual([]);
  });

  it('still records an Event about an Instance as its own node', () => {
    const mine = { apiVersion: API, kind: 'Instance', name: 'mine', namespace: TENANT_NS };
    succeeds(kubectlWith(agent, ['create', '-f', '-'], event(mine, 'node-a')));
    expect(suiteEvents()).toEqual(['node-a']);
  });
});

/** An Event in the tenant's namespace the way the agent's EventRecorder writes one, reporting as `host`. */
function event(involvedObject: object, host: string): object {
  const now = new Date().toISOString();
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: 'hostile-', namespace: TENANT_NS },
    involvedObject,
    reason: 'HostileTest',
    message: 'written by the hostile-tenant suite',
    type: 'Normal',
    source: { component: 'kubenova-node-agent', host },
    reportingComponent: 'kubenova.io/kubenova-node-agent',
    reportingInstance: host,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

/** The reporting instances of this suite's Events that got in. */
function suiteEvents(): string[] {
  const list = yaml.load(
    env.kubectl(['get', 'events', '-n', TENANT_NS, '--field-selector=reason=HostileTest', '-o', 'yaml']),
  ) as { items: { reportingInstance?: string }[] };
  return list.items.map((e) => e.reportingInstance ?? '');
}
