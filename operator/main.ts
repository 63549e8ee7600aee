// Operator entry point: the cluster-wide brain (scheduler, conductor, node monitor).
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { exitOnError } from '../common/config.js';
import { LeaderElector } from '../common/runtime/leader-election.js';
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
  const log = createLogger({
    component: 'operator',
    level: config['log-level'],
    pretty: config['log-format'] === 'pretty',
  });
  const metrics = new Metrics('operator');
  const kube = new Kube(loadKubeConfig(config.kubeconfig, true, metrics.apiRequest), 'kubenova-operator');
  const events = new EventRecorder(kube.events, 'kubenova-operator', undefined, log);
  let elector: LeaderElector | undefined;
  const operator = new Operator(kube, config, metrics, events, log, () => elector?.isLeader() ?? true);
  // 1 while this replica acts: the leader, or the only replica when it does not elect.
  metrics.leaderElection(config['leader-election-id'], () => elector?.isLeader() ?? !config['leader-elect']);
  const server = await startHttpServer(config['metrics-port'], config['metrics-address'], metrics.registry, {
    healthy: () => true,
    // A follower is ready: it is healthy and waiting for the lease.
    ready: () => (elector && !elector.isLeader() ? true : operator.ready),
  });
  const address = server.address();
  const running = () =>
    log.info(
      { metrics: typeof address === 'object' && address ? `${address.address}:${address.port}` : address },
      'operator running',
    );
  if (config['leader-elect']) {
    elector = new LeaderElector(
      kube.config,
      {
        namespace: config['leader-election-namespace'],
        name: config['leader-election-id'],
        identity: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
        leaseDurationMs: config['lease-duration'] * 1000,
        renewDeadlineMs: config['renew-deadline'] * 1000,
        retryPeriodMs: config['retry-period'] * 1000,
      },
      {
        onStartedLeading: async () => {
          await operator.start();
          running();
        },
        // Like controller-runtime: a replica that lost its lease exits and starts over as a follower.
        onStoppedLeading: () => process.exit(1),
      },
      log,
    );
    elector.start();
    log.info({ lease: config['leader-election-id'] }, 'waiting for leadership');
  } else {
    await operator.start();
    running();
  }
  onShutdown(async () => {
    // Stop acting first, then hand the lease over, so a rolling update does not wait a lease out.
    await operator.stop();
    await elector?.release();
    server.close();
  }, log);
}

main().catch(exitOnError('operator'));
