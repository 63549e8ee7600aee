// The Helm chart in tests: run helm against a control plane, read what it renders, and run
// kubenova's processes with exactly the environment and the service-account credentials
// the chart gives its pods.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { ensureBinaries } from '../../devenv/controlplane/binaries.js';
import { repoRoot } from './components.js';
import { external } from './mode.js';

export const chartDir = join(repoRoot, 'charts', 'kubenova');

/** The helm of the local control-plane build; against an external cluster, helm from PATH (or KUBENOVA_E2E_HELM). */
export function helmBinary(): string {
  return process.env.KUBENOVA_E2E_HELM ?? (external ? 'helm' : ensureBinaries().helm);
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** helm with its own cache and config directories, optionally pointed at one cluster. */
export class Helm {
  constructor(
    private readonly home: string,
    private readonly kubeconfig?: string,
  ) {
    mkdirSync(home, { recursive: true });
  }

  run(args: string[]): RunResult {
    const env = {
      ...process.env,
      HELM_CACHE_HOME: join(this.home, 'cache'),
      HELM_CONFIG_HOME: join(this.home, 'config'),
      HELM_DATA_HOME: join(this.home, 'data'),
    };
    const res = spawnSync(helmBinary(), [...args, ...(this.kubeconfig ? ['--kubeconfig', this.kubeconfig] : [])], {
      env,
      encoding: 'utf8',
    });
    return { status: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
  }

  /** Runs helm expecting success; resolves with its stdout. */
  ok(args: string[]): string {
    const r = this.run(args);
    if (r.status !== 0) throw new Error(`helm ${args.join(' ')} failed with ${r.status}:\n${r.stderr}`);
    return r.stdout;
  }
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export function parseManifests(text: string): Manifest[] {
  return yaml.loadAll(text).filter((d): d is Manifest => typeof d === 'object' && d !== null && 'kind' in d);
}

export function findManifest(manifests: Manifest[], kind: string, nameSuffix = ''): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name.endsWith(nameSuffix));
  if (!found) throw new Error(`the chart renders no ${kind}${nameSuffix ? ` named *${nameSuffix}` : ''}`);
  return found;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
  resources?: Record<string, unknown>;
}

export interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  securityContext?: Record<string, unknown>;
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string; type?: string }; emptyDir?: object }[];
  nodeSelector?: Record<string, string>;
  tolerations?: object[];
  [key: string]: unknown;
}

export function podSpecOf(workload: Manifest): PodSpec {
  return (workload as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

export function containerOf(workload: Manifest, name: string): Container {
  const c = podSpecOf(workload).containers.find((x) => x.name === name);
  if (!c) throw new Error(`${workload.kind} ${workload.metadata.name} has no container ${name}`);
  return c;
}

/**
 * A container's environment as the kubelet would give it: literal values, downward-API
 * fields from `fields` (e.g. {"spec.nodeName": "node-a"}), and $(VAR) references to
 * variables defined before.
 */
export function resolveEnv(container: Container, fields: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      out[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (ref, v: string) => out[v] ?? ref);
    } else if (e.valueFrom?.fieldRef) {
      const v = fields[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`env ${e.name}: no value given for field ${e.valueFrom.fieldRef.fieldPath}`);
      out[e.name] = v;
    } else {
      throw new Error(`env ${e.name}: unsupported source ${JSON.stringify(e.valueFrom)}`);
    }
  }
  return out;
}

/** A kubeconfig that authenticates with a bearer token (a service account's). */
export function writeTokenKubeconfig(path: string, server: string, caPath: string, token: string, user: string): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'cluster', cluster: { server, 'certificate-authority': caPath } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'cluster', user } }],
    'current-context': user,
  };
  writeFileSync(path, yaml.dump(config), { mode: 0o600 });
}

/** Runs a binary without throwing; for commands whose failure is the point. */
export function runTool(command: string, args: string[], input?: string): RunResult {
  const res = spawnSync(command, args, { input, encoding: 'utf8' });
  return { status: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** The chart's kinds that decide who may do what; everything else (the workloads) is left out. */
const POLICY_KINDS = new Set([
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
]);

export interface ChartPoliciesOptions {
  /** kubectl as a cluster admin: TestEnv's or ControlPlane's. */
  kubectl: (args: string[], input?: string) => string;
  /** A directory for helm's caches. */
  dir: string;
  /** The release namespace, created when missing. */
  namespace: string;
  /** Extra `--set` values. */
  sets?: string[];
}

/**
 * The chart's service accounts, RBAC and admission policies, as `helm install kubenova` into
 * `namespace` creates them, applied to a cluster whose kubenova runs as local processes: so
 * that requests from tenants and from the chart's service accounts meet exactly the chart's
 * authorization. Resolves once they act: the ClusterRoles aggregated into view, edit and admin
 * are there, and the API server enforces every admission policy. Returns what it applied.
 */
export async function applyChartPolicies(opts: ChartPoliciesOptions): Promise<Manifest[]> {
  const helm = new Helm(opts.dir);
  const rendered = helm.ok([
    'template',
    'kubenova',
    chartDir,
    '--namespace',
    opts.namespace,
    ...(opts.sets ?? []).flatMap((s) => ['--set', s]),
  ]);
  const policies = parseManifests(rendered).filter((m) => POLICY_KINDS.has(m.kind));
  opts.kubectl(
    ['apply', '-f', '-'],
    yaml.dump({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: opts.namespace } }),
  );
  opts.kubectl(['apply', '-f', '-'], policies.map((m) => yaml.dump(m)).join('---\n'));
  await waitForAggregation(opts.kubectl, policies);
  await waitForAdmissionPolicies(opts.kubectl);
  return policies;
}

type Rule = Record<string, unknown>;

/** Until kube-controller-manager has copied every aggregated ClusterRole's rules into its targets. */
async function waitForAggregation(kubectl: ChartPoliciesOptions['kubectl'], policies: Manifest[]): Promise<void> {
  const wanted: [string, Rule][] = [];
  for (const m of policies.filter((x) => x.kind === 'ClusterRole')) {
    for (const target of ['view', 'edit', 'admin']) {
      if (m.metadata.labels?.[`rbac.authorization.k8s.io/aggregate-to-${target}`] !== 'true') continue;
      for (const rule of (m as unknown as { rules: Rule[] }).rules) wanted.push([target, rule]);
    }
  }
  const same = (a: Rule, b: Rule) =>
    JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  await until('view, edit and admin to aggregate the chart roles', () => {
    const roles = JSON.parse(kubectl(['get', 'clusterrole', 'view', 'edit', 'admin', '-o', 'json'])) as {
      items: { metadata: { name: string }; rules?: Rule[] }[];
    };
    const rules = new Map(roles.items.map((r) => [r.metadata.name, r.rules ?? []]));
    return wanted.every(([target, rule]) => (rules.get(target) ?? []).some((r) => same(r, rule)));
  });
}

/**
 * Until the API server enforces the policies just applied. Its admission plugin loads
 * policies and bindings from an informer, all that are there at each refresh; so once a
 * canary policy applied after them denies, they are loaded too. The canary goes again.
 */
async function waitForAdmissionPolicies(kubectl: ChartPoliciesOptions['kubectl']): Promise<void> {
  const name = 'kubenova-e2e-canary';
  const canary = [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
        },
        validations: [{ expression: `object.metadata.name != '${name}'`, message: 'canary' }],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name },
      spec: { policyName: name, validationActions: ['Deny'] },
    },
  ];
  kubectl(['apply', '-f', '-'], canary.map((m) => yaml.dump(m)).join('---\n'));
  const probe = yaml.dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' } });
  await until('the admission policies to be enforced', () => {
    try {
      kubectl(['create', '--dry-run=server', '-f', '-'], probe);
      return false;
    } catch (err) {
      return /canary/.test((err as { stderr?: string }).stderr ?? '');
    }
  });
  kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', name]);
}

async function until(what: string, probe: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ApiAnswer {
  status: number;
  message: string;
}

/**
 * One request to the API server with a bearer token, for what kubectl cannot send alone: a
 * PATCH by someone who may not GET the object first (kubectl reads before it patches).
 * Resolves with the HTTP status and the Status message (or the body).
 */
export function apiRequest(
  server: string,
  caPath: string,
  token: string,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  body?: object,
): Promise<ApiAnswer> {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${token}`,
    'Content-Type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
  };
  return new Promise((resolve, reject) => {
    const req = request(
      `${server}${path}`,
      { method, headers, agent: new Agent({ ca: readFileSync(caPath), keepAlive: false }), timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let message = text;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            // not JSON: the body is the message
          }
          resolve({ status: res.statusCode ?? 0, message });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
