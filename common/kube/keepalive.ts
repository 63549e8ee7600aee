// A KubeConfig whose requests share keep-alive TLS connections.
import type { AgentOptions } from 'node:https';
import { KubeConfig, type Cluster, type DispatcherOptions } from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type ConnectOptions = Extract<DispatcherOptions, { type: 'agent' }>['connect'];

/**
 * How long an idle connection stays open. undici's own default (4 s) is shorter than the agents'
 * heartbeat, so every beat would open a connection again; kube-apiserver closes a connection idle
 * for 90 s, and closing first means no request goes out on a connection the server is closing.
 */
export const IDLE_CONNECTION_MS = 60_000;

/**
 * How long an open watch may go without a byte before client-node gives up on it. 2.x aborts a
 * watch quiet for 30 s and its ListWatch opens it again, which the informers report as the view
 * restored: a watch that is quiet on purpose (a host's Migrations, the ComputeNodes while every
 * agent is down) would be reopened twice a minute, each time restarting the operator's grace
 * for heartbeats. 1.x had no such limit; this one is long enough for quiet watches and still
 * ends a connection that died without a word (TCP keep-alive finds those too).
 */
export const WATCH_IDLE_MS = 10 * 60_000;

/**
 * How long a response may go without a byte before the shared Agent ends it. undici's own limit
 * (5 minutes) is shorter than WATCH_IDLE_MS, so it cut every quiet watch first, as an error: at
 * 500 hosts each host's watch of Networks failed every 5 minutes, was reported as a lost view and
 * listed again. Past WATCH_IDLE_MS, so the watch's own limit ends a quiet watch (and ListWatch
 * resumes it from where it was, with no list); still a bound for a response that stalls.
 */
export const RESPONSE_IDLE_MS = WATCH_IDLE_MS + 60_000;

/** How the shared Agent is built: keep-alive connections, and quiet watches left to their own limit. */
export function sharedAgentOptions(connect: ConnectOptions): Agent.Options {
  return { connect, keepAliveTimeout: IDLE_CONNECTION_MS, bodyTimeout: RESPONSE_IDLE_MS };
}

/** The TLS options that decide whether an open connection may carry a request. */
const TLS_KEYS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

function sameTls(a: ConnectOptions, b: ConnectOptions): boolean {
  const same = (x: unknown, y: unknown) => (Buffer.isBuffer(x) && Buffer.isBuffer(y) ? x.equals(y) : x === y);
  const options = (o: ConnectOptions) => o as Partial<Record<(typeof TLS_KEYS)[number], unknown>>;
  return TLS_KEYS.every((k) => same(options(a)[k], options(b)[k]));
}

/**
 * @kubernetes/client-node 2.x, like 1.x before it, gives every API request and every watch a
 * dispatcher of its own (a new undici Agent; 1.x made a new https.Agent), so every call opens a
 * new TLS connection: a CA parse and a handshake on both sides. Under load that was most of the
 * agents' CPU. This KubeConfig hands every request one keep-alive undici Agent per set of TLS
 * options instead. Measured against 2.x's own handling (docs/performance.md, "client-node 2.x"),
 * the shared Agent boots twice as fast with half the agents' CPU, so it stays. WebSockets (exec,
 * attach) keep client-node's per-cluster https.Agent.
 */
export class KeepAliveKubeConfig extends KubeConfig {
  #shared?: { connect: ConnectOptions; agent: Agent };
  /** What client-node computed for the request it is authenticating (set and read in one synchronous step). */
  #computed?: DispatcherOptions;

  override createDispatcherOptions(cluster: Cluster | null, agentOptions: AgentOptions): DispatcherOptions {
    this.#computed = super.createDispatcherOptions(cluster, agentOptions);
    return this.#computed;
  }

  /** The shared Agent for `opts`; undefined for proxies, which keep client-node's own dispatcher. */
  #reuse(opts: DispatcherOptions | undefined): Agent | undefined {
    if (opts?.type !== 'agent') return undefined;
    if (!this.#shared || !sameTls(this.#shared.connect, opts.connect)) {
      // Credentials changed (a rotated client certificate): new connections from now on. The old
      // Agent is not closed, so requests already holding it finish; its idle connections close
      // after IDLE_CONNECTION_MS.
      this.#shared = {
        connect: opts.connect,
        agent: new Agent(sharedAgentOptions(opts.connect)),
      };
    }
    return this.#shared.agent;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    // client-node computes the options (createDispatcherOptions) and hands the context a new
    // Agent in one synchronous step at the end; the shared one goes in at that moment, so it is
    // chosen with this request's options even when other requests are being authenticated too.
    const setDispatcher = context.setDispatcher;
    context.setDispatcher = (fresh: Dispatcher) => setDispatcher.call(context, this.#reuse(this.#computed) ?? fresh);
    try {
      await super.applySecurityAuthentication(context);
    } finally {
      context.setDispatcher = setDispatcher;
    }
  }
}
