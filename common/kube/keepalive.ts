// A KubeConfig whose requests share keep-alive TLS connections.
import { Agent } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/**
 * @kubernetes/client-node 1.x gives every request a new https.Agent, so every API call opens a
 * new TLS connection: a CA parse, a handshake and a certificate check on the agent's side, a
 * handshake on the API server's. Under load that was most of the agent's CPU (see
 * docs/performance.md). This KubeConfig hands every request, watches included, one keep-alive
 * agent per set of TLS options instead.
 */
export class KeepAliveKubeConfig extends KubeConfig {
  #shared?: Agent;

  #reuse(fresh: unknown): Agent | undefined {
    // Proxy agents and plain-HTTP clusters keep client-node's own behaviour.
    if (!(fresh instanceof Agent) || fresh.constructor !== Agent) return undefined;
    const o = fresh.options;
    const same = (a: unknown, b: unknown) => (Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : a === b);
    const prev = this.#shared?.options;
    const keys = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;
    if (!this.#shared || !prev || keys.some((k) => !same(prev[k], o[k]))) {
      // Credentials changed (a rotated client certificate): new connections from now on.
      this.#shared = new Agent({ ...o, keepAlive: true });
    }
    return this.#shared;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const agent = this.#reuse(context.getAgent());
    if (agent) context.setAgent(agent);
  }

  override async applyToHTTPSOptions(opts: Parameters<KubeConfig['applyToHTTPSOptions']>[0]): Promise<void> {
    await super.applyToHTTPSOptions(opts);
    const agent = this.#reuse((opts as { agent?: unknown }).agent);
    if (agent) (opts as { agent?: unknown }).agent = agent;
  }
}
