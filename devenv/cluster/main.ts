// `npm run cluster -- [--nodes N] [--state-dir DIR]`: a Kubernetes cluster of real nodes on
// this machine (see cluster.ts), in the foreground until Ctrl-C or SIGTERM, which remove
// everything it made. Needs root and devenv/cluster/setup.sh.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ImageArchive } from '../images/oci.js';
import { DEFAULT_NODES, startCluster, type Cluster } from './cluster.js';
import { missingPrerequisites } from './preflight.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      nodes: { type: 'string', default: String(DEFAULT_NODES) },
      'state-dir': { type: 'string', default: '.kubenova/cluster' },
      'keep-state': { type: 'boolean', default: false },
    },
  });
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
  // ── kubenova's images ── built here (devenv/images) and loaded into every node.
  const images: ImageArchive[] = [];
  const cluster = await startCluster({ nodes, stateDir, images, log, keepState: values['keep-state'] });
  running.cluster = cluster;
  // ── kubenova itself ── `helm install charts/kubenova` against cluster.env goes here, before Ready:.

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const memory = cluster.memory().map((m) => `${m.node} ${Math.round(m.total / 1024)} MiB`);
  log(`started in ${seconds} s (${JSON.stringify(cluster.timings)}); node daemons' memory: ${memory.join(', ')}`);
  log(
    `Ready: export KUBECONFIG=${cluster.kubeconfig} (or source ${resolve(stateDir, 'env.sh')} for a matching kubectl), then: kubectl get nodes -o wide`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`npm run cluster: ${(err as Error).message}\n`);
  process.exit(1);
});
