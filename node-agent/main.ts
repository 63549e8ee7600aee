// Node agent entry point: the agent of exactly one host, --node-name (the DaemonSet runs one
// per node), with the fake or the libvirt driver. Its HostAgent is fed by its host's own
// Instance and Migration watches and reports on the process's metrics server; the pieces are
// put together in assemble.ts.
import { ConfigError } from '../common/config.js';
import { Kube, loadKubeConfig } from '../common/kube/client.js';
import { Metrics } from '../common/runtime/metrics.js';
import {
  AgentProcess,
  agentLogger,
  createDriver,
  exitOnError,
  guestImages,
  hostAgentOptions,
  nodeLabels,
} from './assemble.js';
import { parseAgentConfig } from './config.js';

async function main(): Promise<void> {
  const config = parseAgentConfig(process.argv.slice(2));
  const host = config['node-name'];
  if (!host) throw new ConfigError('--node-name (or NODE_NAME) is required: the host this agent serves');
  const log = agentLogger(config, host);
  const labels = nodeLabels(config);
  const metrics = new Metrics('node-agent');
  const kubeConfig = loadKubeConfig(config.kubeconfig, config['api-keepalive'], metrics.apiRequest);
  const kube = new Kube(kubeConfig, `kubenova-agent-${host}`);
  const images = guestImages(config);
  const agentProcess = new AgentProcess(log, metrics);
  agentProcess.addHost(kube, createDriver(config, host, images), hostAgentOptions(config, host, labels), log);
  const address = await agentProcess.run(config);
  log.info({ metrics: address, driver: config.driver }, 'node agent running');
}

main().catch(exitOnError('node-agent'));
