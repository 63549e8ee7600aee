// The Helm chart in tests: run helm against a control plane, read what it renders, and run
// kubenova's processes with exactly the environment and the service-account credentials
// the chart gives its pods.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
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
