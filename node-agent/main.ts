// Node agent entry point: one host per process (the DaemonSet), fake or libvirt driver; or,
// for benchmarks, many simulated hosts in one process (--simulate-hosts, see
// simulated/hosts.ts). Either way every host is a HostAgent fed by one shared Instance
// informer and one shared Migration informer, and the process has one metrics server.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ZONE_LABEL } from '../common/api/types.js';
import { ConfigError, parseLabels } from '../common/config.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import { createLogger } from '../common/log.js';
import { startHttpServer } from '../common/runtime/http.js';
import { Metrics } from '../common/runtime/metrics.js';
import { onShutdown } from '../common/runtime/signals.js';
import { parseAgentConfig } from './config.js';
import type { VirtDriver } from './driver/driver.js';
import { FakeDriver } from './driver/fake.js';
import { LibvirtDriver } from './driver/libvirt.js';
import { ensureTinyImage, parseImageList, type GuestImage } from './driver/libvirt-image.js';
import { HostAgent } from './host-agent.js';
import { Informer } from '../common/kube/informer.js';
import { planHosts, type HostPlan } from './simulated/hosts.js';

async function main(): Promise<void> {
  const config = parseAgentConfig(process.argv.slice(2));
  const nodeName = config['node-name'];
  if (!nodeName) throw new ConfigError('--node-name (or NODE_NAME) is required: the host this agent serves');
  const simulated = config['simulate-hosts'] > 0;
  if (simulated && config.driver !== 'fake') throw new ConfigError('--simulate-hosts needs --driver fake: simulated hosts have no hypervisor');
  let plan: HostPlan[];
  try {
    // Spreading the starts over one heartbeat interval spreads every host's timers the same way.
    plan = planHosts(nodeName, config['simulate-hosts'], config['simulate-host-offset'], config['heartbeat-interval'] * 1000);
  } catch (err) {
    throw new ConfigError(`--simulate-hosts / --simulate-host-offset: ${(err as Error).message}`);
  }
  const log = createLogger({ component: 'node-agent', node: simulated ? undefined : nodeName, level: config['log-level'], pretty: config['log-format'] === 'pretty' });
  const labels = parseLabels(config.labels);
  if (config.zone) labels[ZONE_LABEL] = config.zone;
  const kubeConfig = loadKubeConfig(config.kubeconfig, config['api-keepalive']);
  const kube = new Kube(kubeConfig, `kubenova-agent-${nodeName}`);
  const capacity = { vcpus: config['capacity-vcpus'], memoryMiB: config['capacity-memory-mib'], diskGiB: config['capacity-disk-gib'] };
  const metrics = new Metrics('node-agent');
  let images: Record<string, GuestImage> = {};
  if (config.driver === 'libvirt') {
    try {
      images = config['libvirt-images'] ? parseImageList(config['libvirt-images']) : { tiny: ensureTinyImage() };
    } catch (err) {
      throw new ConfigError(`--libvirt-images: ${(err as Error).message}`);
    }
  }
  const instances = new Informer(kube, 'Instance', log);
  const migrations = new Informer(kube, 'Migration', log);
  const agents = plan.map(({ host }, i) => {
    const hostLog = simulated ? log.child({ node: host }) : log;
    const driver: VirtDriver =
      config.driver === 'libvirt'
        ? new LibvirtDriver({
            host,
            stateDir: join(config['state-dir'], host),
            capacity,
            images,
            uri: config['libvirt-uri'],
            bootTimeoutMs: config['libvirt-boot-timeout'] * 1000,
            minMemoryMiB: config['libvirt-min-memory-mib'],
          })
        : new FakeDriver(join(config['state-dir'], host), capacity, { spawnDelayMs: config['spawn-delay-ms'], failSpawnForImage: config['fake-fail-spawn-image'] });
    return new HostAgent(
      // Each host writes under its own field manager, as its own agent would.
      simulated ? new Kube(kubeConfig, `kubenova-agent-${host}`) : kube,
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
        // A fixed port is the first host's; the others take the ports after it.
        migrationPort: config['migration-port'] > 0 ? config['migration-port'] + i : 0,
        advertiseAddress: config['advertise-address'],
        transferRetries: config['transfer-retries'],
        breakTransfers: config['test-break-transfers'],
      },
      metrics,
      hostLog,
    );
  });
  instances.on('add', (i) => agents.forEach((a) => a.onInstance(i)));
  instances.on('update', (i) => agents.forEach((a) => a.onInstance(i)));
  migrations.on('add', (m) => agents.forEach((a) => a.onMigration(m)));
  migrations.on('update', (m) => agents.forEach((a) => a.onMigration(m)));
  const server = await startHttpServer(config['metrics-port'], config['metrics-address'], metrics.registry, {
    healthy: () => true,
    ready: () => agents.every((a) => a.ready),
  });
  let stopping = false;
  onShutdown(async () => {
    stopping = true;
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all([instances.stop(), migrations.stop()]);
    server.close();
  }, log);
  await Promise.all([instances.start(), migrations.start()]);
  await Promise.all(
    agents.map(async (agent, i) => {
      const delay = plan[i]?.startDelayMs ?? 0;
      if (delay > 0) await sleep(delay);
      if (!stopping) await agent.start();
    }),
  );
  const address = server.address();
  log.info(
    { metrics: typeof address === 'object' && address ? `${address.address}:${address.port}` : address, driver: config.driver, hosts: agents.length, ...(simulated ? { first: plan[0]?.host, last: plan.at(-1)?.host } : {}) },
    'node agent running',
  );
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : (err as Error).stack ?? String(err);
  process.stderr.write(`node-agent: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
