// The Helm chart as files: it lints, ships the generated CRDs unchanged, documents every
// value, and renders pods that pass each setting as the environment variable the component
// reads. No cluster is needed here (helm-install.test.ts installs it).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_FLAGS } from '../node-agent/config.js';
import { OPERATOR_FLAGS } from '../operator/config.js';
import {
  Helm,
  chartDir,
  containerOf,
  findManifest,
  parseManifests,
  podSpecOf,
  resolveEnv,
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

  it('ships the CRDs of crds/ byte for byte (npm run chart:crds copies them)', () => {
    const generated = readdirSync(join(repoRoot, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    const shipped = readdirSync(join(chartDir, 'crds')).sort();
    expect(shipped).toEqual(generated);
    for (const f of generated) {
      expect(
        readFileSync(join(chartDir, 'crds', f), 'utf8'),
        `charts/kubenova/crds/${f} differs from crds/${f}; run npm run chart:crds`,
      ).toBe(readFileSync(join(repoRoot, 'crds', f), 'utf8'));
    }
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
    expect(manifests.filter((m) => m.kind === 'Role')).toEqual([]);
    expect(
      resolveEnv(containerOf(findManifest(manifests, 'Deployment', '-operator'), 'operator'), FIELDS)
        .KUBENOVA_LEADER_ELECT,
    ).toBe('false');
  });
});
