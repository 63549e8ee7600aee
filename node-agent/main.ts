// Node agent entry point: one host per process (the DaemonSet), fake or libvirt driver.
import { join } from 'node:path';
import { ZONE_LABEL } from '../common/api/types.js';
import { ConfigError, parseLabels } from '../common/config.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import { createLogger } from '../common/log.js';
import { startHttpServer } from '../common/runtime/http.js';
import { Metrics } from '../common/runtime/metrics.js';
import { onShutdown } from '../common/runtime/signals.js';
import { parseAgentConfig } from './config.js';
import { FakeDriver } from './driver/fake.js';
import { HostAgent } from './host-agent.js';
import { Informer } from '../common/kube/informer.js';

async function main(): Promise<void> {
  const config = parseAgentConfig(process.argv.slice(2));
  const host = config['node-name'];
  if (!host) throw new ConfigError('--node-name (or NODE_NAME) is required: the host this agent serves');
  const log = createLogger({ component: 'node-agent', node: host, level: config['log-level'], pretty: config['log-format'] === 'pretty' });
  const labels = parseLabels(config.labels);
  if (config.zone) labels[ZONE_LABEL] = config.zone;
  const kube = new Kube(loadKubeConfig(config.kubeconfig), `kubenova-agent-${host}`);
  const capacity = { vcpus: config['capacity-vcpus'], memoryMiB: config['capacity-memory-mib'], diskGiB: config['capacity-disk-gib'] };
  const driver = new FakeDriver(join(config['state-dir'], host), capacity, { spawnDelayMs: config['spawn-delay-ms'], failSpawnForImage: config['fake-fail-spawn-image'] });
  const metrics = new Metrics('node-agent');
  const instances = new Informer(kube, 'Instance', log);
  const migrations = new Informer(kube, 'Migration', log);
  const agent = new HostAgent(
    kube,
    driver,
    instances,
    migrations,
    {
      host,
      labels,
      heartbeatIntervalMs: config['heartbeat-interval'] * 1000,
      auditIntervalMs: config['audit-interval'] * 1000,
      auditGraceMs: config['audit-grace'] * 1000,
      workers: 4,
      stagingDir: join(config['state-dir'], host, 'incoming'),
      migrationAddress: config['migration-address'],
      migrationPort: config['migration-port'],
      advertiseAddress: config['advertise-address'],
      transferRetries: config['transfer-retries'],
      breakTransfers: config['test-break-transfers'],
    },
    metrics,
    log,
  );
  instances.on('add', (i) => agent.onInstance(i));
  instances.on('update', (i) => agent.onInstance(i));
  migrations.on('add', (m) => agent.onMigration(m));
  migrations.on('update', (m) => agent.onMigration(m));
  const server = await startHttpServer(config['metrics-port'], config['metrics-address'], metrics.registry, {
    healthy: () => true,
    ready: () => agent.ready,
  });
  await Promise.all([instances.start(), migrations.start()]);
  await agent.start();
  const address = server.address();
  log.info({ metrics: typeof address === 'object' && address ? `${address.address}:${address.port}` : address, driver: driver.kind }, 'node agent running');
  onShutdown(async () => {
    await agent.stop();
    await Promise.all([instances.stop(), migrations.stop()]);
    server.close();
  }, log);
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : (err as Error).stack ?? String(err);
  process.stderr.write(`node-agent: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
