// One harness for every integration and e2e scenario: a real control plane, the CRDs,
// the operator and node agents as processes, and helpers that read like the user's
// commands. With KUBENOVA_E2E_KUBECONFIG set (external mode, see mode.ts) it starts
// nothing: the helpers talk to that cluster, where the Helm chart runs kubenova.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import type { ComputeNode, Instance, Migration } from '../../common/api/types.js';
import { Kube, loadKubeConfig } from '../../common/kube/client.js';
import { ControlPlane } from '../../devenv/controlplane/controlplane.js';
import type { ManagedProcess } from '../../devenv/controlplane/processes.js';
import {
  applySampleFlavors,
  installCrds,
  installFinalizerPolicy,
  repoRoot,
  startAgent,
  startOperator,
  type AgentSpec,
} from './components.js';
import { externalKubeconfig } from './mode.js';

export interface EnvOptions {
  agents?: AgentSpec[];
  operator?: boolean;
  operatorArgs?: string[];
  /** Seconds; short in tests so restarts and timeouts are quick. */
  heartbeatInterval?: number;
  nodeHeartbeatTimeout?: number;
  flavors?: boolean;
  agentArgs?: string[];
  /** The chart's instance-finalizer policy, as helm installs it where the API server offers it. */
  finalizerPolicy?: boolean;
  /** Extra kube-apiserver flags (e.g. an audit log). */
  apiserverFlags?: string[];
}

export const DEFAULT_AGENTS: AgentSpec[] = [{ name: 'node-a' }, { name: 'node-b' }, { name: 'node-c' }];

export class TestEnv {
  readonly kube: Kube;
  readonly agents = new Map<string, ManagedProcess>();
  private readonly agentSpecs = new Map<string, AgentSpec>();
  operator?: ManagedProcess;

  private constructor(
    private readonly controlPlane: ControlPlane | undefined,
    readonly dir: string,
    private readonly opts: EnvOptions,
    /** The kubeconfig every helper uses: the local control plane's, or the external cluster's. */
    readonly kubeconfigPath: string = controlPlane?.kubeconfigPath ?? '',
  ) {
    this.kube = new Kube(loadKubeConfig(kubeconfigPath), 'kubenova-e2e');
  }

  /** True when the helpers talk to an external cluster (KUBENOVA_E2E_KUBECONFIG). */
  get external(): boolean {
    return this.controlPlane === undefined;
  }

  /** The local control plane; there is none in external mode. */
  get cp(): ControlPlane {
    if (!this.controlPlane)
      throw new Error(
        'external mode (KUBENOVA_E2E_KUBECONFIG): there is no local control plane, agent or operator process; mark this scenario localOnly (e2e/harness/mode.ts)',
      );
    return this.controlPlane;
  }

  static async start(opts: EnvOptions = {}): Promise<TestEnv> {
    const dir = mkdtempSync(join(process.env.KUBENOVA_TEST_TMP ?? tmpdir(), 'kubenova-e2e-'));
    if (externalKubeconfig) return TestEnv.startExternal(externalKubeconfig, dir, opts);
    const cp = await ControlPlane.start({ dir: join(dir, 'controlplane'), apiserverFlags: opts.apiserverFlags });
    const env = new TestEnv(cp, dir, opts);
    try {
      installCrds(cp);
      if (opts.finalizerPolicy) await installFinalizerPolicy(cp);
      if (opts.flavors ?? true) applySampleFlavors(cp);
      for (const spec of opts.agents ?? DEFAULT_AGENTS) env.startAgent(spec);
      if (opts.operator ?? true) env.startOperator();
      await env.waitForNodesReady((opts.agents ?? DEFAULT_AGENTS).map((a) => a.name));
    } catch (err) {
      await env.stop();
      throw err;
    }
    return env;
  }

  /**
   * External mode: the cluster already runs kubenova (the Helm chart installed the CRDs,
   * the operator and one agent per node). Only the sample flavors are applied (flavors are
   * immutable, so re-applying them changes nothing); the agents and operator options are
   * ignored, and it waits until every registered ComputeNode is Ready.
   */
  private static async startExternal(kubeconfig: string, dir: string, opts: EnvOptions): Promise<TestEnv> {
    const env = new TestEnv(undefined, dir, opts, kubeconfig);
    try {
      if (opts.flavors ?? true) env.kubectl(['apply', '-f', join(repoRoot, 'examples', 'flavors.yaml')]);
      await env.waitFor(
        'at least one ComputeNode, all of them Ready',
        async () => {
          const nodes = (await env.kube.computeNodes.list()).items;
          return nodes.length > 0 && nodes.every((n) => env.nodeReady(n) === 'True');
        },
        120_000,
      );
    } catch (err) {
      await env.stop();
      throw err;
    }
    return env;
  }

  get stateDir(): string {
    if (this.external)
      throw new Error(
        "external mode (KUBENOVA_E2E_KUBECONFIG): host state directories are on the cluster's nodes; mark this scenario localOnly (e2e/harness/mode.ts)",
      );
    return join(this.dir, 'agents');
  }

  startAgent(spec: AgentSpec): ManagedProcess {
    this.agentSpecs.set(spec.name, spec);
    mkdirSync(this.stateDir, { recursive: true });
    const proc = startAgent(
      this.cp,
      {
        ...spec,
        extraArgs: [
          `--heartbeat-interval=${this.opts.heartbeatInterval ?? 1}`,
          // Six heartbeats, as in production (60 s over 10 s): a status report each 6 s.
          `--status-report-interval=${6 * (this.opts.heartbeatInterval ?? 1)}`,
          '--audit-interval=2',
          '--audit-grace=5',
          // Without an operator no transfer certificate comes: register at once.
          ...(this.opts.operator === false ? ['--transfer-certificate-wait=0'] : []),
          ...(this.opts.agentArgs ?? []),
          ...(spec.extraArgs ?? []),
        ],
      },
      this.stateDir,
      { logFile: join(this.dir, `agent-${spec.name}.log`) },
    );
    this.agents.set(spec.name, proc);
    return proc;
  }

  /** SIGKILL, as a crashed host agent. */
  async killAgent(name: string): Promise<void> {
    await this.agents.get(name)?.kill();
  }

  async restartAgent(name: string): Promise<ManagedProcess> {
    await this.agents.get(name)?.stop();
    const spec = this.agentSpecs.get(name);
    if (!spec) throw new Error(`no agent ${name} in this environment`);
    return this.startAgent(spec);
  }

  startOperator(extraArgs: string[] = [], logName = 'operator'): ManagedProcess {
    this.operator = startOperator(
      this.cp,
      [
        `--node-heartbeat-timeout=${this.opts.nodeHeartbeatTimeout ?? 4}`,
        '--node-monitor-period=0.5',
        ...(this.opts.operatorArgs ?? []),
        ...extraArgs,
      ],
      { logFile: join(this.dir, `${logName}.log`) },
    );
    return this.operator;
  }

  /** Resolves once a component has logged that it is running (its caches are synced). */
  async waitForRunning(logName: string, timeoutMs = 30_000): Promise<void> {
    await this.waitFor(
      `${logName} running`,
      () => {
        const path = join(this.dir, `${logName}.log`);
        return existsSync(path) && /"msg":"(operator|node agent) running"/.test(readFileSync(path, 'utf8'));
      },
      timeoutMs,
    );
  }

  kubectl(args: string[], input?: string): string {
    if (this.controlPlane) return this.controlPlane.kubectl(args, input);
    // External mode needs no local control plane build: kubectl from KUBENOVA_E2E_KUBECTL or PATH.
    return execFileSync(process.env.KUBENOVA_E2E_KUBECTL ?? 'kubectl', ['--kubeconfig', this.kubeconfigPath, ...args], {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  /** Runs kubectl expecting failure; resolves with its stderr. */
  kubectlFails(args: string[], input?: string): string {
    try {
      const out = this.kubectl(args, input);
      throw new Error(`kubectl ${args.join(' ')} succeeded but should have failed:\n${out}`);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      if (e.stderr === undefined) throw err;
      return e.stderr;
    }
  }

  apply(manifest: object | string): string {
    const text = typeof manifest === 'string' ? manifest : yaml.dump(manifest);
    return this.kubectl(['apply', '-f', '-'], text);
  }

  async waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs = 60_000,
    intervalMs = 200,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const v = await probe();
        if (v !== undefined && v !== false) return v;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
  }

  async computeNode(name: string): Promise<ComputeNode | undefined> {
    return this.kube.computeNodes.get({ name });
  }

  async instance(name: string, namespace = 'default'): Promise<Instance | undefined> {
    return this.kube.instances.get({ name, namespace });
  }

  async migration(name: string, namespace = 'default'): Promise<Migration | undefined> {
    return this.kube.migrations.get({ name, namespace });
  }

  nodeReady(node: ComputeNode | undefined): string | undefined {
    return node?.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  }

  async waitForNodesReady(names: string[], timeoutMs = 60_000): Promise<void> {
    await this.waitFor(
      `ComputeNodes ${names.join(', ')} Ready`,
      async () => {
        for (const n of names) if (this.nodeReady(await this.computeNode(n)) !== 'True') return false;
        return true;
      },
      timeoutMs,
    );
  }

  /** Instance states as `vmState/taskState`, e.g. "active/". */
  async waitForInstance(
    name: string,
    predicate: (i: Instance) => boolean,
    what: string,
    timeoutMs = 60_000,
    namespace = 'default',
  ): Promise<Instance> {
    return this.waitFor(
      `instance ${namespace}/${name} ${what}`,
      async () => {
        const i = await this.instance(name, namespace);
        return i && predicate(i) ? i : undefined;
      },
      timeoutMs,
    );
  }

  async events(name: string, namespace = 'default'): Promise<{ reason: string; message: string; type: string }[]> {
    const list = await this.kube.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
    return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', type: e.type ?? '' }));
  }
  /**
   * Events on an object once all the given reasons have been recorded. Events are written
   * just after the status change they report, so a scenario waits for them rather than
   * reading them in the same instant.
   */
  async eventsWith(
    name: string,
    reasons: string[],
    namespace = 'default',
    timeoutMs = 15_000,
  ): Promise<{ reason: string; message: string; type: string }[]> {
    return this.waitFor(
      `events ${reasons.join(', ')} on ${name}`,
      async () => {
        const events = await this.events(name, namespace);
        return reasons.every((r) => events.some((e) => e.reason === r)) ? events : undefined;
      },
      timeoutMs,
    );
  }

  /** Stops what this environment started; in external mode that is nothing in the cluster. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop('SIGTERM', 5_000)));
    await this.operator?.stop('SIGTERM', 5_000);
    await this.controlPlane?.stop();
    if (!process.env.KUBENOVA_KEEP_TEST_DIRS) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** kubectl output as a table of rows keyed by header. */
export function parseTable(output: string): Record<string, string>[] {
  const lines = output.trim().split('\n');
  const header = lines[0] ?? '';
  const starts: number[] = [];
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(header))) starts.push(m.index);
  const names = starts.map((s, i) => header.slice(s, starts[i + 1]).trim());
  return lines
    .slice(1)
    .map((line) => Object.fromEntries(names.map((n, i) => [n, line.slice(starts[i], starts[i + 1]).trim()])));
}
