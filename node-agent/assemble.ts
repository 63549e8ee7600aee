// How an agent process is put together from its parsed flags (config.ts): the driver and the
// HostAgent options of a host, each HostAgent's own watches (host-watches.ts: the Instances
// and Migrations that involve its host), and the process-wide parts — one metrics registry and
// its /metrics, /healthz, /readyz server — with their start and shutdown. main.ts assembles one host from these
// pieces; they are exported so that any other process that runs HostAgents builds them the
// same way instead of copying this code.
import type { Server } from 'node:http';
import { Counter } from 'prom-client';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ZONE_LABEL, type ResourceAmounts } from '../common/api/types.js';
import { ConfigError, parseLabels, releaseNamespace } from '../common/config.js';
import type { Kube } from '../common/kube/client.js';
import { createLogger, type Logger } from '../common/log.js';
import { startHttpServer } from '../common/runtime/http.js';
import { Metrics } from '../common/runtime/metrics.js';
import { onShutdown } from '../common/runtime/signals.js';
import type { AgentConfig } from './config.js';
import type { VirtDriver } from './driver/driver.js';
import { FakeDriver } from './driver/fake.js';
import { InjectedFailures } from './driver/injected-failures.js';
import { LibvirtDriver, type LibvirtAccel } from './driver/libvirt.js';
import { ensureTinyImage, parseImageList, type GuestImage } from './driver/libvirt-image.js';
import { HostAgent, type HostAgentOptions } from './host-agent.js';
import { HostWatches, WATCH_EVENTS_METRIC } from './host-watches.js';

/** The process logger, as --log-level and --log-format ask; `node` is set on every line when given. */
export function agentLogger(config: AgentConfig, node?: string): Logger {
  return createLogger({
    component: 'node-agent',
    node,
    level: config['log-level'],
    pretty: config['log-format'] === 'pretty',
  });
}

/** ComputeNode labels: --labels plus the zone label from --zone. */
export function nodeLabels(config: AgentConfig): Record<string, string> {
  const labels = parseLabels(config.labels);
  if (config.zone) labels[ZONE_LABEL] = config.zone;
  return labels;
}

/**
 * The guest images a libvirt driver offers (--libvirt-images, or the tiny image built once); none
 * for the fake driver.
 */
export function guestImages(config: AgentConfig): Record<string, GuestImage> {
  if (config.driver !== 'libvirt') return {};
  try {
    return config['libvirt-images'] ? parseImageList(config['libvirt-images']) : { tiny: ensureTinyImage() };
  } catch (err) {
    throw new ConfigError(`--libvirt-images: ${(err as Error).message}`);
  }
}

/** What the fake driver reports for a --capacity-* flag not given. */
export const FAKE_CAPACITY: ResourceAmounts = { vcpus: 8, memoryMiB: 16384, diskGiB: 200 };

/**
 * The virt driver of `host`, keeping its instance directories under <state-dir>/<host>. The
 * fake driver reports the --capacity-* flags (FAKE_CAPACITY for those not given); the libvirt
 * driver measures the machine for those not given.
 */
export function createDriver(config: AgentConfig, host: string, images: Record<string, GuestImage>): VirtDriver {
  const given: Partial<ResourceAmounts> = {
    vcpus: config['capacity-vcpus'],
    memoryMiB: config['capacity-memory-mib'],
    diskGiB: config['capacity-disk-gib'],
  };
  const stateDir = join(config['state-dir'], host);
  if (config.driver === 'libvirt') {
    return new LibvirtDriver({
      host,
      stateDir,
      capacity: Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
      images,
      uri: config['libvirt-uri'],
      bootTimeoutMs: config['libvirt-boot-timeout'] * 1000,
      minMemoryMiB: config['libvirt-min-memory-mib'],
      accel: config['libvirt-accel'] as LibvirtAccel,
    });
  }
  const capacity: ResourceAmounts = {
    vcpus: given.vcpus ?? FAKE_CAPACITY.vcpus,
    memoryMiB: given.memoryMiB ?? FAKE_CAPACITY.memoryMiB,
    diskGiB: given.diskGiB ?? FAKE_CAPACITY.diskGiB,
  };
  return new FakeDriver(stateDir, capacity, {
    spawnDelayMs: config['spawn-delay-ms'],
    failSpawnForImage: config['fake-fail-spawn-image'],
  });
}

/** What the flags say a HostAgent for `host` runs with; `overrides` replaces single fields. */
export function hostAgentOptions(
  config: AgentConfig,
  host: string,
  labels: Record<string, string>,
  overrides: Partial<HostAgentOptions> = {},
): HostAgentOptions {
  return {
    host,
    labels,
    heartbeatIntervalMs: config['heartbeat-interval'] * 1000,
    statusReportIntervalMs: config['status-report-interval'] * 1000,
    auditIntervalMs: config['audit-interval'] * 1000,
    auditGraceMs: config['audit-grace'] * 1000,
    workers: 4,
    stagingDir: join(config['state-dir'], host, 'incoming'),
    certDir: join(config['state-dir'], host, 'tls'),
    releaseNamespace: releaseNamespace(config['release-namespace']),
    transferHeadroomBytes: config['transfer-headroom-mib'] * 1024 * 1024,
    transferCertificateWaitMs: config['transfer-certificate-wait'] * 1000,
    migrationAddress: config['migration-address'],
    migrationPort: config['migration-port'],
    advertiseAddress: config['advertise-address'],
    transferRetries: config['transfer-retries'],
    stepRetries: config['step-retries'],
    stepTimeoutMs: config['step-timeout'] * 1000,
    breakTransfers: config['test-break-transfers'],
    networkUplinks: config['network-uplinks'],
    ...overrides,
  };
}

/**
 * The process-wide parts: the metrics registry and, once run, the metrics server. Each
 * HostAgent added gets its own watches (host-watches.ts), made with its own client, as a node
 * agent of that one host would have: the Instances and Migrations that involve its host, not
 * the cluster's. Ready when every HostAgent has started (registered its ComputeNode).
 */
export class AgentProcess {
  private readonly agents: HostAgent[] = [];
  private readonly hosts = new Map<HostAgent, { driver: VirtDriver; log: Logger; watches: HostWatches }>();
  private readonly started = new Set<HostAgent>();
  private readonly watchEvents: Counter<'kind' | 'event'>;
  private stopping = false;

  /**
   * `metrics` is the process's registry; give the one whose apiRequest the kubeconfig reports
   * to (loadKubeConfig), so the agent's API requests are counted where it serves them.
   */
  constructor(
    private readonly log: Logger,
    readonly metrics: Metrics = new Metrics('node-agent'),
  ) {
    this.watchEvents = new Counter({
      name: WATCH_EVENTS_METRIC,
      help: "Watch events delivered to this process's host agents (every host's watches), by kind and event.",
      labelNames: ['kind', 'event'],
      registers: [metrics.registry],
    });
  }

  /**
   * A HostAgent on its own watches, made with `kube` (the host's identity), and this process's
   * metrics. A fake driver fails the steps an Instance's fake.kubenova.io/fail annotation names
   * for this host; other drivers ignore it.
   */
  addHost(kube: Kube, driver: VirtDriver, opts: HostAgentOptions, log: Logger): HostAgent {
    const watches = new HostWatches(kube, opts.host, log, (kind, event) => this.watchEvents.inc({ kind, event }));
    if (driver instanceof FakeDriver) {
      const injected = new InjectedFailures(log);
      injected.watch(watches.instances);
      driver.setInjectedFailures((uid) => injected.stepsFor(uid, opts.host));
    }
    const agent = new HostAgent(kube, driver, watches.instances, watches.migrations, opts, this.metrics, log);
    watches.instances.on('add', (i) => agent.onInstance(i));
    watches.instances.on('update', (i) => agent.onInstance(i));
    watches.instances.on('delete', (i) => agent.onInstanceLeft(i));
    watches.migrations.on('add', (m) => agent.onMigration(m));
    watches.migrations.on('update', (m) => agent.onMigration(m));
    this.agents.push(agent);
    this.hosts.set(agent, { driver, log, watches });
    return agent;
  }

  /** The watches of the host `agent` serves. */
  watchesOf(agent: HostAgent): HostWatches | undefined {
    return this.hosts.get(agent)?.watches;
  }

  /**
   * Serves /metrics, /healthz and /readyz, stops everything on SIGINT/SIGTERM, and for each
   * HostAgent syncs its watches and starts it (after `startDelayMs(index)`, 0 by default).
   * Returns the metrics server's address.
   */
  async run(config: AgentConfig, startDelayMs: (index: number) => number = () => 0): Promise<string> {
    const server: Server = await startHttpServer(
      config['metrics-port'],
      config['metrics-address'],
      this.metrics.registry,
      {
        healthy: () => true,
        ready: () => this.agents.length > 0 && this.agents.every((a) => this.started.has(a)),
      },
    );
    onShutdown(async () => {
      this.stopping = true;
      await Promise.all(this.agents.map((a) => a.stop()));
      await Promise.all([...this.hosts.values()].map((h) => h.watches.stop()));
      server.close();
    }, this.log);
    await Promise.all(
      this.agents.map(async (agent, i) => {
        const delay = startDelayMs(i);
        if (delay > 0) await sleep(delay);
        if (this.stopping) return;
        const host = this.hosts.get(agent);
        if (!host) return;
        await this.untilHypervisorAnswers(host.driver, host.log);
        if (this.stopping) return;
        // Listed before the host starts: its first pass sees everything already sent to it.
        await host.watches.start();
        if (this.stopping) return;
        await agent.start();
        this.started.add(agent);
      }),
    );
    const address = server.address();
    return typeof address === 'object' && address ? `${address.address}:${address.port}` : String(address);
  }

  /**
   * Returns once the driver's hypervisor answers (or the process stops). libvirtd may come up
   * after the agent — in the Helm chart it runs in a pod of its own — and a host registered
   * before it answers would take instances only to fail their spawns; meanwhile /readyz says
   * not ready. The fake driver has nothing to wait for.
   */
  private async untilHypervisorAnswers(driver: VirtDriver, log: Logger): Promise<void> {
    if (!(driver instanceof LibvirtDriver)) return;
    let reported = 0;
    while (!this.stopping) {
      const problem = await driver.answers();
      if (problem === undefined) {
        if (reported > 0) log.info('libvirtd answers');
        return;
      }
      // Said at once and then every 30 s, not every second.
      if (Date.now() - reported >= 30_000) {
        log.warn({ err: problem }, 'waiting for libvirtd to answer before registering the host');
        reported = Date.now();
      }
      await sleep(1_000);
    }
  }
}

/**
 * The end of a main(): a ConfigError is a usage error (exit 2, message only), anything else a crash
 * (exit 1, stack).
 */
export { exitOnError } from '../common/config.js';
