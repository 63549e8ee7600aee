// Operator entry point: the cluster-wide brain (scheduler, conductor, node monitor).
import { ConfigError } from '../common/config.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import { EventRecorder } from '../common/kube/events.js';
import { createLogger } from '../common/log.js';
import { startHttpServer } from '../common/runtime/http.js';
import { Metrics } from '../common/runtime/metrics.js';
import { onShutdown } from '../common/runtime/signals.js';
import { parseOperatorConfig } from './config.js';
import { Operator } from './operator.js';

async function main(): Promise<void> {
  const config = parseOperatorConfig(process.argv.slice(2));
  const log = createLogger({ component: 'operator', level: config['log-level'], pretty: config['log-format'] === 'pretty' });
  const kube = new Kube(loadKubeConfig(config.kubeconfig), 'kubenova-operator');
  const metrics = new Metrics('operator');
  const events = new EventRecorder(kube, 'kubenova-operator', undefined, log);
  const operator = new Operator(kube, config, metrics, events, log);
  const server = await startHttpServer(config['metrics-port'], config['metrics-address'], metrics.registry, {
    healthy: () => true,
    ready: () => operator.ready,
  });
  await operator.start();
  const address = server.address();
  log.info({ metrics: typeof address === 'object' && address ? `${address.address}:${address.port}` : address }, 'operator running');
  onShutdown(async () => {
    await operator.stop();
    server.close();
  }, log);
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : (err as Error).stack ?? String(err);
  process.stderr.write(`operator: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
