// Wires the operator's controllers to shared watch-fed caches. Each controller registers its
// own watches; this file only builds the caches, the shared services and the queues.
import { CustomObjectsApi } from '@kubernetes/client-node';
import { ConfigError, releaseNamespace } from '../common/config.js';
import type { Kube } from '../common/kube/client.js';
import type { EventRecorder } from '../common/kube/events.js';
import { FaultRecorder } from '../common/kube/fault-recorder.js';
import { Informer } from '../common/kube/informer.js';
import type { Logger } from '../common/log.js';
import { Controller, type Reconciler } from '../common/runtime/controller.js';
import type { Metrics } from '../common/runtime/metrics.js';
import type { OperatorConfig } from './config.js';
import { AgentSigner, type AgentIdentityRule } from './certificates/agent-signer.js';
import { BootConductor } from './instance/boot.js';
import { InstanceController } from './instance/controller.js';
import { DeletionConductor } from './instance/deletion.js';
import { HostRouting } from './host-routing.js';
import type { TransferTokens } from './migration/transfer-token.js';
import { migrationController } from './migration/wiring.js';
import { ResizeRequests } from './instance/resize-request.js';
import { AutoEvacuation } from './nodehealth/auto-evacuation.js';
import { HostLostReporter } from './nodehealth/host-lost.js';
import { NodeMonitor } from './nodehealth/node-monitor.js';
import { IPAllocator } from './network/allocator.js';
import { PortBindingController } from './network/binding-controller.js';
import { InstanceNetworks } from './network/instance-networks.js';
import { NetworkStatusController } from './network/network-status.js';
import { Ports } from './network/ports.js';
import { AllocationSweeper } from './network/sweeper.js';
import { QuotaService } from './quota/quota-service.js';
import { PlacementAttempts } from './scheduler/attempts.js';
import { Placement } from './scheduler/placement.js';
import { HeartbeatClock } from './nodehealth/heartbeat-clock.js';
import { NodeLeases } from './nodehealth/node-leases.js';
import { Scheduler } from './scheduler/scheduler.js';
import { ServerGroups } from './servergroups/membership.js';
import { ServerGroupStatus } from './servergroups/status-controller.js';

/** The watch-fed caches every controller reads; nodes and flavors first, since placements need them. */
function caches(kube: Kube, log: Logger, instanceSelector: string | undefined) {
  return {
    nodes: new Informer(kube, 'ComputeNode', log),
    flavors: new Informer(kube, 'Flavor', log),
    instances: new Informer(kube, 'Instance', log, { labelSelector: instanceSelector }),
    migrations: new Informer(kube, 'Migration', log),
    quotas: new Informer(kube, 'ComputeQuota', log),
    serverGroups: new Informer(kube, 'ServerGroup', log),
    networks: new Informer(kube, 'Network', log),
    ports: new Informer(kube, 'Port', log),
    ipAllocations: new Informer(kube, 'IPAllocation', log),
  };
}

export class Operator {
  private readonly caches: ReturnType<typeof caches>;
  private readonly placement: Placement;
  private readonly nodeMonitor: NodeMonitor;
  private readonly controllers: Controller[] = [];
  private readonly signer: AgentSigner;
  private readonly tokens: TransferTokens;
  private readonly sweeper: AllocationSweeper;
  private readonly timers: NodeJS.Timeout[] = [];
  private started = false;

  constructor(
    readonly kube: Kube,
    readonly config: OperatorConfig,
    readonly metrics: Metrics,
    readonly events: EventRecorder,
    readonly log: Logger,
    /** Whether this replica may act now (leader election); always yes without it. */
    private readonly leaderGate: () => boolean = () => true,
  ) {
    const heartbeatTimeoutMs = config['node-heartbeat-timeout'] * 1000;
    this.caches = caches(kube, log, config['instance-selector']);
    const { nodes, flavors, instances, migrations, quotas, serverGroups, networks, ports, ipAllocations } = this.caches;
    const faults = new FaultRecorder(events);
    const quota = new QuotaService(kube, quotas, log.child({ controller: 'quota' }));
    const namespace = releaseNamespace(config['release-namespace']);
    const heartbeats = new HeartbeatClock(heartbeatTimeoutMs);
    nodes.onViewChange((view) => (view === 'lost' ? heartbeats.viewLost() : heartbeats.viewRestored()));
    const monitorLog = log.child({ controller: 'node-monitor' });
    const leases = new NodeLeases(kube.config.makeApiClient(CustomObjectsApi), namespace, heartbeats, monitorLog);
    const monitorConfig = { periodMs: config['node-monitor-period'] * 1000, refresh: () => leases.refresh() };
    this.nodeMonitor = new NodeMonitor(kube, nodes, events, heartbeats, monitorConfig, monitorLog, undefined, () =>
      this.canAct(),
    );
    const hostLostGrace = { graceMs: config['host-lost-grace'] * 1000 };
    this.nodeMonitor.addPass(new HostLostReporter(kube, nodes, instances, events, hostLostGrace, monitorLog));
    this.nodeMonitor.addPass(new AutoEvacuation(kube, nodes, instances, migrations, events, monitorLog));
    const scheduler = new Scheduler({
      ramWeightMultiplier: config['ram-weight-multiplier'],
      cpuWeightMultiplier: config['cpu-weight-multiplier'],
      diskWeightMultiplier: config['disk-weight-multiplier'],
      softAffinityWeightMultiplier: config['soft-affinity-weight-multiplier'],
      hostSubsetSize: config['host-subset-size'],
    });
    const domain = metrics.operator;
    const onDecision = (result: Parameters<typeof domain.scheduled>[0], seconds: number) =>
      domain.scheduled(result, seconds);
    this.placement = new Placement(scheduler, nodes, heartbeats, onDecision);
    const groups = new ServerGroups(serverGroups, instances, (uid) => this.placement.inFlight.hostOf(uid));
    const attempts = new PlacementAttempts(this.placement, groups, {
      maxAttempts: config['max-attempts'],
      claimTimeoutMs: Math.max(2_000, heartbeatTimeoutMs / 2),
      onReschedule: (what) => domain.rescheduled(what),
    });

    const networkLog = log.child({ controller: 'network' });
    const allocator = new IPAllocator(kube, ipAllocations, networkLog);
    this.sweeper = new AllocationSweeper(kube, ipAllocations, ports, instances, networkLog);
    const instanceNetworks = new InstanceNetworks(
      kube,
      networks,
      new Ports(kube, ports, allocator, events, networkLog),
    );

    const instanceLog = log.child({ controller: 'instance' });
    const instanceController = new InstanceController(
      instances,
      migrations,
      new BootConductor(kube, flavors, attempts, quota, groups, instanceNetworks, events, faults, instanceLog),
      new ResizeRequests(kube, flavors, migrations, quota, faults, instanceLog),
      new DeletionConductor(kube, this.placement, quota, instanceNetworks, events, instanceLog),
      quota,
      instanceNetworks,
      new HostRouting(kube, instanceLog),
    );
    this.run('instance', instanceController, instanceLog, config.workers).watchWith(instanceController);

    const migrationLog = log.child({ controller: 'migration' });
    const { controller: migrationReconciler, tokens } = migrationController({
      kube,
      caches: { migrations, instances, nodes, flavors },
      placement: this.placement,
      attempts,
      groups,
      quota,
      events,
      faults,
      config: {
        allowResizeToSameHost: config['allow-resize-to-same-host'],
        resizeConfirmWindowSeconds: config['resize-confirm-window'],
        stepTimeoutMs: config['step-timeout'] * 1000,
        releaseNamespace: namespace,
        transferCredentialTtlMs: config['transfer-credential-ttl'] * 1000,
      },
      log: migrationLog,
    });
    this.tokens = tokens;
    this.run('migration', migrationReconciler, migrationLog, config.workers).watchWith(migrationReconciler);

    this.signer = new AgentSigner(
      kube.csrs,
      kube.secrets,
      { namespace, rule: agentRule(config), validityMs: config['agent-cert-validity'] * 1000 },
      log.child({ controller: 'agent-certificates' }),
    );

    const groupStatus = new ServerGroupStatus(kube, serverGroups, instances);
    this.run('servergroup', groupStatus, log, 2).watchWith(groupStatus);

    const networkStatus = new NetworkStatusController(kube, networks, ipAllocations, events);
    this.run('network', networkStatus, networkLog, 2).watchWith(networkStatus);
    const binding = new PortBindingController(kube, ports, instances, migrations, events, networkLog);
    this.run('port-binding', binding, networkLog, 2).watchWith(binding);
    this.watchMetrics();
  }

  /** Nothing acts before every cache has synced: a Migration judged too early would be refused. */
  private canAct(): boolean {
    return this.started && this.leaderGate();
  }

  private run(name: string, reconciler: Reconciler, log: Logger, workers: number) {
    const controller = new Controller({
      name,
      workers,
      reconcile: (key) => reconciler.reconcile(key),
      metrics: this.metrics,
      log,
      canAct: () => this.canAct(),
    });
    this.controllers.push(controller);
    return {
      watchWith: (w: { watch(enqueue: (key: string) => void): void }) => w.watch((key) => controller.enqueue(key)),
    };
  }

  /** Domain metrics from what the caches show: instances and migrations, boot time, host usage and readiness. */
  private watchMetrics(): void {
    const { instances, migrations, nodes } = this.caches;
    const domain = this.metrics.operator;
    const hosts = this.metrics.nodes;
    domain.setStepTimeout(this.config['step-timeout'] * 1000);
    instances.on('add', (inst) => domain.observeInstance(inst));
    instances.on('update', (inst) => domain.observeInstance(inst));
    instances.on('delete', (inst) => domain.forgetInstance(inst));
    migrations.on('add', (mig) => domain.observeMigration(mig));
    migrations.on('update', (mig) => domain.observeMigration(mig));
    migrations.on('delete', (mig) => domain.forgetMigration(mig));
    for (const event of ['add', 'update'] as const)
      nodes.on(event, (node) => {
        hosts.set(node.metadata.name, node.status);
        domain.observeNode(node);
      });
    nodes.on('delete', (node) => {
      hosts.delete(node.metadata.name);
      domain.forgetNode(node);
    });
  }

  get ready(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    const { nodes, flavors, ...rest } = this.caches;
    await Promise.all([nodes.start(), flavors.start()]);
    await Promise.all(Object.values(rest).map((cache) => cache.start()));
    this.nodeMonitor.start();
    // The CA exists before any request is signed; a failure here is retried by the passes.
    await this.signer.authority().catch((err: unknown) => this.log.warn({ err }, 'cannot load the agent CA yet'));
    this.started = true;
    this.every(1_000, () => this.signer.pass(), 'agent certificate pass');
    this.every(60_000, () => this.tokens.sweep(this.caches.migrations), 'transfer credential sweep');
    this.every(30_000, () => this.sweeper.pass(), 'address sweep');
  }

  /** A periodic pass that only the acting replica runs; a failure waits for the next one. */
  private every(ms: number, pass: () => Promise<unknown>, what: string): void {
    let running = false;
    const timer = setInterval(() => {
      if (running || !this.canAct()) return;
      running = true;
      pass()
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, `${what} failed`))
        .finally(() => (running = false));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  async stop(): Promise<void> {
    this.timers.forEach((t) => clearInterval(t));
    this.nodeMonitor.stop();
    await Promise.all(this.controllers.map((c) => c.stop()));
    await Promise.all(Object.values(this.caches).map((cache) => cache.stop()));
  }
}

/** Whose certificate requests the signer approves (see operator/certificates/agent-signer.ts). */
function agentRule(config: OperatorConfig): AgentIdentityRule {
  const sa = config['agent-service-account'];
  const [namespace, name, ...rest] = sa?.split(':') ?? [];
  if (sa && (!namespace || !name || rest.length > 0))
    throw new ConfigError(`--agent-service-account: ${JSON.stringify(sa)} must be namespace:name`);
  return {
    serviceAccount: namespace && name ? { namespace, name } : undefined,
    usernamePrefix: config['agent-username-prefix'] || undefined,
  };
}
