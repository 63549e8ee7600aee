// `helm install` of charts/kubenova into a real control plane (RBAC on): every object
// exists, bad values are refused before anything is installed, each service account can do
// exactly what its component's code needs, and the admission policy keeps a node agent to
// its own host. Pods never start here (no kubelet); that is expected.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ControlPlane } from '../devenv/controlplane/controlplane.js';
import { Helm, chartDir, parseManifests, runTool } from './harness/chart.js';
import { localOnly } from './harness/mode.js';

const NS = 'kubenova-system';
const OPERATOR = `system:serviceaccount:${NS}:kubenova-operator`;
const AGENT = `system:serviceaccount:${NS}:kubenova-node-agent`;
const GROUP = '/apis/compute.kubenova.io/v1alpha1';

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

/** `kubectl auth can-i` as a service account: "yes" or "no". `resource` is kind, kind/status or kind/name. */
function canI(as: string, verb: string, resource: string, namespace = 'default'): string {
  const status = resource.endsWith('/status');
  const target = status ? resource.slice(0, -'/status'.length) : resource;
  const args = [
    '--kubeconfig',
    cp.kubeconfigPath,
    'auth',
    'can-i',
    verb,
    target,
    `--as=${as}`,
    '-n',
    namespace,
    ...(status ? ['--subresource=status'] : []),
  ];
  const r = runTool(cp.binaries.kubectl, args);
  if (r.status !== 0 && r.stdout.trim() !== 'no') throw new Error(`kubectl auth can-i failed: ${r.stderr}`);
  return r.stdout.trim();
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
    expect(manifests.map((m) => m.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'DaemonSet',
      'Deployment',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
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
    expect(crds.trim().split(' ').sort()).toEqual([
      'computenodes.compute.kubenova.io=True',
      'computequotas.compute.kubenova.io=True',
      'flavors.compute.kubenova.io=True',
      'instances.compute.kubenova.io=True',
      'migrations.compute.kubenova.io=True',
      'servergroups.compute.kubenova.io=True',
    ]);
    expect(helm.ok(['status', 'kubenova', '--namespace', NS])).toMatch(/STATUS: deployed/);
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
    ['get', 'secrets'],
    ['create', 'secrets'],
    ['delete', 'secrets'],
    ['create', 'events'],
    ['get', 'leases/kubenova-operator', NS],
    ['update', 'leases/kubenova-operator', NS],
    ['create', 'leases', NS],
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
    ['list', 'secrets'],
    ['update', 'secrets'],
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
    ['get', 'secrets'],
    ['create', 'events'],
  ];
  const agentMustNot: [string, string, string?][] = [
    ['delete', 'instances'],
    ['create', 'instances'],
    ['patch', 'instances'],
    ['create', 'migrations'],
    ['patch', 'migrations'],
    ['delete', 'migrations'],
    ['list', 'secrets'],
    ['watch', 'secrets'],
    ['create', 'secrets'],
    ['delete', 'secrets'],
    ['delete', 'computenodes'],
    ['list', 'computenodes'],
    ['patch', 'flavors'],
    ['patch', 'flavors/status'],
    ['get', 'leases/kubenova-operator', NS],
    ['create', 'pods'],
    ['get', 'nodes'],
  ];

  const expectCanI = (as: string, checks: [string, string, string?][], expected: 'yes' | 'no') => {
    const line = ([verb, resource, ns]: [string, string, string?], answer: string) =>
      `${verb} ${resource}${ns ? ` -n ${ns}` : ''}: ${answer}`;
    expect(checks.map((c) => line(c, canI(as, c[0], c[1], c[2])))).toEqual(checks.map((c) => line(c, expected)));
  };

  it('lets the operator do every verb its code uses: read all kinds, patch statuses, create migrations, handle transfer secrets, hold its Lease', () => {
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

  it('refuses the operator anything else: deleting or creating ComputeNodes, editing flavors, listing secrets, other Leases', () => {
    expectCanI(OPERATOR, operatorMustNot, 'no');
  });

  it('lets the node agent do every verb its code uses: register and patch ComputeNodes, watch work, patch statuses, read a transfer token', () => {
    expectCanI(AGENT, agentNeeds, 'yes');
  });

  it('refuses the node agent anything else: deleting instances, creating migrations, listing secrets, editing specs', () => {
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

  it("leaves everyone else alone: the admin writes any host's objects", () => {
    expect(() => setStatus('instance', 'on-b', { powerState: 'running' })).not.toThrow();
    expect(() => setStatus('computenode', 'node-b', { driver: 'fake' })).not.toThrow();
  });
});

localOnly('helm install with the libvirt driver', () => {
  const RELEASE = 'kubenova-lv';
  const LV_NS = 'kubenova-libvirt';
  let output = '';

  beforeAll(() => {
    // Beside the fake-driver release: its own namespace and object names, the CRDs already there.
    output = helm.ok([
      'install',
      RELEASE,
      chartDir,
      '--namespace',
      LV_NS,
      '--create-namespace',
      '--skip-crds',
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
