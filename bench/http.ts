// A plain Kubernetes REST client for the benchmark: node:https, bearer token, JSON, and one
// keep-alive connection pool (or, to show what it costs, a fresh TLS connection per request,
// which is what @kubernetes/client-node 1.x does: it builds a new https.Agent for every
// call). It counts its own requests by verb and resource so the benchmark can subtract them
// from the API server's totals.
import { Agent, request } from 'node:https';

export interface ClientOptions {
  server: string;
  ca: Buffer;
  token: string;
  /** Reuse connections (true) or open a new TLS connection per request (false). */
  keepAlive: boolean;
  maxSockets?: number;
  timeoutMs?: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status}: ${body.slice(0, 300)}`);
  }
}

export type WatchEvent<T> = { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'; object: T };

export interface WatchHandle {
  stop(): void;
  /** Resolves when the watch has ended (stopped, or the server closed it). */
  readonly ended: Promise<void>;
}

export class HttpClient {
  private readonly agent?: Agent;
  /** Requests this client made, by "VERB resource[/subresource]". */
  readonly counts = new Map<string, number>();

  constructor(private readonly opts: ClientOptions) {
    if (opts.keepAlive) this.agent = new Agent({ ca: opts.ca, keepAlive: true, maxSockets: opts.maxSockets ?? 256 });
  }

  private count(method: string, path: string): void {
    const key = requestKey(method, path);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  async json<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const text = await this.raw(method, path, body === undefined ? undefined : JSON.stringify(body), contentType);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Resolves with the body of a 2xx answer; rejects with ApiError otherwise. */
  raw(method: string, path: string, body?: string, contentType = 'application/json'): Promise<string> {
    this.count(method, path);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.opts.server}${path}`,
        {
          method,
          agent: this.agent ?? new Agent({ ca: this.opts.ca, keepAlive: false }),
          headers: {
            Authorization: `Bearer ${this.opts.token}`,
            Accept: 'application/json',
            ...(body !== undefined ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) } : {}),
          },
          timeout: this.opts.timeoutMs ?? 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(text);
            else reject(new ApiError(status, text, `${method} ${path}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * Streams watch events of `path` (a collection URL) from `resourceVersion` until stopped
   * or until the server ends the watch; the caller re-watches from the last version seen.
   */
  watch<T>(path: string, resourceVersion: string, onEvent: (e: WatchEvent<T>) => void): WatchHandle {
    const sep = path.includes('?') ? '&' : '?';
    const url = `${path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}`;
    this.counts.set(requestKey('WATCH', path), (this.counts.get(requestKey('WATCH', path)) ?? 0) + 1);
    let stopRequest: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => {
      const req = request(`${this.opts.server}${url}`, {
        method: 'GET',
        // Its own connection: a watch holds its socket for as long as it lasts.
        agent: new Agent({ ca: this.opts.ca, keepAlive: false }),
        headers: { Authorization: `Bearer ${this.opts.token}`, Accept: 'application/json' },
      });
      stopRequest = () => req.destroy();
      req.on('response', (res) => {
        let partial = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const lines = (partial + chunk).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) if (line.trim()) onEvent(JSON.parse(line) as WatchEvent<T>);
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
    return { stop: () => stopRequest(), ended };
  }

  close(): void {
    this.agent?.destroy();
  }
}

/**
 * The key the API server's apiserver_request_total uses for a request, as "VERB resource" or
 * "VERB resource/subresource": a GET of a collection is a LIST, a watch a WATCH.
 */
export function requestKey(method: string, path: string): string {
  const parts = path.split('?')[0]!.split('/').filter(Boolean);
  // /api/v1/namespaces/ns/events[/name]  or  /apis/group/version[/namespaces/ns]/plural[/name[/sub]]
  let rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [plural = '', name, sub] = rest;
  const verb = method === 'GET' && name === undefined ? 'LIST' : method;
  return `${verb} ${sub ? `${plural}/${sub}` : plural}`;
}

export const isStatus = (err: unknown, status: number): boolean => err instanceof ApiError && err.status === status;
