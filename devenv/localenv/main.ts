// `npm start`: a whole kubenova on this machine — a real control plane, the CRDs and
// sample flavors, the operator and three node agents — in the foreground until Ctrl-C.
import { mkdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlPlane } from '../controlplane/controlplane.js';
import type { ManagedProcess } from '../controlplane/processes.js';
import {
  applySampleFlavors,
  installCrds,
  installFinalizerPolicy,
  startAgent,
  startOperator,
  type AgentSpec,
} from '../components.js';
import { LibvirtDriver } from '../../node-agent/driver/libvirt.js';
import { ensureTinyImage } from '../../node-agent/driver/libvirt-image.js';

const AGENTS: AgentSpec[] = [
  { name: 'node-a', vcpus: 8, memoryMiB: 16384, diskGiB: 200, zone: 'az1' },
  { name: 'node-b', vcpus: 8, memoryMiB: 16384, diskGiB: 200, zone: 'az1' },
  { name: 'node-c', vcpus: 8, memoryMiB: 16384, diskGiB: 200, zone: 'az2' },
];

const COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[33m', '\x1b[32m', '\x1b[34m'];

function prefixer(name: string, index: number): (chunk: Buffer) => void {
  const color = process.stdout.isTTY ? COLORS[index % COLORS.length] : '';
  const reset = process.stdout.isTTY ? '\x1b[0m' : '';
  const label = `${color}${name.padEnd(9)}${reset}| `;
  let partial = '';
  return (chunk) => {
    const text = partial + chunk.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line) process.stdout.write(`${label}${line}\n`);
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      'state-dir': { type: 'string', default: '.kubenova' },
      'log-level': { type: 'string', default: 'info' },
      driver: { type: 'string', default: 'fake' },
      fresh: { type: 'boolean', default: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowNegative: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm start -- [flags]\n' +
        '  --state-dir <dir>   where the control plane, agents and kubeconfig live (default .kubenova)\n' +
        '  --log-level <level> trace, debug, info, warn, error (default info)\n' +
        '  --driver <driver>   fake, or libvirt for real guests (default fake)\n' +
        '  --no-fresh          keep the cluster and instances of the last run\n',
    );
    return;
  }
  if (values.driver !== 'fake' && values.driver !== 'libvirt')
    throw new Error(`--driver ${values.driver}: use fake or libvirt`);
  const libvirt = values.driver === 'libvirt';
  const stateDir = resolve(values['state-dir']);
  const driverArgs: string[] = [];
  if (libvirt) {
    // Real VMs (the `tiny` image, built once here for all three agents). Guests of an earlier run go with its state.
    const image = ensureTinyImage();
    driverArgs.push('--driver=libvirt', `--libvirt-images=tiny=${dirname(image.kernel)}`);
    if (values.fresh) await destroyGuests(stateDir);
  }
  // Each run starts from a fresh cluster: etcd and the agents' instance directories go together.
  if (values.fresh) rmSync(join(stateDir, 'controlplane'), { recursive: true, force: true });
  if (values.fresh) rmSync(join(stateDir, 'agents'), { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const cp = await ControlPlane.start({ dir: join(stateDir, 'controlplane') });
  const kubeconfig = join(stateDir, 'kubeconfig');
  copyFileSync(cp.kubeconfigPath, kubeconfig);
  const processes: ManagedProcess[] = [];
  const shutdown = async (code: number) => {
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 5_000)));
    if (libvirt)
      await destroyGuests(stateDir).catch((err: unknown) =>
        process.stderr.write(`removing the guests failed: ${(err as Error).message}\n`),
      );
    await cp.stop();
    process.exit(code);
  };
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      process.stdout.write('\nstopping kubenova…\n');
      void shutdown(0);
    });
  }
  try {
    installCrds(cp);
    await installFinalizerPolicy(cp);
    applySampleFlavors(cp);
    const env = { LOG_FORMAT: 'pretty', LOG_LEVEL: values['log-level'] };
    processes.push(
      startOperator(
        cp,
        ['--log-format=pretty', `--log-level=${values['log-level']}`],
        { onOutput: prefixer('operator', 0) },
        env,
      ),
    );
    AGENTS.forEach((spec, i) => {
      processes.push(
        startAgent(
          cp,
          { ...spec, extraArgs: ['--log-format=pretty', `--log-level=${values['log-level']}`, ...driverArgs] },
          join(stateDir, 'agents'),
          { onOutput: prefixer(spec.name, i + 1) },
          env,
        ),
      );
    });
    for (const p of processes) {
      void p.exited.then((code) => {
        if (!stopping) process.stdout.write(`${p.name} exited (${String(code)})\n`);
      });
    }
    await waitForReadyNodes(cp, AGENTS.length);
    const kubectlHint = `${cp.binaries.kubectl}`;
    writeFileSync(join(stateDir, 'env.sh'), `export KUBECONFIG=${kubeconfig}\nalias kubectl=${kubectlHint}\n`);
    process.stdout.write(
      `Ready: export KUBECONFIG=${kubeconfig} (or source ${join(stateDir, 'env.sh')} for a matching kubectl), then: kubectl get cn,flv\n`,
    );
  } catch (err) {
    process.stderr.write(`npm start failed: ${(err as Error).message}\n`);
    await shutdown(1);
  }
}

/** Destroys every libvirt guest of the three agents (domains kn-<agent>-*, their disks and consoles). */
async function destroyGuests(stateDir: string): Promise<void> {
  for (const spec of AGENTS) {
    const driver = new LibvirtDriver({
      host: spec.name,
      stateDir: join(stateDir, 'agents', spec.name),
      capacity: { vcpus: 1, memoryMiB: 64, diskGiB: 0 },
      images: {},
    });
    const domains = await driver.list().catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n(is libvirtd running? as root: bash devenv/libvirt/setup.sh)`, {
        cause: err,
      });
    });
    for (const d of domains) await driver.destroy(d.uid);
  }
}

async function waitForReadyNodes(cp: ControlPlane, count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const out = cp.kubectl([
      'get',
      'cn',
      '-o',
      'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    ]);
    if (out.split('\n').filter((l) => l.trim() === 'True').length >= count) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`the node agents did not register within 60 s`);
}

main().catch((err: unknown) => {
  process.stderr.write(`npm start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
