// The Helm chart as files: it lints, ships the generated CRDs unchanged, documents every
// value, and renders pods that pass each setting as the environment variable the component
// reads. No cluster is needed here (helm-install.test.ts installs it).
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_FLAGS } from '../node-agent/config.js';
import { OPERATOR_FLAGS } from '../operator/config.js';
import { Metrics } from '../common/runtime/metrics.js';
import {
  Helm,
  chartDir,
  containerOf,
  findManifest,
  parseManifests,
  podSpecOf,
  resolveEnv,
  type Container,
  type Manifest,
} from './harness/chart.js';
import { repoRoot } from './harness/components.js';

const home = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-helm-'));
const helm = new Helm(home);

afterAll(() => rmSync(home, { recursive: true, force: true }));

/** Renders the chart; `values` is a values file's content (fractions cannot go through --set). */
function render(values: object = {}, ...sets: string[]): Manifest[] {
  const file = join(home, `values-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml.dump(values));
  return parseManifests(
    helm.ok([
      'template',
      'kubenova',
      chartDir,
      '--namespace',
      'kubenova-system',
      '-f',
      file,
      ...sets.flatMap((s) => ['--set', s]),
    ]),
  );
}

const envNames = (m: Manifest, container: string) => (containerOf(m, container).env ?? []).map((e) => e.name);
const flagEnvs = (flags: Record<string, { env?: string }>) =>
  new Set(
    Object.values(flags)
      .map((f) => f.env)
      .filter((e): e is string => !!e),
  );

/** What the downward API would give a pod of this workload. */
const FIELDS = { 'metadata.namespace': 'kubenova-system', 'spec.nodeName': 'node-a', 'status.hostIP': '10.1.2.3' };

describe('the Helm chart', () => {
  it('passes helm lint --strict with no warning or error', () => {
    const r = helm.run(['lint', '--strict', chartDir]);
    expect(r.stderr + r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('ships the CRDs of crds/ byte for byte in files/crds/, and nothing in crds/ that Helm would never upgrade', () => {
    const generated = readdirSync(join(repoRoot, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    const shipped = readdirSync(join(chartDir, 'files', 'crds')).sort();
    expect(shipped).toEqual(generated);
    for (const f of generated) {
      expect(
        readFileSync(join(chartDir, 'files', 'crds', f), 'utf8'),
        `charts/kubenova/files/crds/${f} differs from crds/${f}; run npm run chart:crds`,
      ).toBe(readFileSync(join(repoRoot, 'crds', f), 'utf8'));
    }
    // Helm installs a chart's crds/ once and never upgrades or deletes what is there.
    expect(existsSync(join(chartDir, 'crds'))).toBe(false);
  });

  it('documents every value in values.yaml with a comment', () => {
    // Values that are Kubernetes objects passed through whole are documented as a block.
    const passThrough = new Set(['resources', 'podSecurityContext', 'securityContext', 'nodeSelector']);
    const lines = readFileSync(join(chartDir, 'values.yaml'), 'utf8').split('\n');
    const undocumented: string[] = [];
    const parents: { indent: number; key: string }[] = [];
    lines.forEach((line, i) => {
      const m = /^(\s*)([A-Za-z][\w.-]*):/.exec(line);
      if (!m) return;
      const indent = m[1]!.length;
      while (parents.length && parents[parents.length - 1]!.indent >= indent) parents.pop();
      const path = [...parents.map((p) => p.key), m[2]!].join('.');
      parents.push({ indent, key: m[2]! });
      if (parents.slice(0, -1).some((p) => passThrough.has(p.key))) return;
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() === '') j--;
      if (!(j >= 0 && lines[j]!.trim().startsWith('#'))) undocumented.push(path);
    });
    expect(undocumented).toEqual([]);
  });

  it('sets only environment variables the components read, and all the operator settings the chart promises', () => {
    const manifests = render();
    const operatorEnv = envNames(findManifest(manifests, 'Deployment', '-operator'), 'operator');
    const agentEnv = envNames(findManifest(manifests, 'DaemonSet', '-node-agent'), 'node-agent');
    const operatorReads = flagEnvs(OPERATOR_FLAGS);
    const agentReads = flagEnvs(AGENT_FLAGS);
    expect(operatorEnv.filter((e) => !operatorReads.has(e))).toEqual([]);
    // NODE_IP only feeds $(NODE_IP) in the listen addresses.
    expect(agentEnv.filter((e) => !agentReads.has(e) && e !== 'NODE_IP')).toEqual([]);
    expect(operatorEnv).toEqual(
      expect.arrayContaining([
        'KUBENOVA_NODE_HEARTBEAT_TIMEOUT',
        'KUBENOVA_MAX_ATTEMPTS',
        'KUBENOVA_RAM_WEIGHT_MULTIPLIER',
        'KUBENOVA_CPU_WEIGHT_MULTIPLIER',
        'KUBENOVA_DISK_WEIGHT_MULTIPLIER',
        'KUBENOVA_HOST_SUBSET_SIZE',
        'KUBENOVA_ALLOW_RESIZE_TO_SAME_HOST',
        'KUBENOVA_RESIZE_CONFIRM_WINDOW',
        'KUBENOVA_WORKERS',
        'KUBENOVA_METRICS_PORT',
        'KUBENOVA_METRICS_ADDRESS',
        'LOG_LEVEL',
        'LOG_FORMAT',
        'KUBENOVA_LEADER_ELECT',
        'KUBENOVA_LEADER_ELECTION_NAMESPACE',
        'KUBENOVA_LEADER_ELECTION_ID',
        'KUBENOVA_LEASE_DURATION',
        'KUBENOVA_RENEW_DEADLINE',
        'KUBENOVA_RETRY_PERIOD',
      ]),
    );
    expect(agentEnv).toEqual(
      expect.arrayContaining([
        'NODE_NAME',
        'KUBENOVA_DRIVER',
        'KUBENOVA_STATE_DIR',
        'KUBENOVA_AUDIT_INTERVAL',
        'KUBENOVA_MIGRATION_PORT',
        'KUBENOVA_MIGRATION_ADDRESS',
        'KUBENOVA_ADVERTISE_ADDRESS',
        'LOG_LEVEL',
      ]),
    );
  });

  it('passes each value to its component as the variable it reads, numbers written plainly', () => {
    const manifests = render(
      {
        operator: {
          nodeHeartbeatTimeout: 0.5,
          scheduler: { ramWeightMultiplier: -1.5 },
          leaderElection: { leaseDuration: 30, renewDeadline: 20, retryPeriod: 0.5 },
        },
        nodeAgent: {
          heartbeatInterval: 0.25,
          auditInterval: 12.5,
          fake: { memoryMiB: 1000000 },
          nodeLabels: { tier: 'gold', gpu: 'none' },
        },
      },
      'operator.maxAttempts=5',
      'operator.scheduler.hostSubsetSize=3',
      'operator.allowResizeToSameHost=true',
      'operator.resizeConfirmWindow=30',
      'operator.workers=2',
      'log.level=debug',
      'nodeAgent.zone=az2',
      'nodeAgent.stateDir=/srv/kubenova',
    );
    const op = resolveEnv(containerOf(findManifest(manifests, 'Deployment', '-operator'), 'operator'), FIELDS);
    expect(op).toMatchObject({
      KUBENOVA_MAX_ATTEMPTS: '5',
      KUBENOVA_RAM_WEIGHT_MULTIPLIER: '-1.5',
      KUBENOVA_CPU_WEIGHT_MULTIPLIER: '1',
      KUBENOVA_HOST_SUBSET_SIZE: '3',
      KUBENOVA_ALLOW_RESIZE_TO_SAME_HOST: 'true',
      KUBENOVA_RESIZE_CONFIRM_WINDOW: '30',
      KUBENOVA_WORKERS: '2',
      KUBENOVA_NODE_HEARTBEAT_TIMEOUT: '0.5',
      KUBENOVA_LEADER_ELECT: 'true',
      KUBENOVA_LEADER_ELECTION_NAMESPACE: 'kubenova-system',
      KUBENOVA_LEADER_ELECTION_ID: 'kubenova-operator',
      KUBENOVA_LEASE_DURATION: '30',
      KUBENOVA_RENEW_DEADLINE: '20',
      KUBENOVA_RETRY_PERIOD: '0.5',
      KUBENOVA_METRICS_ADDRESS: '0.0.0.0',
      KUBENOVA_METRICS_PORT: '8080',
      LOG_LEVEL: 'debug',
      LOG_FORMAT: 'json',
    });
    const daemonSet = findManifest(manifests, 'DaemonSet', '-node-agent');
    const agent = resolveEnv(containerOf(daemonSet, 'node-agent'), FIELDS);
    expect(agent).toMatchObject({
      NODE_NAME: 'node-a',
      KUBENOVA_ADVERTISE_ADDRESS: '10.1.2.3',
      KUBENOVA_MIGRATION_ADDRESS: '10.1.2.3',
      KUBENOVA_METRICS_ADDRESS: '10.1.2.3',
      KUBENOVA_DRIVER: 'fake',
      KUBENOVA_STATE_DIR: '/srv/kubenova',
      KUBENOVA_AUDIT_INTERVAL: '12.5',
      KUBENOVA_HEARTBEAT_INTERVAL: '0.25',
      KUBENOVA_CAPACITY_MEMORY_MIB: '1000000',
      KUBENOVA_ZONE: 'az2',
      KUBENOVA_NODE_LABELS: 'gpu=none,tier=gold',
      LOG_LEVEL: 'debug',
    });
    const pod = podSpecOf(daemonSet);
    expect(pod.volumes?.find((v) => v.name === 'state')?.hostPath?.path).toBe('/srv/kubenova');
    expect(containerOf(daemonSet, 'node-agent').volumeMounts).toContainEqual({
      name: 'state',
      mountPath: '/srv/kubenova',
    });
  });

  it('renders two leader-elected operator replicas and one agent per host, hardened: non-root, read-only root, no capabilities, RuntimeDefault seccomp, probes on the metrics port', () => {
    const manifests = render();
    const deployment = findManifest(manifests, 'Deployment', '-operator');
    expect((deployment as unknown as { spec: { replicas: number } }).spec.replicas).toBe(2);
    const daemonSet = findManifest(manifests, 'DaemonSet', '-node-agent');
    for (const [workload, name, args] of [
      [deployment, 'operator', 'dist/operator/main.js'],
      [daemonSet, 'node-agent', 'dist/node-agent/main.js'],
    ] as const) {
      const pod = podSpecOf(workload);
      const c = containerOf(workload, name);
      expect(c.args).toEqual([args]);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      expect(c.ports?.find((p) => p.name === 'metrics')).toBeDefined();
      expect(c.resources).toMatchObject({ requests: expect.any(Object), limits: expect.any(Object) });
      expect(pod.serviceAccountName).toMatch(new RegExp(`-${name}$`));
    }
    const agentPod = podSpecOf(daemonSet);
    expect(agentPod.hostNetwork).toBe(true);
    expect(agentPod.volumes?.find((v) => v.name === 'state')?.hostPath).toEqual({
      path: '/var/lib/kubenova',
      type: 'DirectoryOrCreate',
    });
    // The only root step: handing the host directory to the agent's user, with CAP_CHOWN alone.
    expect(agentPod.initContainers?.map((c) => [c.command, c.securityContext?.capabilities])).toEqual([
      [['chown', '1000:1000', '/var/lib/kubenova'], { drop: ['ALL'], add: ['CHOWN'] }],
    ]);
    expect(findManifest(manifests, 'Service', '-operator-metrics')).toBeDefined();
  });

  it.each([
    [
      'a renew deadline not below the lease duration',
      ['operator.leaderElection.renewDeadline=15'],
      /renewDeadline \(15\) must be shorter than leaseDuration \(15\)/,
    ],
    [
      'a retry period not below the renew deadline',
      ['operator.leaderElection.retryPeriod=10'],
      /retryPeriod \(10\) must be shorter than renewDeadline \(10\)/,
    ],
    [
      'several replicas without leader election',
      ['operator.replicas=3', 'operator.leaderElection.enabled=false'],
      /replicas is 3 but operator.leaderElection.enabled is false/,
    ],
    [
      "agent heartbeats slower than the operator's timeout",
      ['nodeAgent.heartbeatInterval=60'],
      /heartbeatInterval \(60\) must be shorter than operator.nodeHeartbeatTimeout \(40\)/,
    ],
    ['the metrics and migration ports on one host port', ['nodeAgent.metrics.port=9471'], /both 9471/],
  ])('refuses %s, which the schema cannot express, saying which values conflict', (_what, sets, message) => {
    const r = helm.run(['template', 'kubenova', chartDir, ...sets.flatMap((s) => ['--set', s])]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('renders without leader election and its Role for a single replica that does not elect', () => {
    const manifests = render({}, 'operator.replicas=1', 'operator.leaderElection.enabled=false');
    expect(manifests.filter((m) => m.kind === 'Role').map((m) => m.metadata.name)).toEqual([
      'kubenova-node-agent-secrets',
      'kubenova-node-agent-lease',
      'kubenova-operator-secrets',
      'kubenova-operator-node-leases',
    ]);
    expect(
      resolveEnv(containerOf(findManifest(manifests, 'Deployment', '-operator'), 'operator'), FIELDS)
        .KUBENOVA_LEADER_ELECT,
    ).toBe('false');
  });
});

describe("the Helm chart's roles and policies", () => {
  it('grants Secrets only through Roles in the release namespace, never a ClusterRole', () => {
    const manifests = render();
    const secretRules = manifests
      .filter((m) => m.kind === 'ClusterRole' || m.kind === 'Role')
      .flatMap((m) =>
        (m as unknown as { rules: { apiGroups: string[]; resources: string[] }[] }).rules
          .filter((r) => r.apiGroups.includes('') && r.resources.includes('secrets'))
          .map(() => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`),
      );
    expect(secretRules.sort()).toEqual([
      'Role/kubenova-system/kubenova-node-agent-secrets',
      'Role/kubenova-system/kubenova-operator-secrets',
    ]);
  });

  it('renders the roles for people only with rbac.userRoles, and no RBAC at all without rbac.create', () => {
    const names = (...sets: string[]) =>
      render({}, ...sets)
        .filter((m) => m.kind.includes('Role'))
        .map((m) => `${m.kind}/${m.metadata.name}`);
    const people = ['view', 'edit', 'flavor-reader', 'network-reader', 'network-admin', 'forced-placement'].map(
      (r) => `ClusterRole/kubenova-${r}`,
    );
    expect(names()).toEqual(expect.arrayContaining(people));
    expect(names('rbac.userRoles=false').filter((n) => people.includes(n))).toEqual([]);
    expect(names('rbac.create=false')).toEqual([]);
  });

  it('renders the admission policies and their bindings only with admissionPolicy.enabled', () => {
    const policies = (...sets: string[]) =>
      render({}, ...sets)
        .filter((m) => m.kind.startsWith('ValidatingAdmissionPolicy'))
        .map((m) => `${m.kind}/${m.metadata.name}`)
        .sort();
    expect(policies()).toEqual([
      'ValidatingAdmissionPolicy/kubenova-forced-placement',
      'ValidatingAdmissionPolicy/kubenova-node-agent-events',
      'ValidatingAdmissionPolicy/kubenova-node-agent-own-host',
      'ValidatingAdmissionPolicy/kubenova-node-agent-own-lease',
      'ValidatingAdmissionPolicyBinding/kubenova-forced-placement',
      'ValidatingAdmissionPolicyBinding/kubenova-node-agent-events',
      'ValidatingAdmissionPolicyBinding/kubenova-node-agent-own-host',
      'ValidatingAdmissionPolicyBinding/kubenova-node-agent-own-lease',
    ]);
    expect(policies('admissionPolicy.enabled=false')).toEqual([]);
  });

  it('renders the instance-finalizer MutatingAdmissionPolicy in the newest version the cluster offers, and nothing where it offers none', () => {
    const MAP = 'admissionregistration.k8s.io/%s/MutatingAdmissionPolicy';
    const finalizerPolicy = (offered: string[], ...sets: string[]) =>
      parseManifests(
        helm.ok([
          'template',
          'kubenova',
          chartDir,
          ...offered.flatMap((v) => ['--api-versions', MAP.replace('%s', v)]),
          ...sets.flatMap((x) => ['--set', x]),
        ]),
      )
        .filter((m) => m.kind.startsWith('MutatingAdmissionPolicy'))
        .map((m) => `${m.apiVersion} ${m.kind}/${m.metadata.name}`);
    const both = (version: string) => [
      `admissionregistration.k8s.io/${version} MutatingAdmissionPolicy/kubenova-instance-finalizer`,
      `admissionregistration.k8s.io/${version} MutatingAdmissionPolicyBinding/kubenova-instance-finalizer`,
    ];
    expect(finalizerPolicy(['v1', 'v1beta1'])).toEqual(both('v1'));
    expect(finalizerPolicy(['v1beta1'])).toEqual(both('v1beta1'));
    expect(finalizerPolicy([])).toEqual([]);
    expect(finalizerPolicy(['v1'], 'admissionPolicy.enabled=false')).toEqual([]);
  });
});

/** What the libvirt tests read beyond the harness's Container: exec probes, sidecars, mount options. */
type Probe = { exec?: { command: string[] } };
type FullContainer = Omit<Container, 'volumeMounts' | 'readinessProbe' | 'livenessProbe'> & {
  restartPolicy?: string;
  startupProbe?: Probe;
  readinessProbe?: Probe & { httpGet?: { path: string; port: string | number } };
  livenessProbe?: Probe & { httpGet?: { path: string; port: string | number } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string; subPathExpr?: string }[];
};

/** Every container and init container of every workload, as "<workload>/<container>". */
function allContainers(manifests: Manifest[]): [string, FullContainer][] {
  return manifests
    .filter((m) => m.kind === 'Deployment' || m.kind === 'DaemonSet')
    .flatMap((m) => {
      const pod = podSpecOf(m);
      return [...(pod.initContainers ?? []), ...pod.containers].map((c): [string, FullContainer] => [
        `${m.metadata.name}/${c.name}`,
        c,
      ]);
    });
}

const fullContainer = (m: Manifest, name: string): FullContainer => {
  const pod = podSpecOf(m);
  const c = [...(pod.initContainers ?? []), ...pod.containers].find((x) => x.name === name);
  if (!c) throw new Error(`${m.metadata.name} has no container ${name}`);
  return c;
};
const mountOf = (c: FullContainer, volume: string) => c.volumeMounts?.filter((v) => v.name === volume) ?? [];
const hostPathOf = (m: Manifest, volume: string) => podSpecOf(m).volumes?.find((v) => v.name === volume)?.hostPath;

describe('the Helm chart with the libvirt driver', () => {
  const libvirt = (values: object = {}, ...sets: string[]) =>
    render(values, 'nodeAgent.driver=libvirt', 'nodeAgent.stateDir=/srv/kubenova', ...sets);

  it('renders nothing of libvirt with the default fake driver', () => {
    const manifests = render();
    expect(manifests.filter((m) => m.kind === 'DaemonSet').map((m) => m.metadata.name)).toEqual([
      'kubenova-node-agent',
    ]);
    expect(manifests.filter((m) => m.kind === 'ConfigMap')).toEqual([]);
    expect(envNames(findManifest(manifests, 'DaemonSet', '-node-agent'), 'node-agent')).not.toContain(
      'KUBENOVA_LIBVIRT_URI',
    );
  });

  it("runs libvirtd and a virtlogd sidecar in a DaemonSet of their own on the agents' nodes, off the host net", () => {
    const scheduling = {
      nodeAgent: {
        nodeSelector: { 'kubenova.io/compute': 'true' },
        tolerations: [{ operator: 'Exists' }],
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
        priorityClassName: 'system-node-critical',
      },
    };
    const manifests = libvirt(scheduling);
    const agents = findManifest(manifests, 'DaemonSet', '-node-agent');
    const daemons = findManifest(manifests, 'DaemonSet', '-libvirt');
    const pod = podSpecOf(daemons);
    for (const key of ['nodeSelector', 'tolerations', 'affinity', 'priorityClassName'])
      expect(pod[key], key).toEqual(podSpecOf(agents)[key]);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.automountServiceAccountToken).toBe(false);
    // The sandbox, not libvirtd, is PID 1: it reaps the QEMU processes libvirt daemonizes.
    expect(pod.shareProcessNamespace).toBe(true);
    expect(pod.containers.map((c) => [c.name, c.command, c.args])).toEqual([
      [
        'libvirtd',
        ['/usr/sbin/libvirtd'],
        ['--config', '/etc/kubenova/libvirt/libvirtd.conf', '--pid-file', '/run/libvirtd.pid'],
      ],
    ]);
    const virtlogd = fullContainer(daemons, 'virtlogd');
    expect([virtlogd.command, virtlogd.args, virtlogd.restartPolicy]).toEqual([
      ['sh', '-c', 'mkdir -p /var/log/libvirt/qemu && exec /usr/sbin/virtlogd "$@"', 'virtlogd'],
      ['--config', '/etc/kubenova/libvirt/virtlogd.conf', '--pid-file', '/run/virtlogd.pid'],
      'Always',
    ]);
    // virtlogd's socket is up before libvirtd starts; both share the pod's /run and log directory.
    expect(virtlogd.startupProbe?.exec?.command).toEqual(['test', '-S', '/run/libvirt/virtlogd-sock']);
    const libvirtd = fullContainer(daemons, 'libvirtd');
    for (const volume of ['run', 'logs']) expect(mountOf(libvirtd, volume)).toEqual(mountOf(virtlogd, volume));
    // virtlogd opens each guest's serial console file, in the state directory the agent reads.
    expect(mountOf(virtlogd, 'state')).toEqual(mountOf(libvirtd, 'state'));
    expect((daemons as unknown as { spec: { updateStrategy: object } }).spec.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1 },
    });
    expect(
      libvirt({}, 'nodeAgent.libvirt.updateStrategy=OnDelete')
        .filter((m) => m.kind === 'DaemonSet' && m.metadata.name.endsWith('-libvirt'))
        .map((m) => (m as unknown as { spec: { updateStrategy: object } }).spec.updateStrategy),
    ).toEqual([{ type: 'OnDelete' }]);
  });

  it("shares libvirtd's socket directory with the agent (a hostPath under stateDir) and points the URI at it", () => {
    const manifests = libvirt();
    const agents = findManifest(manifests, 'DaemonSet', '-node-agent');
    const daemons = findManifest(manifests, 'DaemonSet', '-libvirt');
    const agent = fullContainer(agents, 'node-agent');
    const libvirtd = fullContainer(daemons, 'libvirtd');
    expect(hostPathOf(daemons, 'libvirt-host')).toEqual({ path: '/srv/kubenova/_libvirt', type: 'DirectoryOrCreate' });
    expect(hostPathOf(agents, 'libvirt-host')).toEqual(hostPathOf(daemons, 'libvirt-host'));
    // <stateDir>/_libvirt/<node>/sock: nodes that share a filesystem never share a libvirtd.
    const [inLibvirtd] = mountOf(libvirtd, 'libvirt-host').filter((m) => m.subPathExpr === '$(NODE_NAME)/sock');
    const [inAgent] = mountOf(agent, 'libvirt-host');
    expect(inAgent).toEqual({
      name: 'libvirt-host',
      mountPath: inLibvirtd!.mountPath,
      subPathExpr: '$(NODE_NAME)/sock',
      readOnly: true,
    });
    for (const c of [agent, libvirtd]) expect(resolveEnv(c, FIELDS).NODE_NAME).toBe('node-a');
    const uri = `qemu:///system?socket=${inLibvirtd!.mountPath}/libvirt-sock`;
    expect(resolveEnv(agent, FIELDS).KUBENOVA_LIBVIRT_URI).toBe(uri);
    const config = (findManifest(manifests, 'ConfigMap', '-libvirt') as unknown as { data: Record<string, string> })
      .data;
    expect(config['libvirtd.conf']).toContain(`unix_sock_dir = "${inLibvirtd!.mountPath}"`);
    // Ready only when libvirtd answers on that same socket; never restarted by a probe (that would stop its guests).
    expect(libvirtd.readinessProbe?.exec?.command).toEqual(['virsh', '-c', uri, 'version']);
    expect(libvirtd.livenessProbe).toBeUndefined();
    // The agent's own readiness stays /readyz: it registers its host only once libvirtd answers.
    expect(agent.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'metrics' } });
  });

  it('mounts the state directory at the same path in agent and libvirtd; domain definitions stay on the host', () => {
    const manifests = libvirt();
    const agents = findManifest(manifests, 'DaemonSet', '-node-agent');
    const daemons = findManifest(manifests, 'DaemonSet', '-libvirt');
    expect(hostPathOf(daemons, 'state')).toEqual(hostPathOf(agents, 'state'));
    expect(hostPathOf(daemons, 'state')?.path).toBe('/srv/kubenova');
    expect(mountOf(fullContainer(daemons, 'libvirtd'), 'state')).toEqual([
      { name: 'state', mountPath: '/srv/kubenova' },
    ]);
    expect(mountOf(fullContainer(agents, 'node-agent'), 'state')).toEqual([
      { name: 'state', mountPath: '/srv/kubenova' },
    ]);
    expect(resolveEnv(fullContainer(agents, 'node-agent'), FIELDS).KUBENOVA_STATE_DIR).toBe('/srv/kubenova');
    expect(mountOf(fullContainer(daemons, 'libvirtd'), 'libvirt-host')).toContainEqual({
      name: 'libvirt-host',
      mountPath: '/etc/libvirt/qemu',
      subPathExpr: '$(NODE_NAME)/qemu',
    });
    // Everything else libvirtd writes is the pod's own (the root filesystem is read-only).
    const libvirtd = fullContainer(daemons, 'libvirtd');
    const emptyDirs = new Set(
      podSpecOf(daemons)
        .volumes?.filter((v) => v.emptyDir)
        .map((v) => v.name),
    );
    expect(
      libvirtd.volumeMounts
        ?.filter((m) => emptyDirs.has(m.name))
        .map((m) => m.mountPath)
        .sort(),
    ).toEqual(['/etc/libvirt', '/run', '/tmp', '/var/cache/libvirt', '/var/lib/libvirt', '/var/log/libvirt']);
  });

  it('passes the baked guest image and the libvirt settings, and a capacity only where the values override it', () => {
    const manifests = libvirt({ nodeAgent: { libvirt: { bootTimeout: 60, minMemoryMiB: 256 } } });
    const agents = findManifest(manifests, 'DaemonSet', '-node-agent');
    const env = resolveEnv(containerOf(agents, 'node-agent'), FIELDS);
    expect(env).toMatchObject({
      KUBENOVA_DRIVER: 'libvirt',
      KUBENOVA_LIBVIRT_IMAGES: 'tiny=/usr/share/kubenova/guest-images/tiny',
      KUBENOVA_LIBVIRT_BOOT_TIMEOUT: '60',
      KUBENOVA_LIBVIRT_MIN_MEMORY_MIB: '256',
    });
    // Measured on the node: neither the fake capacity nor its spawn delay reaches a libvirt agent.
    expect(
      Object.keys(env).filter((k) => k.startsWith('KUBENOVA_CAPACITY_') || k === 'KUBENOVA_SPAWN_DELAY_MS'),
    ).toEqual([]);
    const agentReads = flagEnvs(AGENT_FLAGS);
    expect(Object.keys(env).filter((e) => !agentReads.has(e) && e !== 'NODE_IP')).toEqual([]);
    const overridden = resolveEnv(
      containerOf(
        findManifest(
          libvirt({}, 'nodeAgent.libvirt.capacity.vcpus=4', 'nodeAgent.libvirt.capacity.diskGiB=0'),
          'DaemonSet',
          '-node-agent',
        ),
        'node-agent',
      ),
      FIELDS,
    );
    expect(overridden).toMatchObject({ KUBENOVA_CAPACITY_VCPUS: '4', KUBENOVA_CAPACITY_DISK_GIB: '0' });
    expect(overridden.KUBENOVA_CAPACITY_MEMORY_MIB).toBeUndefined();
  });

  it('makes libvirtd the one privileged container; the agent and virtlogd run as root with no capability', () => {
    const manifests = libvirt();
    const containers = allContainers(manifests);
    expect(containers.filter(([, c]) => c.securityContext?.privileged === true).map(([n]) => n)).toEqual([
      'kubenova-libvirt/libvirtd',
    ]);
    expect(
      containers
        .map(([n, c]) => [n, (c.securityContext?.capabilities as { add?: string[] } | undefined)?.add])
        .filter(([, add]) => add !== undefined),
    ).toEqual([['kubenova-node-agent/state-dir-owner', ['CHOWN']]]);
    for (const [name, c] of containers) {
      expect(c.securityContext?.readOnlyRootFilesystem, name).toBe(true);
      if (c.securityContext?.privileged !== true) {
        expect(c.securityContext, name).toMatchObject({
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        });
      }
    }
    const agents = findManifest(manifests, 'DaemonSet', '-node-agent');
    // Root, with no capability: it makes the instance files root's; libvirt lends a guest's to QEMU's user.
    expect(containerOf(agents, 'node-agent').securityContext).toEqual({
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(podSpecOf(agents).initContainers?.map((c) => c.command)).toEqual([
      ['chown', '-R', '-h', '0:0', '/srv/kubenova'],
    ]);
    expect(fullContainer(findManifest(manifests, 'DaemonSet', '-libvirt'), 'virtlogd').securityContext).toMatchObject({
      runAsUser: 0,
      runAsNonRoot: false,
    });
  });

  it('configures libvirtd for a container: root-only sockets, no polkit, no per-guest cgroups or namespaces, QEMU as an unprivileged user with dynamic ownership', () => {
    const manifests = libvirt();
    const config = (findManifest(manifests, 'ConfigMap', '-libvirt') as unknown as { data: Record<string, string> })
      .data;
    expect(Object.keys(config).sort()).toEqual(['libvirtd.conf', 'qemu.conf', 'virtlogd.conf']);
    const settings = (text: string) =>
      Object.fromEntries(
        text
          .split('\n')
          .map((l) => /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(l))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => [m[1]!, m[2]!]),
      );
    expect(settings(config['libvirtd.conf']!)).toMatchObject({
      unix_sock_rw_perms: '"0700"',
      unix_sock_ro_perms: '"0700"',
      unix_sock_admin_perms: '"0700"',
      auth_unix_rw: '"none"',
      auth_unix_ro: '"none"',
    });
    expect(settings(config['libvirtd.conf']!)).not.toHaveProperty('listen_tcp');
    expect(settings(config['qemu.conf']!)).toEqual({
      user: '"libvirt-qemu"',
      group: '"libvirt-qemu"',
      dynamic_ownership: '1',
      remember_owner: '0',
      security_driver: '"none"',
      cgroup_controllers: '[ ]',
      namespaces: '[ ]',
      stdio_handler: '"logd"',
    });
    const daemons = findManifest(manifests, 'DaemonSet', '-libvirt');
    expect(mountOf(fullContainer(daemons, 'libvirtd'), 'config')).toContainEqual({
      name: 'config',
      mountPath: '/etc/libvirt/qemu.conf',
      subPath: 'qemu.conf',
      readOnly: true,
    });
    const annotations = (daemons as unknown as { spec: { template: { metadata: { annotations: object } } } }).spec
      .template.metadata.annotations;
    expect(annotations).toHaveProperty('checksum/config', expect.stringMatching(/^[0-9a-f]{64}$/));
  });

  it.each([
    ['an unknown driver', ['nodeAgent.driver=xen'], /at '\/nodeAgent\/driver': value must be one of 'fake', 'libvirt'/],
    [
      'a capacity of zero vCPUs',
      ['nodeAgent.libvirt.capacity.vcpus=0'],
      /at '\/nodeAgent\/libvirt\/capacity\/vcpus': minimum: got 0, want 1/,
    ],
    [
      'a word for a capacity',
      ['nodeAgent.libvirt.capacity.memoryMiB=lots'],
      /at '\/nodeAgent\/libvirt\/capacity\/memoryMiB': got string, want integer/,
    ],
    [
      'an unknown update strategy',
      ['nodeAgent.libvirt.updateStrategy=Never'],
      /at '\/nodeAgent\/libvirt\/updateStrategy': value must be one of 'RollingUpdate', 'OnDelete'/,
    ],
    [
      'a relative guest image directory',
      ['nodeAgent.libvirt.guestImages.tiny=images/tiny'],
      /at '\/nodeAgent\/libvirt\/guestImages\/tiny': 'images\/tiny' does not match pattern/,
    ],
    [
      'a state directory with a trailing slash',
      ['nodeAgent.stateDir=/var/lib/kubenova/'],
      /at '\/nodeAgent\/stateDir'/,
    ],
    [
      'a misspelt libvirt value',
      ['nodeAgent.libvirt.bootTimout=5'],
      /at '\/nodeAgent\/libvirt': additional properties 'bootTimout' not allowed/,
    ],
  ])('refuses %s, naming the value and what is wrong', (_what, sets, message) => {
    const args = ['nodeAgent.driver=libvirt', ...sets].flatMap((s) => ['--set', s]);
    const r = helm.run(['template', 'kubenova', chartDir, ...args]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(r.stderr).toMatch(message);
  });

  it('lints clean with the libvirt driver', () => {
    const r = helm.run(['lint', '--strict', chartDir, '--set', 'nodeAgent.driver=libvirt']);
    expect(r.stderr + r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

/** Every metric name a kubenova process can export (both components' sets registered on one registry). */
function exportedMetricNames(): Set<string> {
  const metrics = new Metrics('test');
  void [metrics.operator, metrics.agent, metrics.nodes];
  const names = new Set<string>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    const { name, type } = m as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/** The kubenova and controller-runtime metric names a PromQL expression reads. */
const metricNamesIn = (expr: string): string[] => [
  ...new Set(
    [
      ...expr.matchAll(/\b(kubenova_\w+|controller_runtime_\w+|workqueue_\w+|leader_election_\w+|rest_client_\w+)/g),
    ].map((m) => m[1]!),
  ),
];

/** GitHub's anchor of a Markdown heading (lower case, spaces to dashes, punctuation dropped). */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: string };
  annotations: { summary: string; description: string; runbook_url: string };
}
interface DashboardPanel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: DashboardPanel[];
}

const ALL_MONITORING = [
  'monitoring.serviceMonitor.enabled=true',
  'monitoring.podMonitor.enabled=true',
  'monitoring.prometheusRule.enabled=true',
  'monitoring.grafanaDashboard.enabled=true',
];
const isDashboard = (m: Manifest) => m.kind === 'ConfigMap' && m.metadata.labels?.grafana_dashboard !== undefined;
const monitoringKinds = (manifests: Manifest[]) =>
  manifests
    .filter((m) => ['ServiceMonitor', 'PodMonitor', 'PrometheusRule'].includes(m.kind) || isDashboard(m))
    .map((m) => `${m.kind}/${m.metadata.name}`)
    .sort();
const alertsOf = (manifests: Manifest[]) =>
  (
    findManifest(manifests, 'PrometheusRule') as unknown as { spec: { groups: { rules: AlertRule[] }[] } }
  ).spec.groups.flatMap((g) => g.rules);

describe("the Helm chart's monitoring", () => {
  it('renders no ServiceMonitor, PodMonitor, PrometheusRule or dashboard by default, and each one only with its value', () => {
    expect(monitoringKinds(render())).toEqual([]);
    expect(monitoringKinds(render({}, 'monitoring.serviceMonitor.enabled=true'))).toEqual([
      'ServiceMonitor/kubenova-operator',
    ]);
    expect(monitoringKinds(render({}, 'monitoring.podMonitor.enabled=true'))).toEqual([
      'PodMonitor/kubenova-node-agent',
    ]);
    expect(monitoringKinds(render({}, 'monitoring.prometheusRule.enabled=true'))).toEqual(['PrometheusRule/kubenova']);
    expect(monitoringKinds(render({}, 'monitoring.grafanaDashboard.enabled=true'))).toEqual([
      'ConfigMap/kubenova-dashboard',
    ]);
    expect(monitoringKinds(render({}, ...ALL_MONITORING))).toHaveLength(4);
  });

  it("scrapes the operator through its metrics Service and every agent pod's metrics port, under the job names the alerts select", () => {
    const manifests = render(
      { monitoring: { serviceMonitor: { labels: { release: 'prom' } }, podMonitor: { labels: { release: 'prom' } } } },
      ...ALL_MONITORING,
    );
    type Endpoint = {
      port: string;
      path: string;
      honorLabels?: boolean;
      relabelings: { targetLabel: string; replacement: string }[];
    };
    type Monitor = Manifest & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        namespaceSelector: { matchNames: string[] };
        endpoints?: Endpoint[];
        podMetricsEndpoints?: Endpoint[];
      };
    };
    const sm = findManifest(manifests, 'ServiceMonitor') as Monitor;
    const pm = findManifest(manifests, 'PodMonitor') as Monitor;
    const service = findManifest(manifests, 'Service', '-operator-metrics') as Manifest & {
      spec: { ports: { name: string }[] };
    };
    expect(sm.metadata.labels?.release).toBe('prom');
    expect(pm.metadata.labels?.release).toBe('prom');
    expect(sm.spec.namespaceSelector.matchNames).toEqual(['kubenova-system']);
    expect(service.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    const smEndpoint = sm.spec.endpoints![0]!;
    expect(service.spec.ports.map((p) => p.name)).toContain(smEndpoint.port);
    expect(smEndpoint).toMatchObject({ path: '/metrics', honorLabels: true, interval: '30s' });
    const agents = findManifest(manifests, 'DaemonSet', '-node-agent');
    const podLabels = (agents as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } })
      .spec.template.metadata.labels;
    expect(podLabels).toMatchObject(pm.spec.selector.matchLabels);
    const pmEndpoint = pm.spec.podMetricsEndpoints![0]!;
    expect((containerOf(agents, 'node-agent').ports ?? []).map((p) => p.name)).toContain(pmEndpoint.port);
    const jobOf = (e: Endpoint) => e.relabelings.find((r) => r.targetLabel === 'job')?.replacement;
    expect([jobOf(smEndpoint), jobOf(pmEndpoint)]).toEqual(['kubenova-operator', 'kubenova-node-agent']);
    // Every alert reads only these two jobs.
    const jobs = alertsOf(manifests).flatMap((r) =>
      [...r.expr.matchAll(/job=~?"([^"]+)"/g)].flatMap((m) => m[1]!.split('|')),
    );
    expect(new Set(jobs)).toEqual(new Set(['kubenova-operator', 'kubenova-node-agent']));
  });

  it('refuses a ServiceMonitor without the Service it scrapes, and a scrape interval that is not a duration', () => {
    const noService = helm.run([
      'template',
      'kubenova',
      chartDir,
      '--set',
      'monitoring.serviceMonitor.enabled=true',
      '--set',
      'operator.metrics.service.enabled=false',
    ]);
    expect(noService.status).not.toBe(0);
    expect(noService.stderr).toMatch(/monitoring.serviceMonitor.enabled needs operator.metrics.service.enabled/);
    const badInterval = helm.run(['template', 'kubenova', chartDir, '--set', 'monitoring.podMonitor.interval=often']);
    expect(badInterval.status).not.toBe(0);
    expect(badInterval.stderr).toMatch(/monitoring\/podMonitor\/interval/);
  });

  it('alerts on instances in error, stuck migrations, nodes not Ready, no leader and reconcile errors, each linking its runbook section', () => {
    const runbooks = readFileSync(join(repoRoot, 'docs', 'runbooks.md'), 'utf8');
    const sections = new Set([...runbooks.matchAll(/^## (.+)$/gm)].map((m) => anchorOf(m[1]!)));
    const alerts = alertsOf(render({}, 'monitoring.prometheusRule.enabled=true'));
    expect(alerts.map((a) => a.alert)).toEqual([
      'KubenovaInstancesInError',
      'KubenovaMigrationStuck',
      'KubenovaNodeNotReady',
      'KubenovaNoLeader',
      'KubenovaReconcileErrors',
    ]);
    for (const a of alerts) {
      expect(a.labels.severity, a.alert).toMatch(/^(warning|critical)$/);
      expect(a.for, a.alert).toMatch(/^\d+m$/);
      expect(a.annotations.summary && a.annotations.description, a.alert).toBeTruthy();
      expect(a.annotations.runbook_url, a.alert).toBe(`docs/runbooks.md#${a.alert.toLowerCase()}`);
      expect(sections.has(a.alert.toLowerCase()), `docs/runbooks.md has a section "## ${a.alert}"`).toBe(true);
    }
    // Each section says what the alert means, how to look and what to do.
    for (const part of runbooks.split(/^## /m).slice(1)) {
      for (const heading of ['**What it means.**', '**How to look.**', '**What to do.**'])
        expect(part, `${part.split('\n')[0]}: ${heading}`).toContain(heading);
    }
    const elsewhere = alertsOf(
      render(
        {},
        'monitoring.prometheusRule.enabled=true',
        'monitoring.prometheusRule.runbookUrl=https://docs.example.com/runbooks',
      ),
    );
    expect(elsewhere[0]!.annotations.runbook_url).toBe('https://docs.example.com/runbooks#kubenovainstancesinerror');
  });

  it('alerts and the dashboard read only metrics kubenova exports, node gauges by resource and unit', () => {
    const exported = exportedMetricNames();
    const manifests = render({}, ...ALL_MONITORING);
    const exprs = alertsOf(manifests).map((a) => a.expr);
    const dashboard = findManifest(manifests, 'ConfigMap', '-dashboard') as Manifest & { data: Record<string, string> };
    const json = JSON.parse(dashboard.data['kubenova.json']!) as { uid: string; panels: DashboardPanel[] };
    expect(json.uid).toBe('kubenova');
    const panels = json.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(queries.length).toBeGreaterThan(20);
    const read = [...exprs, ...queries].flatMap(metricNamesIn);
    expect(read.filter((n) => !exported.has(n))).toEqual([]);
    for (const name of [
      'kubenova_instances',
      'kubenova_migrations_past_deadline',
      'kubenova_node_ready',
      'leader_election_master_status',
      'controller_runtime_reconcile_errors_total',
      'workqueue_unfinished_work_seconds',
      'workqueue_longest_running_processor_seconds',
      'rest_client_requests_total',
    ])
      expect(read, name).toContain(name);
    // Node gauges by resource (cpu, memory, disk), never the units inside label values they once had.
    const nodeQueries = queries.filter((q) => /kubenova_node_alloca/.test(q));
    expect(nodeQueries.length).toBeGreaterThan(0);
    for (const q of nodeQueries) expect(q).toMatch(/resource="(cpu|memory|disk)"/);
    expect(queries.join('\n')).not.toMatch(/memory_mib|disk_gib|resource="vcpus"/);
  });

  it('puts the dashboard where the Grafana sidecar looks, with its labels, annotations and namespace', () => {
    const dashboard = findManifest(
      render(
        { monitoring: { grafanaDashboard: { annotations: { grafana_folder: 'kubenova' }, namespace: 'monitoring' } } },
        'monitoring.grafanaDashboard.enabled=true',
      ),
      'ConfigMap',
      '-dashboard',
    ) as Manifest & { metadata: { annotations?: Record<string, string> } };
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    expect(dashboard.metadata.annotations).toEqual({ grafana_folder: 'kubenova' });
    expect(dashboard.metadata.namespace).toBe('monitoring');
  });

  it('lints clean with every monitoring object enabled', () => {
    const r = helm.run(['lint', '--strict', chartDir, ...ALL_MONITORING.flatMap((s) => ['--set', s])]);
    expect(r.stderr + r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

interface Crd extends Manifest {
  metadata: Manifest['metadata'] & { annotations?: Record<string, string> };
  spec: object;
}
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const crdsOf = (manifests: Manifest[]) => manifests.filter((m): m is Crd => m.kind === 'CustomResourceDefinition');
const operatorPodLabels = (manifests: Manifest[]) =>
  (
    findManifest(manifests, 'Deployment', '-operator') as unknown as {
      spec: { template: { metadata: { labels: Record<string, string> } } };
    }
  ).spec.template.metadata.labels;

describe('the Helm chart as a finished add-on', () => {
  it('renders every generated CRD as a template, unchanged but for the chart labels and the keep policy', () => {
    const rendered = crdsOf(render({}, 'commonLabels.team=compute'));
    const generated = readdirSync(join(repoRoot, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => yaml.load(readFileSync(join(repoRoot, 'crds', f), 'utf8')) as Crd);
    expect(rendered.map((c) => c.metadata.name).sort()).toEqual(generated.map((c) => c.metadata.name).sort());
    for (const crd of generated) {
      const r = rendered.find((c) => c.metadata.name === crd.metadata.name)!;
      expect(r.spec, crd.metadata.name).toEqual(crd.spec);
      expect(r.apiVersion).toBe(crd.apiVersion);
      // helm uninstall leaves it, and so every object of its kind.
      expect(r.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(r.metadata.labels).toMatchObject({
        ...crd.metadata.labels,
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/instance': 'kubenova',
        team: 'compute',
      });
    }
  });

  it('renders no CRD with crds.enabled=false, for clusters where they are applied another way', () => {
    expect(crdsOf(render({}, 'crds.enabled=false'))).toEqual([]);
    const r = helm.run(['template', 'kubenova', chartDir, '--set', 'crds.enabled=maybe']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/at '\/crds\/enabled': got string, want boolean/);
  });

  it('budgets operator disruptions to one replica at a time, selecting exactly the operator pods, only when there are several', () => {
    const manifests = render();
    const pdb = findManifest(manifests, 'PodDisruptionBudget', '-operator') as Manifest & {
      spec: { maxUnavailable?: number; minAvailable?: number; selector: { matchLabels: Record<string, string> } };
    };
    expect(pdb.metadata.namespace).toBe('kubenova-system');
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow' });
    expect(pdb.spec.minAvailable).toBeUndefined();
    expect(operatorPodLabels(manifests)).toMatchObject(pdb.spec.selector.matchLabels);
    const agentLabels = (
      findManifest(manifests, 'DaemonSet', '-node-agent') as unknown as {
        spec: { template: { metadata: { labels: Record<string, string> } } };
      }
    ).spec.template.metadata.labels;
    expect(agentLabels).not.toMatchObject(pdb.spec.selector.matchLabels);
    const budgets = (...sets: string[]) => render({}, ...sets).filter((m) => m.kind === 'PodDisruptionBudget');
    expect(budgets('operator.replicas=3')).toHaveLength(1);
    // One replica: a budget could only block every drain or allow everything.
    expect(budgets('operator.replicas=1', 'operator.leaderElection.enabled=false')).toEqual([]);
    expect(budgets('operator.podDisruptionBudget.enabled=false')).toEqual([]);
  });

  it('gives a stopping operator replica a grace period to finish its reconciles and release the Lease', () => {
    const grace = (...sets: string[]) =>
      podSpecOf(findManifest(render({}, ...sets), 'Deployment', '-operator')).terminationGracePeriodSeconds;
    expect(grace()).toBe(30);
    expect(grace('operator.terminationGracePeriodSeconds=90')).toBe(90);
  });

  it('runs every kubenova container from <repository>@<digest> when image.digest is set, whatever the tag says', () => {
    const images = (...sets: string[]) =>
      Object.fromEntries(
        allContainers(render({}, 'image.repository=registry.example/kubenova', 'nodeAgent.driver=libvirt', ...sets))
          .filter(([, c]) => c.image !== undefined)
          .map(([name, c]) => [name, c.image]),
      );
    const pinned = images('image.tag=1.2.3', `image.digest=${DIGEST}`);
    expect(Object.keys(pinned).sort()).toEqual([
      'kubenova-libvirt/libvirtd',
      'kubenova-libvirt/virtlogd',
      'kubenova-node-agent/node-agent',
      'kubenova-node-agent/state-dir-owner',
      'kubenova-operator/operator',
    ]);
    expect(new Set(Object.values(pinned))).toEqual(new Set([`registry.example/kubenova@${DIGEST}`]));
    expect(new Set(Object.values(images('image.tag=1.2.3')))).toEqual(new Set(['registry.example/kubenova:1.2.3']));
    expect(new Set(Object.values(images()))).toEqual(new Set(['registry.example/kubenova:0.1.0']));
    const bad = helm.run(['template', 'kubenova', chartDir, '--set', 'image.digest=latest']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/at '\/image\/digest': 'latest' does not match pattern/);
  });

  it('notes show the image, the CRD policy and a first Flavor and Instance inline, pointing at no file of this repository', () => {
    const notes = (...sets: string[]) => {
      const out = helm.ok([
        'install',
        'kubenova',
        chartDir,
        '--dry-run=client',
        '--namespace',
        'kubenova-system',
        ...sets.flatMap((s) => ['--set', s]),
      ]);
      return out.slice(out.indexOf('NOTES:'));
    };
    const text = notes(`image.digest=${DIGEST}`);
    expect(text).toContain(`image:      kubenova@${DIGEST}`);
    expect(text).toMatch(/helm uninstall keeps them and your Instances/);
    const block = /<<'YAML'\n([\s\S]*?)\nYAML\n/.exec(text)?.[1];
    expect(yaml.loadAll(block!)).toMatchObject([
      { apiVersion: 'compute.kubenova.io/v1alpha1', kind: 'Flavor', metadata: { name: 'm1.nano' } },
      { apiVersion: 'compute.kubenova.io/v1alpha1', kind: 'Instance', spec: { flavor: 'm1.nano', image: 'tiny' } },
    ]);
    for (const t of [text, notes('nodeAgent.driver=libvirt'), notes('crds.enabled=false')]) {
      expect(t).not.toMatch(/\b(examples|docs|crds|charts|devenv|e2e)\/|\.md\b|-f (?!-)/);
    }
    expect(notes('crds.enabled=false')).toMatch(/CRDs: +not managed by this release \(crds.enabled=false\)/);
  });

  it('keeps the CRDs, the budget and the grace period for the values of a release that predates them (helm upgrade --reuse-values)', () => {
    // --reuse-values reuses the old chart's defaults: the values this chart added are missing.
    const manifests = render(
      {},
      'crds=null',
      'image.digest=null',
      'operator.podDisruptionBudget=null',
      'operator.terminationGracePeriodSeconds=null',
    );
    expect(crdsOf(manifests)).toHaveLength(
      readdirSync(join(repoRoot, 'crds')).filter((f) => f.endsWith('.yaml')).length,
    );
    expect(findManifest(manifests, 'PodDisruptionBudget', '-operator')).toBeDefined();
    expect(podSpecOf(findManifest(manifests, 'Deployment', '-operator')).terminationGracePeriodSeconds).toBe(30);
    expect(containerOf(findManifest(manifests, 'Deployment', '-operator'), 'operator').image).toBe('kubenova:0.1.0');
  });

  it('lints clean with the CRDs left out and the image pinned by digest', () => {
    const r = helm.run([
      'lint',
      '--strict',
      chartDir,
      '--set',
      'crds.enabled=false',
      '--set',
      `image.digest=${DIGEST}`,
    ]);
    expect(r.stderr + r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
