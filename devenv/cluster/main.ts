// `npm run cluster -- [--nodes N] [--state-dir DIR]`: a Kubernetes cluster of real nodes on
// this machine (see cluster.ts), in the foreground until Ctrl-C or SIGTERM, which remove
// everything it made. Needs root and devenv/cluster/setup.sh.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_NODES, type Cluster } from './cluster.js';
import { RELEASE, RELEASE_NAMESPACE, startKubenovaCluster } from './kubenova.js';
import { missingPrerequisites } from './preflight.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      nodes: { type: 'string', default: String(DEFAULT_NODES) },
      'state-dir': { type: 'string', default: '.kubenova/cluster' },
      'keep-state': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run cluster -- [flags]   (as root, after devenv/cluster/setup.sh)\n' +
        `  --nodes <n>         real nodes to run (default ${DEFAULT_NODES})\n` +
        '  --state-dir <dir>   where the cluster keeps its state (default .kubenova/cluster)\n' +
        '  --keep-state        leave the state directory when stopping\n',
    );
    return;
  }
  const missing = missingPrerequisites();
  if (missing.length > 0) throw new Error(`this machine lacks:\n  ${missing.join('\n  ')}`);
  const nodes = Number(values.nodes);
  const stateDir = resolve(values['state-dir']);
  const log = (line: string) => process.stdout.write(`${line}\n`);

  const running: { cluster?: Cluster } = {};
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      process.stdout.write('\nstopping the cluster…\n');
      // While it is still starting, exiting is enough: the guardian removes what was made.
      if (!running.cluster) process.exit(130);
      running.cluster.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`${(err as Error).message}\n`);
          process.exit(1);
        },
      );
    });
  }

  const started = Date.now();
  // kubenova's image is built here (devenv/images), loaded into every node, and the chart is
  // installed with the libvirt driver before Ready: is printed.
  const { cluster, image, timings } = await startKubenovaCluster({
    nodes,
    stateDir,
    log,
    keepState: values['keep-state'],
  });
  running.cluster = cluster;
  log(`kubenova ${image.ref} installed as release ${RELEASE} in namespace ${RELEASE_NAMESPACE}`);

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const memory = cluster.memory().map((m) => `${m.node} ${Math.round(m.total / 1024)} MiB`);
  log(`started in ${seconds} s (${JSON.stringify(timings)}); node daemons' memory: ${memory.join(', ')}`);
  log(
    `Ready: export KUBECONFIG=${cluster.kubeconfig} (or source ${resolve(stateDir, 'env.sh')} for a matching kubectl), then: kubectl get nodes -o wide`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`npm run cluster: ${(err as Error).message}\n`);
  process.exit(1);
});
