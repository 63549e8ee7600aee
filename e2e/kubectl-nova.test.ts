// `kubectl nova`, the plugin this repository ships (bin/kubectl-nova), used as an operator would:
// with bin/ on PATH, kubectl finds it and every command runs against the control plane, the
// operator and the agents. Each scenario reads like the commands a user types.
import { spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../common/api/types.js';
import { RELEASE_NAMESPACE, repoRoot } from '../devenv/components.js';
import { TestEnv } from './harness/env.js';
import { InvariantWatcher } from './harness/invariants.js';
import { external, localOnly } from './harness/mode.js';

const API = 'compute.kubenova.io/v1alpha1';
let env: TestEnv;
let watcher: InvariantWatcher | undefined;
let kubectlPath: string;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `kubectl nova <args>` as a user would: bin/ on PATH, KUBECONFIG set. */
function nova(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlPath, ['nova', ...args], {
      env: {
        ...process.env,
        PATH: [join(repoRoot, 'bin'), dirname(kubectlPath), process.env.PATH].join(delimiter),
        KUBECONFIG: env.kubeconfigPath,
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `kubectl nova` that must succeed; resolves with its output. */
async function ok(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<string> {
  const r = await nova(args, extraEnv);
  if (r.code !== 0) throw new Error(`kubectl nova ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `kubectl nova` that must fail; resolves with its stderr. */
async function fails(args: string[]): Promise<string> {
  const r = await nova(args);
  if (r.code === 0) throw new Error(`kubectl nova ${args.join(' ')} succeeded but should have failed:\n${r.stdout}`);
  return r.stderr;
}

const steady = (i: Instance | undefined) => i?.status?.vmState === 'active' && i.status.taskState === '';

beforeAll(async () => {
  env = await TestEnv.start({
    agents: [
      { name: 'node-a', zone: 'az1' },
      { name: 'node-b', zone: 'az1' },
      { name: 'node-c', zone: 'az2' },
    ],
  });
  kubectlPath = external ? (process.env.KUBENOVA_E2E_KUBECTL ?? 'kubectl') : env.cp.binaries.kubectl;
  if (!env.external) watcher = new InvariantWatcher(env.kube, env.stateDir).start();
});

afterAll(async () => {
  const report = await watcher?.stop();
  await env?.stop();
  expect(report?.violations ?? []).toEqual([]);
});

describe('kubectl nova: instances', () => {
  it('kubectl finds the plugin on PATH: kubectl nova --help lists its commands and version talks to the server', async () => {
    const help = await ok(['--help']);
    expect(help).toContain('Usage: kubectl nova [options] [command]');
    for (const command of ['boot', 'resize-confirm', 'drain', 'console']) expect(help).toContain(`  ${command} `);
    expect(await ok(['version'])).toMatch(/kubenova API: +compute\.kubenova\.io\/v1alpha1/);
  });

  it('boot --wait creates the instance and returns once it is active, naming its host', async () => {
    const out = await ok(['boot', 'web-1', '--flavor', 'm1.small', '--image', 'cirros', '--wait']);
    const inst = await env.instance('web-1');
    expect(steady(inst)).toBe(true);
    expect(out).toContain('instance/web-1 created');
    expect(out).toContain(`instance/web-1 active on ${inst?.status?.host}`);
    expect(inst?.spec).toMatchObject({ flavor: 'm1.small', image: 'cirros', powerState: 'Running' });
  });

  it('resize --wait returns once the resize has finished: the new flavor runs, awaiting confirm or revert', async () => {
    const out = await ok(['resize', 'web-1', 'm1.medium', '--wait']);
    const inst = await env.instance('web-1');
    expect(inst?.status).toMatchObject({
      vmState: 'resized',
      taskState: '',
      flavor: { name: 'm1.medium' },
      oldFlavor: { name: 'm1.small' },
    });
    expect(out).toContain(`Migration ${inst?.status?.migration}`);
    expect(out).toContain('finished');
    expect(out).toContain('kubectl nova resize-confirm web-1');
  });

  it('resize-confirm confirms the current migration without being told its name; the source copy and claim go', async () => {
    const before = await env.instance('web-1');
    const migName = before?.status?.migration ?? '';
    const out = await ok(['resize-confirm', 'web-1', '--wait']);
    expect(out).toContain(`migration/${migName}: confirm requested`);
    const mig = await env.migration(migName);
    expect(mig?.status?.status).toBe('confirmed');
    expect(mig?.status?.conditions?.find((c) => c.type === 'Complete')?.status).toBe('True');
    const inst = await env.waitForInstance('web-1', steady, 'active');
    expect(inst.status?.flavor?.name).toBe('m1.medium');
    expect(inst.status?.oldFlavor).toBeUndefined();
    const source = await env.computeNode(mig?.status?.sourceHost ?? '');
    if (mig?.status?.sourceHost !== mig?.status?.destHost)
      expect((source?.status?.claims ?? []).filter((c) => c.consumer === inst.metadata.uid)).toEqual([]);
  });

  it('resize-revert puts the instance back on its source host with its old flavor', async () => {
    const source = (await env.instance('web-1'))?.status?.host;
    await ok(['resize', 'web-1', 'm1.large', '--wait']);
    expect((await env.instance('web-1'))?.status?.host).not.toBe(source);
    const out = await ok(['resize-revert', 'web-1', '--wait']);
    expect(out).toMatch(/revert requested/);
    expect(out).toContain(`reverted; runs on ${source} with m1.medium again`);
    const inst = await env.waitForInstance('web-1', steady, 'active');
    expect(inst.status).toMatchObject({ host: source, flavor: { name: 'm1.medium' } });
    // spec.flavor is set back by the operator when it settles the Migration (e2e/resize.test.ts proves it).
  });

  it('resize-confirm and resize-revert with no migration awaiting a decision fail, saying so', async () => {
    expect(await fails(['resize-revert', 'web-1'])).toContain(
      'error: instance web-1 has no migration awaiting a decision (it is active); resize or migrate it first',
    );
    expect(await fails(['resize', 'web-1', 'm1.medium'])).toContain(
      'error: instance web-1 already has flavor m1.medium',
    );
    expect(await fails(['resize', 'web-1', 'm9.nope'])).toContain('error: flavor m9.nope does not exist');
  });

  it('migrate --wait moves the instance to another host keeping its flavor; resize-confirm then settles it', async () => {
    const before = (await env.instance('web-1'))?.status?.host;
    const out = await ok(['migrate', 'web-1', '--wait']);
    const inst = await env.instance('web-1');
    expect(inst?.status?.host).not.toBe(before);
    expect(inst?.status).toMatchObject({ vmState: 'resized', flavor: { name: 'm1.medium' } });
    expect(out).toMatch(/migration\/web-1-migrate-\w+ created: instance web-1 leaves/);
    expect(out).toContain(`instance/web-1 migrated: runs on ${inst?.status?.host}`);
    await ok(['resize-confirm', 'web-1', '--wait']);
    const moved = await env.waitForInstance('web-1', steady, 'active');
    expect(moved.status?.host).toBe(inst?.status?.host);
  });

  it('show prints state, host, flavor, conditions and the Events of its resizes and migration', async () => {
    const inst = await env.instance('web-1');
    const out = await ok(['show', 'web-1', '--events', '50']);
    expect(out).toMatch(/State: +active\n/);
    expect(out).toMatch(new RegExp(`Host: +${inst?.status?.host}\\n`));
    expect(out).toContain('m1.medium (2 vCPUs, 4096 MiB, 40 GiB disk)');
    expect(out).toMatch(/Ready +True +Running/);
    for (const reason of ['ResizeStarted', 'ResizeReverted', 'MigrationStarted', 'ResizeConfirmed'])
      expect(out).toContain(reason);
    const json = JSON.parse(await ok(['show', 'web-1', '-o', 'json'])) as Instance;
    expect(json.metadata.uid).toBe(inst?.metadata.uid);
  });

  it('show of an instance no host could take lists how many hosts each scheduler filter removed', async () => {
    await ok(['flavor-create', 'huge', '--vcpus', '1', '--memory-mib', '1000000', '--disk', '1']);
    const err = await fails(['boot', 'big-1', '--flavor', 'huge', '--image', 'cirros', '--wait']);
    expect(err).toContain('error: instance big-1 did not become active: NoValidHost');
    const out = await ok(['show', 'big-1']);
    expect(out).toMatch(/State: +error\n/);
    expect(out).toContain('Hosts removed by each scheduler filter, in the order they ran:');
    expect(out).toMatch(/RamFilter +removed 3 of 3/);
  });

  it('stop --wait and start --wait power the instance off and on', async () => {
    expect(await ok(['stop', 'web-1', '--wait'])).toContain('instance/web-1 stopped');
    expect((await env.instance('web-1'))?.status).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
    expect(await ok(['start', 'web-1', '--wait'])).toContain('instance/web-1 active');
    expect((await env.instance('web-1'))?.status).toMatchObject({ vmState: 'active', powerState: 'running' });
  });

  it('console says plainly that the fake driver has no console; bad input fails with a clear message', async () => {
    expect(await fails(['console', 'web-1'])).toContain(
      'uses the fake driver: its guests are simulated and have no serial console',
    );
    expect(await fails(['show', 'nope'])).toContain('error: instance nope not found in namespace default');
    expect(await fails(['resize', 'web-1'])).toContain("error: missing required argument 'flavor'");
    expect(await fails(['list', '-o', 'xml'])).toContain('Allowed choices are json, yaml');
    expect(await fails(['list', '--context', 'nowhere'])).toContain(
      'error: context "nowhere" is not in the kubeconfig',
    );
  });

  it('-n, --kubeconfig, --context and the context namespace choose where commands act; lists print as JSON or YAML', async () => {
    env.kubectl(['create', 'namespace', 'team']);
    await ok(['boot', 't-1', '-n', 'team', '--flavor', 'm1.tiny', '--image', 'cirros', '--wait']);
    const teamList = JSON.parse(await ok(['list', '-n', 'team', '-o', 'json'])) as { kind: string; items: Instance[] };
    expect(teamList.kind).toBe('List');
    expect(teamList.items.map((i) => i.metadata.name)).toEqual(['t-1']);
    expect(await ok(['list'])).not.toContain('t-1');
    expect(await ok(['list', '--all-namespaces'])).toMatch(/team +t-1 +active/);
    // A second kubeconfig whose current context's namespace is team, given with --kubeconfig and --context.
    const copy = join(env.dir, 'team-kubeconfig');
    copyFileSync(env.kubeconfigPath, copy);
    const ctx = env.kubectl(['--kubeconfig', copy, 'config', 'current-context']).trim();
    const of = (field: string) =>
      env.kubectl([
        '--kubeconfig',
        copy,
        'config',
        'view',
        '-o',
        `jsonpath={.contexts[?(@.name=="${ctx}")].context.${field}}`,
      ]);
    env.kubectl([
      '--kubeconfig',
      copy,
      'config',
      'set-context',
      'team-ctx',
      `--cluster=${of('cluster')}`,
      `--user=${of('user')}`,
      '--namespace=team',
    ]);
    const viaContext = await ok(['list', '--kubeconfig', copy, '--context', 'team-ctx'], { KUBECONFIG: '' });
    expect(viaContext).toMatch(/t-1 +active/);
    expect(viaContext).not.toContain('web-1');
    const yaml = await ok(['flavor-list', '-o', 'yaml']);
    expect(yaml).toContain('kind: List');
    expect(yaml).toContain('name: m1.small');
    expect(await ok(['quota-show', '-n', 'team'])).toContain('No ComputeQuota in namespace team');
  });
});

localOnly('kubectl nova: hosts', () => {
  it('host-disable keeps new instances off the host, shows why in host-list and host-show; host-enable undoes it', async () => {
    const out = await ok(['host-disable', 'node-c', '--reason', 'disk replacement']);
    expect(out).toContain('host/node-c disabled (disk replacement)');
    expect((await env.computeNode('node-c'))?.spec).toMatchObject({
      disabled: true,
      disabledReason: 'disk replacement',
    });
    expect(await ok(['host-list'])).toMatch(/node-c +az2 +disabled +up/);
    expect(await ok(['host-show', 'node-c'])).toMatch(/Status: +disabled \(disk replacement\)/);
    // node-c is the only host in az2: with it disabled, an az2 boot finds no host, and show says which filter.
    const err = await fails(['boot', 'az2-1', '--flavor', 'm1.tiny', '--image', 'cirros', '--az', 'az2', '--wait']);
    expect(err).toContain('NoValidHost');
    const shown = await ok(['show', 'az2-1']);
    expect(shown).toMatch(/ComputeFilter +removed 1 of 3/);
    expect(shown).toMatch(/AvailabilityZoneFilter +removed 2 of 2/);
    expect(await ok(['host-enable', 'node-c'])).toContain('host/node-c enabled');
    expect((await env.computeNode('node-c'))?.spec?.disabled).toBe(false);
    expect(await fails(['host-disable', 'node-c'])).toContain("required option '--reason <reason>' not specified");
  });

  it("host-list and host-show name the agent's last heartbeat, its node Lease renewal, beside its last status report", async () => {
    const lease = () =>
      env.kubectl(['get', 'lease', 'node-a', '-n', RELEASE_NAMESPACE, '--ignore-not-found', '-o', 'name']);
    await env.waitFor('node-a renews its node Lease', async () => (lease() ? true : undefined), 60_000);
    const shown = await ok(['host-show', 'node-a']);
    expect(shown).toMatch(new RegExp(`Heartbeat: +\\S+ ago \\(node Lease ${RELEASE_NAMESPACE}/node-a\\)`));
    expect(shown).toMatch(/Reported: +\S+ ago/);
    const listed = await ok(['host-list']);
    expect(listed).toMatch(/^NAME +ZONE +STATUS +STATE +HEARTBEAT /);
    expect(listed).toMatch(/^node-a +az\d +\S+ +up +\d+(s|m\d*s?) /m);
    // Where no agent namespace has its Lease, the status report is all there is, and it says so.
    expect(await ok(['host-show', 'node-a', '--agent-namespace', 'default'])).toMatch(
      /Heartbeat: +- \(no node Lease default\/node-a: the agent heartbeats by status; see Reported\)/,
    );
  });

  it('drain disables the host and cold-migrates every instance off it with progress; server groups are respected', async () => {
    env.apply({
      apiVersion: API,
      kind: 'ServerGroup',
      metadata: { name: 'db', namespace: 'default' },
      spec: { policy: 'anti-affinity' },
    });
    await ok([
      'boot',
      'db-1',
      '--flavor',
      'm1.tiny',
      '--image',
      'cirros',
      '--host',
      'node-a',
      '--server-group',
      'db',
      '--wait',
    ]);
    await ok([
      'boot',
      'db-2',
      '--flavor',
      'm1.tiny',
      '--image',
      'cirros',
      '--host',
      'node-b',
      '--server-group',
      'db',
      '--wait',
    ]);
    await ok(['boot', 'app-1', '--flavor', 'm1.tiny', '--image', 'cirros', '--host', 'node-a', '--wait']);
    await ok(['boot', 'app-2', '--flavor', 'm1.tiny', '--image', 'cirros', '--host', 'node-a', '--stopped', '--wait']);
    const onA = (await env.kube.instances.list()).items.filter((i) => i.status?.host === 'node-a');
    expect(onA.length).toBeGreaterThanOrEqual(3);

    const out = await ok(['drain', 'node-a']);

    expect(out).toContain('host/node-a disabled (drained with kubectl nova drain)');
    expect(out).toContain(`moving ${onA.length} instance(s) off node-a`);
    expect(out).toMatch(new RegExp(`\\[${onA.length}/${onA.length}\\] default/\\S+: now on node-`));
    expect(out).toContain('host/node-a drained');
    const node = await env.computeNode('node-a');
    expect(node?.spec?.disabled).toBe(true);
    const all = (await env.kube.instances.list()).items;
    expect(all.filter((i) => i.status?.host === 'node-a')).toEqual([]);
    // Anti-affinity: node-b holds db-2, so db-1 had only node-c to go to.
    expect(all.find((i) => i.metadata.name === 'db-1')?.status?.host).toBe('node-c');
    expect(all.find((i) => i.metadata.name === 'app-2')?.status).toMatchObject({ vmState: 'stopped' });
    await env.waitFor(
      'no claims left on node-a',
      async () => (await env.computeNode('node-a'))?.status?.claims?.length === 0,
    );
    expect(await ok(['host-show', 'node-a'])).toContain('Instances (0):');
  });

  it('evacuate refuses while the host is up, and once it is forced down rebuilds the instance elsewhere', async () => {
    const inst = (await env.instance('db-1'))!;
    expect(inst.status?.host).toBe('node-c');
    expect(await fails(['evacuate', 'db-1'])).toContain('host node-c of instance db-1 is not forced down');
    await env.killAgent('node-c');
    env.kubectl(['patch', 'cn', 'node-c', '--type', 'merge', '-p', '{"spec":{"forcedDown":true}}']);
    await ok(['host-enable', 'node-a']);
    const out = await ok(['evacuate', 'db-1', '--wait']);
    const moved = await env.waitForInstance('db-1', steady, 'active elsewhere');
    expect(moved.status?.host).not.toBe('node-c');
    // db-2 still holds node-b: anti-affinity leaves node-a.
    expect(moved.status?.host).toBe('node-a');
    expect(out).toContain(`instance/db-1 evacuated: runs on ${moved.status?.host}`);
  });
});
