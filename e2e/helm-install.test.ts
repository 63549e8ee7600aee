// `helm install` of charts/kubenova into a real control plane (RBAC on): every object
// exists, bad values are refused before anything is installed, each service account can do
// exactly what its component's code needs, and the admission policy keeps a node agent to
// its own host; the CRDs follow helm upgrade and outlive helm uninstall with the objects they
// hold. Pods never start here (no kubelet); that is expected.
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { Helm, chartDir, parseManifests, podSpecOf, runTool } from './harness/chart.js';
import { waitForFinalizerPolicy } from './harness/components.js';
import { localOnly } from './harness/mode.js';

const NS = 'kubenova-system';
const OPERATOR = `system:serviceaccount:${NS}:kubenova-operator`;
const AGENT = `system:serviceaccount:${NS}:kubenova-node-agent`;
const GROUP = '/apis/compute.kubenova.io/v1alpha1';
const CRDS = [
  'computenodes',
  'computequotas',
  'flavors',
  'instances',
  'ipallocations',
  'migrations',
  'networks',
  'ports',
  'servergroups',
].map((plural) => `${plural}.compute.kubenova.io`);

let dir: string;
let cp: ControlPlane;
let helm: Helm;

beforeAll(async () => {
  dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-helm-install-'));
  // OpenShift and hardened clusters enable this plugin; the operator's resize Migrations
  // (owned by their Instance, blockOwnerDeletion) must still be allowed.
  cp = await ControlPlane.start({
    dir: join(dir, 'controlplane'),
    apiserverFlags: ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement'],
  });
  helm = new Helm(join(dir, 'helm'), cp.kubeconfigPath);
  helm.ok(['install', 'kubenova', chartDir, '--namespace', NS, '--create-namespace']);
});

afterAll(async () => {
  await cp?.stop();
  if (!process.env.KUBENOVA_KEEP_TEST_DIRS && dir) rmSync(dir, { recursive: true, force: true });
});

const kubectl = (args: string[], input?: string) => cp.kubectl(args, input);

/** Subresources the checks name as kind/<subresource>; anything else after a slash is a name. */
const SUBRESOURCES = new Set(['status', 'forcehost', 'evacuate', 'approval']);

/**
 * `kubectl auth can-i` as someone: "yes" or "no". `resource` is kind, kind/<subresource> or
 * kind/name; namespace '' asks cluster-wide (as a request for a cluster-scoped kind is: with a
 * namespace, RoleBindings there would answer for Flavors too).
 */
function canI(as: string, verb: string, resource: string, namespace = 'default'): string {
  const [kind = '', sub] = resource.split('/');
  const subresource = sub !== undefined && SUBRESOURCES.has(sub) ? sub : undefined;
  const args = [
    '--kubeconfig',
    cp.kubeconfigPath,
    'auth',
    'can-i',
    verb,
    subresource ? kind : resource,
    `--as=${as}`,
    ...(namespace ? ['-n', namespace] : []),
    ...(subresource ? [`--subresource=${subresource}`] : []),
  ];
  const r = runTool(cp.binaries.kubectl, args);
  if (r.status !== 0 && r.stdout.trim() !== 'no') throw new Error(`kubectl auth can-i failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Each check's `kubectl auth can-i` answer, one line each, so a failure shows every check that differs. */
function expectCanI(as: string, checks: [string, string, string?][], expected: 'yes' | 'no'): void {
  const line = ([verb, resource, ns]: [string, string, string?], answer: string) =>
    `${verb} ${resource}${ns === '' ? ' (cluster-wide)' : ns ? ` -n ${ns}` : ''}: ${answer}`;
  expect(checks.map((c) => line(c, canI(as, c[0], c[1], c[2])))).toEqual(checks.map((c) => line(c, expected)));
}

interface ApiAnswer {
  status: number;
  message: string;
}

/**
 * A request as the node agent's service account, impersonated by the admin (kubectl has no
 * flag for user extras before 1.35). `node` is the node name a pod-bound token carries (user
 * extra authentication.kubernetes.io/node-name); undefined sends none, as a token that is
 * not bound to a pod does.
 */
function asAgent(method: 'PATCH' | 'POST', node: string | undefined, path: string, body: object): Promise<ApiAnswer> {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${cp.adminToken}`,
    'Impersonate-User': AGENT,
    'Content-Type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
  };
  if (node !== undefined) headers['Impersonate-Extra-authentication.kubernetes.io%2Fnode-name'] = node;
  return new Promise((resolve, reject) => {
    const req = request(
      `${cp.server}${path}`,
      { method, headers, agent: new Agent({ ca: readFileSync(cp.caPath), keepAlive: false }), timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let message: string;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? '';
          } catch {
            message = text;
          }
          resolve({ status: res.statusCode ?? 0, message });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const patchAsAgent = (node: string | undefined, path: string, body: object) => asAgent('PATCH', node, path, body);

function apply(obj: object): void {
  kubectl(['apply', '-f', '-'], yaml.dump(obj));
}

function setStatus(kind: string, name: string, status: object, namespace = 'default'): void {
  kubectl([
    'patch',
    kind,
    name,
    '-n',
    namespace,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status }),
  ]);
}

const computeNode = (name: string) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'ComputeNode',
  metadata: { name },
  spec: {},
});
const instance = (name: string) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Instance',
  metadata: { name, namespace: 'default' },
  spec: { flavor: 'm1.tiny', image: 'cirros' },
});
const migration = (name: string) => ({
  apiVersion: 'compute.kubenova.io/v1alpha1',
  kind: 'Migration',
  metadata: { name, namespace: 'default' },
  spec: { instance: 'somewhere' },
});

localOnly('helm install of charts/kubenova', () => {
  it('creates the CRDs and every object helm template renders, in the release namespace', () => {
    const rendered = helm.ok(['template', 'kubenova', chartDir, '--namespace', NS]);
    const manifests = parseManifests(rendered);
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      'ClusterRole/kubenova-edit',
      'ClusterRole/kubenova-flavor-reader',
      'ClusterRole/kubenova-forced-placement',
      'ClusterRole/kubenova-network-admin',
      'ClusterRole/kubenova-network-reader',
      'ClusterRole/kubenova-node-agent',
      'ClusterRole/kubenova-operator',
      'ClusterRole/kubenova-view',
      'ClusterRoleBinding/kubenova-node-agent',
      'ClusterRoleBinding/kubenova-operator',
      ...CRDS.map((c) => `CustomResourceDefinition/${c}`),
      'DaemonSet/kubenova-node-agent',
      'Deployment/kubenova-operator',
      'PodDisruptionBudget/kubenova-operator',
      'Role/kubenova-node-agent-lease',
      'Role/kubenova-node-agent-secrets',
      'Role/kubenova-operator-leader-election',
      'Role/kubenova-operator-node-leases',
      'Role/kubenova-operator-secrets',
      'RoleBinding/kubenova-node-agent-lease',
      'RoleBinding/kubenova-node-agent-secrets',
      'RoleBinding/kubenova-operator-leader-election',
      'RoleBinding/kubenova-operator-node-leases',
      'RoleBinding/kubenova-operator-secrets',
      'Service/kubenova-operator-metrics',
      'ServiceAccount/kubenova-node-agent',
      'ServiceAccount/kubenova-operator',
      'ValidatingAdmissionPolicy/kubenova-forced-placement',
      'ValidatingAdmissionPolicy/kubenova-node-agent-events',
      'ValidatingAdmissionPolicy/kubenova-node-agent-own-host',
      'ValidatingAdmissionPolicy/kubenova-node-agent-own-lease',
      'ValidatingAdmissionPolicyBinding/kubenova-forced-placement',
      'ValidatingAdmissionPolicyBinding/kubenova-node-agent-events',
      'ValidatingAdmissionPolicyBinding/kubenova-node-agent-own-host',
      'ValidatingAdmissionPolicyBinding/kubenova-node-agent-own-lease',
    ]);
    const found = kubectl(['get', '-f', '-', '-o', 'name'], rendered).trim().split('\n');
    expect(found).toHaveLength(manifests.length);
    for (const m of manifests.filter((x) => x.metadata.namespace !== undefined)) expect(m.metadata.namespace).toBe(NS);
    const crds = kubectl([
      'get',
      'crd',
      '-l',
      'app.kubernetes.io/part-of=kubenova',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status} {end}',
    ]);
    expect(crds.trim().split(' ').sort()).toEqual(CRDS.map((c) => `${c}=True`));
    expect(helm.ok(['status', 'kubenova', '--namespace', NS])).toMatch(/STATUS: deployed/);
  });

  it('installs the instance-finalizer MutatingAdmissionPolicy where the cluster offers the API, so an Instance is created with its clean-up finalizer', async () => {
    const installed = parseManifests(helm.ok(['get', 'manifest', 'kubenova', '--namespace', NS]))
      .filter((m) => m.kind.startsWith('MutatingAdmissionPolicy'))
      .map((m) => `${m.apiVersion} ${m.kind}/${m.metadata.name}`);
    expect(installed).toEqual([
      'admissionregistration.k8s.io/v1beta1 MutatingAdmissionPolicy/kubenova-instance-finalizer',
      'admissionregistration.k8s.io/v1beta1 MutatingAdmissionPolicyBinding/kubenova-instance-finalizer',
    ]);
    // kube-apiserver loads policies in the background: a create carries the finalizer within seconds.
    await waitForFinalizerPolicy(cp);
  });

  it.each([
    [
      'a negative maxAttempts',
      ['--set', 'operator.maxAttempts=-1'],
      /at '\/operator\/maxAttempts': minimum: got -1, want 1/,
    ],
    [
      'an unknown log level',
      ['--set', 'log.level=loud'],
      /at '\/log\/level': value must be one of 'trace', 'debug', 'info', 'warn', 'error', 'silent'/,
    ],
    ['zero operator replicas', ['--set', 'operator.replicas=0'], /at '\/operator\/replicas': minimum: got 0, want 1/],
    [
      'a word where a number belongs',
      ['--set-string', 'operator.workers=many'],
      /at '\/operator\/workers': got string, want integer/,
    ],
    [
      'a negative audit interval',
      ['--set-json', 'nodeAgent.auditInterval=-5'],
      /at '\/nodeAgent\/auditInterval': minimum: got -5, want 0.1/,
    ],
    [
      'a misspelt value',
      ['--set', 'operator.maxAtempts=3'],
      /at '\/operator': additional properties 'maxAtempts' not allowed/,
    ],
    ['a relative state directory', ['--set', 'nodeAgent.stateDir=var/lib/kubenova'], /at '\/nodeAgent\/stateDir'/],
  ])('refuses %s before installing anything, naming the value and what is wrong', (_what, args, message) => {
    const r = helm.run(['install', 'bad', chartDir, '--namespace', 'bad-values', '--create-namespace', ...args]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(r.stderr).toMatch(message);
    expect(helm.ok(['list', '--all-namespaces', '-q'])).not.toMatch(/\bbad\b/);
    expect(
      runTool(cp.binaries.kubectl, ['--kubeconfig', cp.kubeconfigPath, 'get', 'namespace', 'bad-values']).status,
    ).not.toBe(0);
  });
});

localOnly('least-privilege RBAC from the chart', () => {
  // [verb, resource(/subresource), namespace?] each component's code uses.
  const operatorNeeds: [string, string, string?][] = [
    ['list', 'computenodes'],
    ['watch', 'computenodes'],
    ['patch', 'computenodes/status'],
    ['list', 'flavors'],
    ['watch', 'flavors'],
    ['list', 'instances'],
    ['watch', 'instances'],
    ['patch', 'instances'],
    ['patch', 'instances/status'],
    ['list', 'migrations'],
    ['watch', 'migrations'],
    ['create', 'migrations'],
    ['patch', 'migrations'],
    ['patch', 'migrations/status'],
    ['create', 'migrations/evacuate'],
    ['list', 'networks'],
    ['watch', 'networks'],
    ['patch', 'networks/status'],
    ['patch', 'networks'],
    ['list', 'ports'],
    ['watch', 'ports'],
    ['create', 'ports'],
    ['delete', 'ports'],
    ['patch', 'ports/status'],
    ['list', 'ipallocations'],
    ['watch', 'ipallocations'],
    ['create', 'ipallocations'],
    ['delete', 'ipallocations'],
    ['get', 'secrets', NS],
    ['list', 'secrets', NS],
    ['create', 'secrets', NS],
    ['delete', 'secrets', NS],
    ['create', 'events'],
    ['list', 'certificatesigningrequests', ''],
    ['update', 'certificatesigningrequests/approval', ''],
    ['update', 'certificatesigningrequests/status', ''],
    ['get', 'leases/kubenova-operator', NS],
    ['update', 'leases/kubenova-operator', NS],
    ['create', 'leases', NS],
    // The agents' node Leases, read once per node-monitor check.
    ['list', 'leases', NS],
  ];
  const operatorMustNot: [string, string, string?][] = [
    ['delete', 'computenodes'],
    ['create', 'computenodes'],
    ['patch', 'computenodes'],
    ['create', 'instances'],
    ['delete', 'instances'],
    ['patch', 'flavors'],
    ['delete', 'flavors'],
    ['delete', 'migrations'],
    // Networks are the admins': the operator reads them and keeps their status.
    ['create', 'networks'],
    ['delete', 'networks'],
    ['create', 'instances/forcehost'],
    ['create', 'migrations/forcehost'],
    ['get', 'secrets'],
    ['create', 'secrets'],
    ['delete', 'secrets'],
    ['update', 'secrets', NS],
    ['get', 'leases/kubenova-operator', 'default'],
    ['update', 'leases/someone-elses-lease', NS],
    ['delete', 'leases/kubenova-operator', NS],
    ['create', 'pods'],
    ['get', 'nodes'],
  ];
  const agentNeeds: [string, string, string?][] = [
    ['get', 'computenodes'],
    ['create', 'computenodes'],
    ['patch', 'computenodes'],
    ['patch', 'computenodes/status'],
    ['list', 'instances'],
    ['watch', 'instances'],
    ['patch', 'instances/status'],
    ['list', 'migrations'],
    ['watch', 'migrations'],
    ['patch', 'migrations/status'],
    ['list', 'networks'],
    ['watch', 'networks'],
    ['list', 'ports'],
    ['watch', 'ports'],
    ['get', 'secrets', NS],
    ['create', 'events'],
    ['create', 'certificatesigningrequests', ''],
    ['get', 'certificatesigningrequests', ''],
    // Its node Lease: created once, patched on every heartbeat.
    ['create', 'leases', NS],
    ['patch', 'leases/node-a', NS],
  ];
  const agentMustNot: [string, string, string?][] = [
    ['delete', 'instances'],
    ['create', 'instances'],
    ['patch', 'instances'],
    ['create', 'migrations'],
    ['patch', 'migrations'],
    ['delete', 'migrations'],
    ['create', 'migrations/evacuate'],
    ['get', 'secrets'],
    ['list', 'secrets', NS],
    ['watch', 'secrets', NS],
    ['create', 'secrets', NS],
    ['delete', 'secrets', NS],
    ['delete', 'computenodes'],
    ['list', 'computenodes'],
    ['patch', 'flavors'],
    ['patch', 'flavors/status'],
    // The operator alone writes networking objects; the agent only reads them.
    ['patch', 'ports/status'],
    ['create', 'ports'],
    ['patch', 'networks/status'],
    ['create', 'ipallocations'],
    ['get', 'leases/kubenova-operator', NS],
    ['list', 'leases', NS],
    ['delete', 'leases/node-a', NS],
    ['patch', 'leases/node-a', 'default'],
    ['list', 'certificatesigningrequests', ''],
    ['update', 'certificatesigningrequests/approval', ''],
    ['update', 'certificatesigningrequests/status', ''],
    ['create', 'pods'],
    ['get', 'nodes'],
  ];

  it('lets the operator do every verb its code uses: read all kinds, patch statuses, create migrations and evacuations, handle transfer secrets in the release namespace, hold its Lease', () => {
    expectCanI(OPERATOR, operatorNeeds, 'yes');
  });

  it('lets the operator create a resize Migration owned by its Instance with blockOwnerDeletion, as its code does, under OwnerReferencesPermissionEnforcement', () => {
    kubectl(['apply', '-f', join(chartDir, '..', '..', 'examples', 'flavors.yaml')]);
    apply(instance('owner'));
    const uid = kubectl(['get', 'instance', 'owner', '-o', 'jsonpath={.metadata.uid}']);
    const owned = {
      ...migration('owner-resize-2'),
      metadata: {
        name: 'owner-resize-2',
        namespace: 'default',
        ownerReferences: [
          {
            apiVersion: 'compute.kubenova.io/v1alpha1',
            kind: 'Instance',
            name: 'owner',
            uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: { instance: 'owner', flavor: 'm1.small' },
    };
    const r = runTool(
      cp.binaries.kubectl,
      ['--kubeconfig', cp.kubeconfigPath, 'create', '-f', '-', `--as=${OPERATOR}`],
      yaml.dump(owned),
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('refuses the operator anything else: deleting or creating ComputeNodes, editing flavors, forced hosts, any Secret outside the release namespace, other Leases', () => {
    expectCanI(OPERATOR, operatorMustNot, 'no');
  });

  it('lets the node agent do every verb its code uses: register and patch ComputeNodes, watch work, patch statuses, read a transfer token in the release namespace', () => {
    expectCanI(AGENT, agentNeeds, 'yes');
  });

  it('refuses the node agent anything else: deleting instances, creating migrations, any Secret outside the release namespace or listing them, editing specs', () => {
    expectCanI(AGENT, agentMustNot, 'no');
  });
});

localOnly("the node agents' own-host admission policy", () => {
  beforeAll(() => {
    kubectl(['apply', '-f', join(chartDir, '..', '..', 'examples', 'flavors.yaml')]);
    for (const n of ['node-a', 'node-b']) apply(computeNode(n));
    for (const i of ['on-b', 'moving-b-to-a', 'scheduled-a', 'unplaced']) apply(instance(i));
    setStatus('instance', 'on-b', { host: 'node-b', vmState: 'active' });
    setStatus('instance', 'moving-b-to-a', { host: 'node-b', taskHosts: ['node-b', 'node-a'] });
    setStatus('instance', 'scheduled-a', { scheduling: { attempts: 1, selectedHost: 'node-a' } });
    for (const m of ['from-a', 'to-a', 'offered-a', 'b-to-c']) apply(migration(m));
    setStatus('migration', 'from-a', { sourceHost: 'node-a' });
    setStatus('migration', 'to-a', { sourceHost: 'node-b', destHost: 'node-a' });
    setStatus('migration', 'offered-a', { sourceHost: 'node-b', scheduling: { attempts: 1, selectedHost: 'node-a' } });
    setStatus('migration', 'b-to-c', {
      sourceHost: 'node-b',
      destHost: 'node-c',
      scheduling: { selectedHost: 'node-c' },
    });
  });

  it("lets the agent of node-a patch ComputeNode node-a and its status, and refuses node-b with the policy's message", async () => {
    expect(
      await patchAsAgent('node-a', `${GROUP}/computenodes/node-a/status`, { status: { driver: 'fake' } }),
    ).toMatchObject({ status: 200 });
    expect(
      await patchAsAgent('node-a', `${GROUP}/computenodes/node-a`, { metadata: { labels: { tier: 'gold' } } }),
    ).toMatchObject({ status: 200 });
    const refused = await patchAsAgent('node-a', `${GROUP}/computenodes/node-b/status`, { status: { driver: 'fake' } });
    expect(refused.status).toBe(403);
    expect(refused.message).toMatch(
      /ValidatingAdmissionPolicy 'kubenova-node-agent-own-host'.*denied request: the kubenova node agent on node node-a may only write its own ComputeNode node-a, not ComputeNode node-b \(status\)/,
    );
    const relabel = await patchAsAgent('node-a', `${GROUP}/computenodes/node-b`, {
      metadata: { labels: { tier: 'gold' } },
    });
    expect(relabel.message).toMatch(/may only write its own ComputeNode node-a, not ComputeNode node-b$/);
  });

  it('lets the agent of node-a register ComputeNode node-a but not create one for another host', async () => {
    expect(await asAgent('POST', 'node-a', `${GROUP}/computenodes`, computeNode('node-c'))).toMatchObject({
      status: 403,
      message: expect.stringMatching(/may only write its own ComputeNode node-a, not ComputeNode node-c$/),
    });
    kubectl(['delete', 'computenode', 'node-a']);
    expect(await asAgent('POST', 'node-a', `${GROUP}/computenodes`, computeNode('node-a'))).toMatchObject({
      status: 201,
    });
  });

  it.each([
    ['the host it runs on (status.host)', 'on-b', 'node-b'],
    ['a host its migration involves (status.taskHosts)', 'moving-b-to-a', 'node-a'],
    ['the host chosen to claim it (status.scheduling.selectedHost)', 'scheduled-a', 'node-a'],
  ])('lets an agent write the status of an Instance on %s', async (_what, name, node) => {
    expect(
      await patchAsAgent(node, `${GROUP}/namespaces/default/instances/${name}/status`, {
        status: { powerState: 'running' },
      }),
    ).toMatchObject({ status: 200 });
  });

  it('refuses the agent of node-a the status of an Instance whose status.host is node-b, naming the hosts it involves', async () => {
    const refused = await patchAsAgent('node-a', `${GROUP}/namespaces/default/instances/on-b/status`, {
      status: { vmState: 'error' },
    });
    expect(refused.status).toBe(403);
    expect(refused.message).toMatch(
      /the kubenova node agent on node node-a may not write Instance default\/on-b \(status\): it involves only node-b \(status.host, status.scheduling.selectedHost, status.taskHosts\)/,
    );
    const unplaced = await patchAsAgent('node-a', `${GROUP}/namespaces/default/instances/unplaced/status`, {
      status: { host: 'node-a' },
    });
    expect(unplaced.message).toMatch(/may not write Instance default\/unplaced \(status\): it involves no host yet/);
  });

  it("lets an agent write a Migration's status as its source, destination or selected host, and refuses any other", async () => {
    for (const name of ['from-a', 'to-a', 'offered-a']) {
      expect(
        await patchAsAgent('node-a', `${GROUP}/namespaces/default/migrations/${name}/status`, {
          status: { status: 'migrating' },
        }),
        name,
      ).toMatchObject({ status: 200 });
    }
    const refused = await patchAsAgent('node-a', `${GROUP}/namespaces/default/migrations/b-to-c/status`, {
      status: { status: 'error' },
    });
    expect(refused.status).toBe(403);
    expect(refused.message).toMatch(
      /node node-a may not write Migration default\/b-to-c \(status\): it involves only node-b, node-c, node-c \(status.sourceHost, status.destHost, status.scheduling.selectedHost\)/,
    );
  });

  it('refuses a node agent request that carries no node name (a token not bound to a pod), saying what is missing', async () => {
    const refused = await patchAsAgent(undefined, `${GROUP}/computenodes/node-a/status`, {
      status: { driver: 'fake' },
    });
    expect(refused.status).toBe(403);
    expect(refused.message).toMatch(
      /the kubenova node agent must authenticate with the bound service-account token of its pod, which names its node \(user extra authentication.kubernetes.io\/node-name\); this request to write ComputeNode node-a \(status\) names no node/,
    );
  });

  it('keeps the admin fields of its own ComputeNode from the agent: it registers with spec {} and never changes spec, naming what it tried', async () => {
    const created = await asAgent('POST', 'node-d', `${GROUP}/computenodes`, {
      ...computeNode('node-d'),
      spec: { forcedDown: true, allocationRatio: { cpu: 16 }, reserved: { memoryMiB: 0 } },
    });
    expect(created.status).toBe(403);
    expect(created.message).toMatch(
      /the kubenova node agent on node node-d may not create ComputeNode node-d with spec.forcedDown, spec.allocationRatio, spec.reserved set: it registers its host with spec: \{\}, and only a cluster admin disables, fences or sizes a host/,
    );
    kubectl([
      'patch',
      'computenode',
      'node-b',
      '--type=merge',
      '-p',
      '{"spec":{"disabled":true,"disabledReason":"bad disk"}}',
    ]);
    for (const [spec, fields] of [
      [{ disabled: false }, 'spec.disabled'],
      [{ disabledReason: 'fixed' }, 'spec.disabledReason'],
      [{ forcedDown: true }, 'spec.forcedDown'],
      [{ allocationRatio: { memory: 1.5 } }, 'spec.allocationRatio'],
      [{ reserved: { vcpus: 0, memoryMiB: 0 } }, 'spec.reserved'],
    ] as const) {
      const refused = await patchAsAgent('node-b', `${GROUP}/computenodes/node-b`, { spec });
      expect(refused.status, JSON.stringify(spec)).toBe(403);
      expect(refused.message).toMatch(
        new RegExp(`node node-b may not change ${fields} of ComputeNode node-b: only a cluster admin disables`),
      );
    }
    // Its labels stay its own (zone, node labels), and a write that leaves spec as it is passes.
    expect(
      await patchAsAgent('node-b', `${GROUP}/computenodes/node-b`, {
        metadata: { labels: { tier: 'gold' } },
        spec: { disabled: true },
      }),
    ).toMatchObject({ status: 200 });
    expect(kubectl(['get', 'computenode', 'node-b', '-o', 'jsonpath={.spec.disabled} {.spec.disabledReason}'])).toBe(
      'true bad disk',
    );
  });

  it('lets an agent record Events about Instances and Migrations as its own node, and refuses any other Event, saying why', async () => {
    const event = (involvedObject: object, host: string, namespace = 'default') => ({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: 'policy-', namespace },
      involvedObject,
      reason: 'Spawned',
      message: 'instance is running',
      type: 'Normal',
      source: { component: 'kubenova-node-agent', host },
      reportingComponent: 'kubenova.io/kubenova-node-agent',
      reportingInstance: host,
    });
    const onB = { apiVersion: 'compute.kubenova.io/v1alpha1', kind: 'Instance', name: 'on-b', namespace: 'default' };
    const toA = { apiVersion: 'compute.kubenova.io/v1alpha1', kind: 'Migration', name: 'to-a', namespace: 'default' };
    const post = (node: string | undefined, body: object) =>
      asAgent('POST', node, '/api/v1/namespaces/default/events', body);
    expect(await post('node-b', event(onB, 'node-b'))).toMatchObject({ status: 201 });
    expect(await post('node-a', event(toA, 'node-a'))).toMatchObject({ status: 201 });
    const pod = await post(
      'node-a',
      event({ apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: 'default' }, 'node-a'),
    );
    expect(pod.message).toMatch(
      /node node-a may record Events only about Instances and Migrations \(compute.kubenova.io\), in their own namespace, and about its own ComputeNode; not about Pod default\/web \(v1\) in namespace default/,
    );
    // Its own ComputeNode, yes (the digest of boots that went as planned); another's, no.
    const own = await post(
      'node-a',
      event({ apiVersion: 'compute.kubenova.io/v1alpha1', kind: 'ComputeNode', name: 'node-a' }, 'node-a'),
    );
    expect(own).toMatchObject({ status: 201 });
    const node = await post(
      'node-a',
      event({ apiVersion: 'compute.kubenova.io/v1alpha1', kind: 'ComputeNode', name: 'node-b' }, 'node-a'),
    );
    expect(node.message).toMatch(/may record Events only about Instances and Migrations/);
    const impostor = await post('node-a', event(onB, 'node-b'));
    expect(impostor.message).toMatch(
      /node node-a must name its own node as the reporting instance of its Events \(reportingInstance and source.host node-a\); this Event about Instance default\/on-b .* names node-b and source.host node-b/,
    );
    const unsigned = await post('node-a', { ...event(onB, 'node-a'), reportingInstance: undefined });
    expect(unsigned.message).toMatch(/this Event about Instance default\/on-b .* names none and source.host node-a/);
    expect(await post(undefined, event(onB, 'node-a'))).toMatchObject({
      status: 403,
      message: expect.stringMatching(/must authenticate with the bound service-account token of its pod/),
    });
  });

  it("leaves everyone else alone: the admin writes any host's objects", () => {
    expect(() => setStatus('instance', 'on-b', { powerState: 'running' })).not.toThrow();
    expect(() => setStatus('computenode', 'node-b', { driver: 'fake' })).not.toThrow();
  });
});

localOnly("people's roles from the chart: view, edit and admin aggregate kubenova's kinds", () => {
  const TEAM = 'team';
  beforeAll(async () => {
    kubectl(['create', 'namespace', TEAM]);
    for (const [user, role] of [
      ['viewer', 'view'],
      ['editor', 'edit'],
      ['owner', 'admin'],
      ['placer', 'edit'],
    ]) {
      kubectl(['create', 'rolebinding', `${user}-${role}`, '-n', TEAM, `--clusterrole=${role}`, `--user=${user}`]);
    }
    kubectl([
      'create',
      'rolebinding',
      'placer',
      '-n',
      TEAM,
      '--clusterrole=kubenova-forced-placement',
      '--user=placer',
    ]);
    kubectl(['create', 'clusterrolebinding', 'catalog', '--clusterrole=kubenova-flavor-reader', '--user=shopper']);
    // kube-controller-manager aggregates the chart's roles into view, edit and admin shortly after install.
    const deadline = Date.now() + 30_000;
    const aggregated = () =>
      ['view', 'edit', 'admin'].every((role) =>
        kubectl(['get', 'clusterrole', role, '-o', 'jsonpath={.rules[*].resources}']).includes('servergroups'),
      );
    while (!aggregated()) {
      if (Date.now() > deadline) throw new Error('view, edit and admin never aggregated the chart roles');
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  const read: [string, string, string?][] = [
    'instances',
    'migrations',
    'servergroups',
    'computequotas',
    'ports',
  ].flatMap((r) => ['get', 'list', 'watch'].map((v): [string, string, string] => [v, r, TEAM]));
  const write: [string, string, string?][] = ['instances', 'migrations', 'servergroups'].flatMap((r) =>
    ['create', 'update', 'patch', 'delete', 'deletecollection'].map((v): [string, string, string] => [v, r, TEAM]),
  );
  const adminOnly: [string, string, string?][] = [
    ['create', 'flavors', ''],
    ['patch', 'flavors', ''],
    ['delete', 'flavors', ''],
    ['patch', 'computenodes', ''],
    ['delete', 'computenodes', ''],
    ['create', 'computequotas', TEAM],
    ['patch', 'computequotas', TEAM],
    ['delete', 'computequotas', TEAM],
    ['patch', 'instances/status', TEAM],
    ['patch', 'migrations/status', TEAM],
    ['create', 'instances/forcehost', TEAM],
    ['create', 'migrations/forcehost', TEAM],
    ['create', 'migrations/evacuate', TEAM],
    ['get', 'instances', 'default'],
    // Ports are the operator's, Networks and IPAllocations the cluster admin's.
    ['create', 'ports', TEAM],
    ['delete', 'ports', TEAM],
    ['patch', 'ports/status', TEAM],
    ['create', 'networks', ''],
    ['delete', 'networks', ''],
    ['create', 'ipallocations', ''],
  ];

  it('gives view read access to Instances, Migrations, ServerGroups and the ComputeQuota in its namespace, and no write', () => {
    expectCanI('viewer', read, 'yes');
    expectCanI('viewer', [...write, ...adminOnly], 'no');
  });

  it('gives edit and admin also create, change and delete of Instances, Migrations and ServerGroups, and nothing only a cluster admin does', () => {
    for (const user of ['editor', 'owner']) {
      expectCanI(user, [...read, ...write], 'yes');
      expectCanI(user, adminOnly, 'no');
    }
  });

  it('puts Flavors into view, and lets a cluster-wide binding of kubenova-flavor-reader list the catalog and nothing else', () => {
    const view = JSON.parse(kubectl(['get', 'clusterrole', 'view', '-o', 'json'])) as { rules: object[] };
    expect(view.rules).toContainEqual({
      apiGroups: ['compute.kubenova.io'],
      resources: ['flavors'],
      verbs: ['get', 'list', 'watch'],
    });
    expectCanI(
      'shopper',
      [
        ['get', 'flavors', ''],
        ['list', 'flavors', ''],
        ['watch', 'flavors', ''],
      ],
      'yes',
    );
    expectCanI(
      'shopper',
      [
        ['create', 'flavors', ''],
        ['list', 'instances', TEAM],
        ['list', 'computenodes', ''],
      ],
      'no',
    );
  });

  it('gives the forced-placement permissions to whoever holds kubenova-forced-placement, and to no aggregated role', () => {
    expectCanI(
      'placer',
      [
        ['create', 'instances/forcehost', TEAM],
        ['create', 'migrations/forcehost', TEAM],
        ['create', 'migrations/evacuate', TEAM],
      ],
      'yes',
    );
    expectCanI('placer', [['create', 'instances/forcehost', 'default']], 'no');
  });
});

localOnly('forced placement needs its own permission (the forced-placement admission policy)', () => {
  const NS_ = 'placement';
  beforeAll(() => {
    kubectl(['create', 'namespace', NS_]);
    kubectl(['create', 'rolebinding', 'editor', '-n', NS_, '--clusterrole=edit', '--user=editor']);
    kubectl(['create', 'rolebinding', 'placer-edit', '-n', NS_, '--clusterrole=edit', '--user=placer']);
    kubectl(['create', 'rolebinding', 'placer', '-n', NS_, '--clusterrole=kubenova-forced-placement', '--user=placer']);
  });

  /** `kubectl create --dry-run=server` as `user`; the API server's answer. */
  const dryRun = (user: string, obj: object) =>
    runTool(
      cp.binaries.kubectl,
      ['--kubeconfig', cp.kubeconfigPath, 'create', '--dry-run=server', '-f', '-', `--as=${user}`],
      yaml.dump(obj),
    );
  const inst = (spec: object) => ({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Instance',
    metadata: { name: 'web', namespace: NS_ },
    spec: { flavor: 'm1.tiny', image: 'cirros', ...spec },
  });
  const mig = (spec: object) => ({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Migration',
    metadata: { name: 'web-move', namespace: NS_ },
    spec: { instance: 'web', ...spec },
  });
  const grant = (user: string) =>
    `a cluster admin grants it with: kubectl create rolebinding <name> -n ${NS_} --clusterrole=kubenova-forced-placement --user=${user}`;

  it.each([
    [
      'a forced host',
      inst({ host: 'node-a' }),
      `setting spec.host (a forced host, node-a) on Instance ${NS_}/web is for cloud admins: editor lacks permission create on instances/forcehost (compute.kubenova.io) in namespace ${NS_}. Leave spec.host empty and the scheduler chooses; `,
    ],
    [
      'a target host',
      mig({ targetHost: 'node-b' }),
      `setting spec.targetHost (node-b) on Migration ${NS_}/web-move is for cloud admins: editor lacks permission create on migrations/forcehost (compute.kubenova.io) in namespace ${NS_}. Leave spec.targetHost empty and the scheduler chooses; `,
    ],
    [
      'an Evacuation',
      mig({ type: 'Evacuation' }),
      `an Evacuation (Migration ${NS_}/web-move) rebuilds an instance whose host an admin has forced down, and is for cloud admins: editor lacks permission create on migrations/evacuate (compute.kubenova.io) in namespace ${NS_}. Set spec.evacuationPolicy: Automatic on the Instance to have kubenova evacuate it; `,
    ],
  ])('refuses %s to a user with edit, naming the missing permission and how to grant it', (_what, obj, message) => {
    const r = dryRun('editor', obj);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`ValidatingAdmissionPolicy 'kubenova-forced-placement'`);
    expect(r.stderr).toContain(message + grant('editor'));
  });

  it('lets the same user create them without a host, and a holder of kubenova-forced-placement with one', () => {
    for (const [user, obj] of [
      ['editor', inst({})],
      ['editor', mig({})],
      ['placer', inst({ host: 'node-a' })],
      ['placer', mig({ targetHost: 'node-b' })],
      ['placer', mig({ type: 'Evacuation' })],
    ] as const) {
      const r = dryRun(user, obj);
      expect(r.stderr, `${user}: ${JSON.stringify(obj.spec)}`).toBe('');
      expect(r.stdout).toMatch(/created \(server dry run\)/);
    }
  });

  it('lets the operator create the Evacuation of an instance with evacuationPolicy Automatic', () => {
    const r = dryRun(OPERATOR, mig({ type: 'Evacuation' }));
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/created \(server dry run\)/);
  });

  it("refuses to change an instance's forced host afterwards, and leaves alone updates that keep it", () => {
    kubectl(['apply', '-f', '-'], yaml.dump(inst({ host: 'node-a' })));
    const patch = (user: string, spec: object) =>
      runTool(cp.binaries.kubectl, [
        '--kubeconfig',
        cp.kubeconfigPath,
        'patch',
        'instance',
        'web',
        '-n',
        NS_,
        '--type=merge',
        '-p',
        JSON.stringify({ spec }),
        `--as=${user}`,
      ]);
    expect(patch('editor', { host: 'node-b' }).stderr).toMatch(/setting spec.host \(a forced host, node-b\)/);
    expect(patch('editor', { powerState: 'Stopped' })).toMatchObject({ status: 0, stderr: '' });
    expect(patch('editor', { host: null })).toMatchObject({ status: 0, stderr: '' });
  });
});

localOnly("the release namespace's Pod Security level", () => {
  const LEVELS = ['restricted', 'baseline', 'privileged'] as const;
  beforeAll(() => {
    for (const level of LEVELS) {
      kubectl(['create', 'namespace', `pss-${level}`]);
      kubectl(['label', 'namespace', `pss-${level}`, `pod-security.kubernetes.io/enforce=${level}`]);
    }
  });

  /** Each workload's pod, as its controller would create it in `namespace`, by "<workload>". */
  const pods = (namespace: string, ...sets: string[]) =>
    parseManifests(helm.ok(['template', 'kubenova', chartDir, '--namespace', NS, ...sets.flatMap((x) => ['--set', x])]))
      .filter((m) => m.kind === 'Deployment' || m.kind === 'DaemonSet')
      .map((m) => ({
        name: m.metadata.name,
        pod: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: m.metadata.name, namespace },
          spec: podSpecOf(m),
        },
      }));
  /** What Pod Security admission says of a pod: "admitted", or the checks it fails. */
  const admission = (pod: object) => {
    const r = runTool(
      cp.binaries.kubectl,
      ['--kubeconfig', cp.kubeconfigPath, 'create', '--dry-run=server', '-f', '-'],
      yaml.dump(pod),
    );
    if (r.status === 0) return 'admitted';
    const m = /violates PodSecurity "[a-z]+:latest": (.*)$/m.exec(r.stderr);
    if (!m) throw new Error(r.stderr);
    return m[1]!;
  };

  it('admits the operator under restricted: it needs no privilege at all', () => {
    const operator = pods('pss-restricted').find((p) => p.name === 'kubenova-operator')!;
    expect(admission(operator.pod)).toBe('admitted');
  });

  it('refuses the node agent under baseline for its host network, host ports and host directory, and admits it under privileged', () => {
    const agent = pods('pss-baseline').find((p) => p.name === 'kubenova-node-agent')!;
    expect(admission(agent.pod)).toBe(
      'host namespaces (hostNetwork=true), hostPath volumes (volume "state"), hostPort (container "node-agent" uses hostPorts 9470, 9471)',
    );
    expect(admission({ ...agent.pod, metadata: { ...agent.pod.metadata, namespace: 'pss-privileged' } })).toBe(
      'admitted',
    );
  });

  it('refuses the libvirt pods under baseline (libvirtd privileged, unconfined, host directories), and admits them under privileged', () => {
    const baseline = pods('pss-baseline', 'nodeAgent.driver=libvirt');
    expect(Object.fromEntries(baseline.map((p) => [p.name, admission(p.pod)]))).toEqual({
      'kubenova-operator': 'admitted',
      'kubenova-node-agent':
        'host namespaces (hostNetwork=true), hostPath volumes (volumes "state", "libvirt-host"), hostPort (container "node-agent" uses hostPorts 9470, 9471)',
      'kubenova-libvirt':
        'hostPath volumes (volumes "state", "libvirt-host"), privileged (container "libvirtd" must not set securityContext.privileged=true), seccompProfile (container "libvirtd" must not set securityContext.seccompProfile.type to "Unconfined")',
    });
    for (const p of pods('pss-privileged', 'nodeAgent.driver=libvirt'))
      expect(admission(p.pod), p.name).toBe('admitted');
  });

  it('refuses to install into a namespace that enforces a stricter level, saying which label to set, and installs nothing', () => {
    const r = helm.run(['install', 'strict', chartDir, '--namespace', 'pss-baseline', '--set', 'crds.enabled=false']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      'namespace pss-baseline enforces the Pod Security level "baseline", which refuses the pods kubenova runs on every node (host network, host ports and a host directory); they need "privileged": kubectl label namespace pss-baseline pod-security.kubernetes.io/enforce=privileged --overwrite',
    );
    expect(helm.ok(['list', '--all-namespaces', '-q'])).not.toMatch(/\bstrict\b/);
    expect(
      kubectl([
        'get',
        'serviceaccounts,roles',
        '-n',
        'pss-baseline',
        '-l',
        'app.kubernetes.io/instance=strict',
        '-o',
        'name',
      ]),
    ).toBe('');
  });
});

localOnly('helm install with the libvirt driver', () => {
  const RELEASE = 'kubenova-lv';
  const LV_NS = 'kubenova-libvirt';
  let output = '';

  beforeAll(() => {
    // Beside the fake-driver release: its own namespace and object names; the CRDs are the other release's.
    output = helm.ok([
      'install',
      RELEASE,
      chartDir,
      '--namespace',
      LV_NS,
      '--create-namespace',
      '--set',
      'crds.enabled=false',
      '--set',
      'nodeAgent.driver=libvirt',
    ]);
  });

  it('creates every object it renders, the libvirt DaemonSet and ConfigMap too, as the server validated them', () => {
    const rendered = helm.ok(['get', 'manifest', RELEASE, '--namespace', LV_NS]);
    const manifests = parseManifests(rendered);
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).filter((k) => k.includes('libvirt'))).toEqual([
      `ConfigMap/${RELEASE}-libvirt`,
      `DaemonSet/${RELEASE}-libvirt`,
    ]);
    const found = kubectl(['get', '-f', '-', '-o', 'name'], rendered).trim().split('\n');
    expect(found).toHaveLength(manifests.length);
    const ds = JSON.parse(kubectl(['get', 'daemonset', `${RELEASE}-libvirt`, '-n', LV_NS, '-o', 'json'])) as {
      spec: { template: { spec: { initContainers: object[]; containers: object[] } } };
    };
    // What the server kept of what matters: virtlogd as a restartable sidecar, libvirtd privileged.
    expect(ds.spec.template.spec.initContainers).toMatchObject([{ name: 'virtlogd', restartPolicy: 'Always' }]);
    expect(ds.spec.template.spec.containers).toMatchObject([
      { name: 'libvirtd', securityContext: { privileged: true } },
    ]);
  });

  it('shows a first Flavor and Instance inline in its notes, which the API server accepts as they are', () => {
    const block = /<<'YAML'\n([\s\S]*?)\nYAML\n/.exec(output)?.[1];
    expect(block, output).toBeDefined();
    expect(yaml.loadAll(block!)).toMatchObject([
      { kind: 'Flavor', spec: { vcpus: 1, memoryMiB: 128, rootDiskGiB: 1 } },
      { kind: 'Instance', spec: { image: 'tiny' } },
    ]);
    const r = runTool(
      cp.binaries.kubectl,
      ['--kubeconfig', cp.kubeconfigPath, 'apply', '--dry-run=server', '-n', 'default', '-f', '-'],
      block,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/flavor.compute.kubenova.io\/m1.nano created \(server dry run\)/);
    expect(output).toMatch(/libvirt: +DaemonSet kubenova-lv-libvirt/);
  });

  it('leaves none of its objects behind on uninstall', () => {
    helm.ok(['uninstall', RELEASE, '--namespace', LV_NS, '--wait']);
    const left = kubectl([
      'get',
      [
        'daemonset,deployment,configmap,serviceaccount,role,rolebinding,clusterrole,clusterrolebinding',
        'validatingadmissionpolicy,validatingadmissionpolicybinding',
      ].join(','),
      '-A',
      '-l',
      `app.kubernetes.io/instance=${RELEASE}`,
      '-o',
      'name',
    ]);
    expect(left.trim()).toBe('');
  });
});

localOnly('the CRDs across helm upgrade and uninstall', () => {
  const FLAVORS = 'flavors.compute.kubenova.io';
  let copies = 0;

  /** A copy of the chart, changed by `edit` as a later (or earlier) chart version would be. */
  function chartCopy(edit: (chart: string) => void): string {
    const chart = join(dir, `chart-${++copies}`);
    cpSync(chartDir, chart, { recursive: true });
    edit(chart);
    return chart;
  }

  type Schema = { type?: string; description?: string; properties?: Record<string, Schema> };
  type CrdDoc = { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  const flavorWithZone = yaml.dump({
    apiVersion: 'compute.kubenova.io/v1alpha1',
    kind: 'Flavor',
    metadata: { name: 'zoned' },
    spec: { vcpus: 1, memoryMiB: 128, rootDiskGiB: 1, zone: 'az1' },
  });
  /** A server-side dry run of a Flavor with spec.zone, a field only the changed CRD has. */
  const createFlavorWithZone = () =>
    runTool(
      cp.binaries.kubectl,
      ['--kubeconfig', cp.kubeconfigPath, 'create', '--dry-run=server', '-o', 'jsonpath={.spec.zone}', '-f', '-'],
      flavorWithZone,
    );
  const crdOwners = () =>
    kubectl([
      'get',
      'crd',
      ...CRDS,
      '-o',
      'jsonpath={range .items[*]}{.metadata.annotations.meta\\.helm\\.sh/release-name}/{.metadata.annotations.helm\\.sh/resource-policy} {end}',
    ])
      .trim()
      .split(' ');

  it('helm upgrade applies a changed CRD, and the next upgrade takes it back', () => {
    expect(createFlavorWithZone().stderr).toMatch(/unknown field "spec.zone"/);
    const changed = chartCopy((chart) => {
      const file = join(chart, 'files', 'crds', `${FLAVORS}.yaml`);
      const crd = yaml.load(readFileSync(file, 'utf8')) as CrdDoc;
      const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
      spec.properties = { ...spec.properties, zone: { type: 'string', description: 'A field a later version adds.' } };
      writeFileSync(file, yaml.dump(crd));
    });
    helm.ok(['upgrade', 'kubenova', changed, '--namespace', NS]);
    expect(createFlavorWithZone()).toMatchObject({ status: 0, stdout: 'az1' });
    helm.ok(['upgrade', 'kubenova', chartDir, '--namespace', NS]);
    expect(createFlavorWithZone().stderr).toMatch(/unknown field "spec.zone"/);
  });

  it('helm uninstall deletes the release but keeps the CRDs and every Instance and Flavor; installing it again adopts them', () => {
    apply(instance('outlives-the-release'));
    const objects = () => kubectl(['get', 'instances,flavors', '-A', '-o', 'name']).trim().split('\n').sort();
    const before = objects();
    expect(before).toContain('instance.compute.kubenova.io/outlives-the-release');
    const out = helm.ok(['uninstall', 'kubenova', '--namespace', NS, '--wait']);
    for (const crd of CRDS) expect(out).toContain(`[CustomResourceDefinition] ${crd}`);
    expect(helm.ok(['list', '--namespace', NS, '-q']).trim()).toBe('');
    expect(
      kubectl([
        'get',
        'deployment,daemonset,serviceaccount,role,rolebinding,clusterrole,clusterrolebinding,poddisruptionbudget',
        '-A',
        '-l',
        'app.kubernetes.io/instance=kubenova',
        '-o',
        'name',
      ]).trim(),
    ).toBe('');
    expect(crdOwners()).toEqual(CRDS.map(() => 'kubenova/keep'));
    expect(objects()).toEqual(before);
    // The kept CRDs still name this release and namespace, so installing it again takes them back.
    helm.ok(['install', 'kubenova', chartDir, '--namespace', NS]);
    expect(helm.ok(['status', 'kubenova', '--namespace', NS])).toMatch(/STATUS: deployed/);
    expect(objects()).toEqual(before);
  });

  it('a release of the earlier chart (CRDs in crds/, not owned by it) takes them over with helm upgrade --take-ownership, once', () => {
    // The chart as it was: the CRDs in crds/, which helm installs once and never upgrades.
    const earlier = chartCopy((chart) => {
      renameSync(join(chart, 'files', 'crds'), join(chart, 'crds'));
      rmSync(join(chart, 'templates', 'crds.yaml'));
    });
    helm.ok(['uninstall', 'kubenova', '--namespace', NS, '--wait']);
    kubectl(['label', 'crd', ...CRDS, 'app.kubernetes.io/managed-by-']);
    kubectl(['annotate', 'crd', ...CRDS, 'meta.helm.sh/release-name-', 'meta.helm.sh/release-namespace-']);
    kubectl(['annotate', 'crd', ...CRDS, 'helm.sh/resource-policy-']);
    helm.ok(['install', 'kubenova', earlier, '--namespace', NS]);
    const refused = helm.run(['upgrade', 'kubenova', chartDir, '--namespace', NS]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/CustomResourceDefinition ".*" in namespace "" exists and cannot be imported/);
    helm.ok(['upgrade', 'kubenova', chartDir, '--namespace', NS, '--take-ownership']);
    expect(crdOwners()).toEqual(CRDS.map(() => 'kubenova/keep'));
    // From then on a plain upgrade applies them.
    helm.ok(['upgrade', 'kubenova', chartDir, '--namespace', NS]);
  });
});

localOnly("the node agents' own-lease admission policy", () => {
  const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;
  const nodeLease = (name: string, labelled = true) => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace: NS, ...(labelled ? { labels: { 'compute.kubenova.io/node-lease': 'true' } } : {}) },
    spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: '2030-01-01T00:00:00.000000Z' },
  });
  const renewal = { spec: { renewTime: '2030-01-01T00:00:10.000000Z' } };

  it('lets the agent of node-a create and renew its own node Lease, and refuses it the Lease of node-b', async () => {
    expect(await asAgent('POST', 'node-a', LEASES, nodeLease('node-a'))).toMatchObject({ status: 201 });
    expect(await patchAsAgent('node-a', `${LEASES}/node-a`, renewal)).toMatchObject({ status: 200 });
    const created = await asAgent('POST', 'node-a', LEASES, nodeLease('node-b'));
    expect(created.status).toBe(403);
    expect(created.message).toMatch(
      /ValidatingAdmissionPolicy 'kubenova-node-agent-own-lease'.*denied request: the kubenova node agent on node node-a may only renew its own node Lease node-a, not write Lease kubenova-system\/node-b/,
    );
    apply(nodeLease('node-b'));
    expect((await patchAsAgent('node-a', `${LEASES}/node-b`, renewal)).status).toBe(403);
  });

  it("refuses an agent a Lease named after its node that is no node Lease, so a node named like the operator's Lease cannot take it", async () => {
    apply(nodeLease('kubenova-operator', false));
    const refused = await patchAsAgent('kubenova-operator', `${LEASES}/kubenova-operator`, {
      ...renewal,
      metadata: { labels: { 'compute.kubenova.io/node-lease': 'true' } },
    });
    expect(refused.status).toBe(403);
    expect(refused.message).toMatch(
      /may only write node Leases \(label compute.kubenova.io\/node-lease\), and Lease kubenova-system\/kubenova-operator is not one/,
    );
    const unlabelled = await asAgent('POST', 'node-c', LEASES, nodeLease('node-c', false));
    expect(unlabelled.status).toBe(403);
  });
});
