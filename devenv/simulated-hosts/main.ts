// Simulated hosts, for benchmarks: one process posing as --hosts hosts <prefix>-000,
// <prefix>-001, ... (see hosts.ts), each a full HostAgent with the fake driver — its own
// ComputeNode, lock, tracker, instance directories under <state-dir>/<host>, transfer server,
// audit, field manager and watches: each host lists and watches only the Instances and
// Migrations that involve it (node-agent/host-watches.ts), with its own client, as its own
// agent would — one metrics server for the process. It is assembled from the same pieces as
// the node agent (node-agent/assemble.ts) and takes the node agent's flags for everything
// else (capacity, heartbeat, audit, state dir, ...), so each host behaves as a real agent
// would; a real agent (node-agent/main.ts) serves exactly one host.
//
//   node dist/devenv/simulated-hosts/main.js --hosts=100 [--host-offset=0] [--host-prefix=sim]
//     --kubeconfig=... --state-dir=... [node-agent flags]
import { ConfigError, parseFlags, usage } from '../../common/config.js';
import { Kube, loadKubeConfig } from '../../common/kube/client.js';
import { Metrics } from '../../common/runtime/metrics.js';
import {
  AgentProcess,
  agentLogger,
  createDriver,
  exitOnError,
  hostAgentOptions,
  nodeLabels,
} from '../../node-agent/assemble.js';
import { AGENT_FLAGS, parseAgentConfig } from '../../node-agent/config.js';
import { SIMULATION_FLAGS, splitArgs } from './flags.js';
import { planHosts, type HostPlan } from './hosts.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    process.stdout.write(
      `simulated hosts:\n${usage(SIMULATION_FLAGS)}\nnode agent flags (--node-name excepted; --driver must be fake):\n${usage(AGENT_FLAGS)}\n`,
    );
    return;
  }
  const { own, agent } = splitArgs(argv);
  const sim = parseFlags(SIMULATION_FLAGS, own);
  if (agent.some((a) => a === '--node-name' || a.startsWith('--node-name=')))
    throw new ConfigError('--node-name: simulated hosts are named <--host-prefix>-<index>; use --host-prefix');
  const config = parseAgentConfig(agent);
  if (config.driver !== 'fake')
    throw new ConfigError('--driver: simulated hosts have no hypervisor; only the fake driver runs here');
  let plan: HostPlan[];
  try {
    // Spreading the starts over one heartbeat interval spreads every host's timers the same way.
    plan = planHosts(sim['host-prefix'], sim.hosts, sim['host-offset'], config['heartbeat-interval'] * 1000);
  } catch (err) {
    throw new ConfigError(`--hosts / --host-offset: ${(err as Error).message}`);
  }
  const log = agentLogger(config);
  const labels = nodeLabels(config);
  const metrics = new Metrics('node-agent');
  const kubeConfig = loadKubeConfig(config.kubeconfig, config['api-keepalive'], metrics.apiRequest);
  const agentProcess = new AgentProcess(log, metrics);
  // Each host as its own agent would be (a transfer certificate is issued only for the host that asks).
  const template = sim['host-kubeconfig'];
  const hostKubeConfig = (host: string) =>
    template
      ? loadKubeConfig(template.replaceAll('{host}', host), config['api-keepalive'], metrics.apiRequest)
      : kubeConfig;
  plan.forEach(({ host }, i) => {
    agentProcess.addHost(
      // Each host writes under its own field manager and watches with its own client, as its own agent would.
      new Kube(hostKubeConfig(host), `kubenova-agent-${host}`),
      createDriver(config, host, {}),
      // A fixed port is the first host's; the others take the ports after it.
      hostAgentOptions(config, host, labels, {
        migrationPort: config['migration-port'] > 0 ? config['migration-port'] + i : 0,
      }),
      log.child({ node: host }),
    );
  });
  const address = await agentProcess.run(config, (i) => plan[i]?.startDelayMs ?? 0);
  log.info(
    { metrics: address, driver: config.driver, hosts: plan.length, first: plan[0]?.host, last: plan.at(-1)?.host },
    'simulated hosts running',
  );
}

main().catch(exitOnError('simulated-hosts'));
