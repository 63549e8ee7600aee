// Benchmark experiment only (npm run bench -- --operator-keepalive): loaded into the operator
// with `node --import`, it gives @kubernetes/client-node's KubeConfig one keep-alive agent per
// set of TLS options, as node-agent/main.ts does for the agent, so the benchmark can measure
// what the fix proposed for common/kube/client.ts would do for the operator without changing
// the operator's code.
import { Agent } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type HttpsOptions = Parameters<KubeConfig['applyToHTTPSOptions']>[0];

const shared = new WeakMap<KubeConfig, Agent>();
const KEYS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;
const same = (a: unknown, b: unknown) => (Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : a === b);

function reuse(kc: KubeConfig, fresh: unknown): Agent | undefined {
  if (!(fresh instanceof Agent) || fresh.constructor !== Agent) return undefined;
  const current = shared.get(kc);
  if (current && KEYS.every((k) => same(current.options[k], fresh.options[k]))) return current;
  const agent = new Agent({ ...fresh.options, keepAlive: true });
  shared.set(kc, agent);
  return agent;
}

const applySecurityAuthentication = KubeConfig.prototype.applySecurityAuthentication;
KubeConfig.prototype.applySecurityAuthentication = async function (this: KubeConfig, context: RequestContext): Promise<void> {
  await applySecurityAuthentication.call(this, context);
  const agent = reuse(this, context.getAgent());
  if (agent) context.setAgent(agent);
};

const applyToHTTPSOptions = KubeConfig.prototype.applyToHTTPSOptions;
KubeConfig.prototype.applyToHTTPSOptions = async function (this: KubeConfig, opts: HttpsOptions): Promise<void> {
  await applyToHTTPSOptions.call(this, opts);
  const agent = reuse(this, (opts as { agent?: unknown }).agent);
  if (agent) (opts as { agent?: unknown }).agent = agent;
};
