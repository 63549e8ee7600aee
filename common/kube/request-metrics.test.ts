import { CoreV1Api, Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WATCH_IDLE_MS } from './keepalive.js';
import { CountingWatch, countRequests, watchFor, type ApiRequest } from './request-metrics.js';
import { kubeConfigFor as kubeConfig, listenLocally, sendJson, type LocalServer } from './testing.js';

let server: LocalServer;
let host: string;
const watchQueries: URLSearchParams[] = [];

beforeAll(async () => {
  // Namespaces "ok" exist, others do not; a watch of namespaces streams, a watch of secrets is forbidden.
  server = await listenLocally((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (code: number, body: object) => sendJson(res, code, body);
    if (url.searchParams.get('watch') === 'true') {
      watchQueries.push(url.searchParams);
      if (url.pathname.endsWith('/secrets')) return json(403, { kind: 'Status', code: 403, message: 'forbidden' });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'ok' } } })}\n`);
      return; // left open, as a watch is
    }
    if (url.pathname === '/api/v1/namespaces/ok')
      return json(200, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ok' } });
    json(404, { kind: 'Status', code: 404, message: 'not found' });
  });
  host = server.address;
});

afterAll(() => server.close());

describe('API request counting', () => {
  it("counts every API client request by its answer's status code, method and the server's host:port", async () => {
    const seen: ApiRequest[] = [];
    const core = countRequests(kubeConfig(host), (r) => seen.push(r)).makeApiClient(CoreV1Api);
    await core.readNamespace({ name: 'ok' });
    await expect(core.readNamespace({ name: 'missing' })).rejects.toMatchObject({ code: 404 });
    await expect(core.deleteNamespace({ name: 'missing' })).rejects.toMatchObject({ code: 404 });
    expect(seen).toEqual([
      { code: '200', method: 'GET', host },
      { code: '404', method: 'GET', host },
      { code: '404', method: 'DELETE', host },
    ]);
  });

  it('counts a request that got no answer as <error>', async () => {
    const closed = await listenLocally();
    const address = closed.address;
    await closed.close();
    const seen: ApiRequest[] = [];
    const core = countRequests(kubeConfig(address), (r) => seen.push(r)).makeApiClient(CoreV1Api);
    await expect(core.readNamespace({ name: 'ok' })).rejects.toThrow();
    expect(seen).toEqual([{ code: '<error>', method: 'GET', host: address }]);
  });

  it('counts a watch once, as 200 when its stream opens or with the code it was refused with', async () => {
    const seen: ApiRequest[] = [];
    const kc = countRequests(kubeConfig(host), (r) => seen.push(r));
    const watch = watchFor(kc);
    expect(watch).toBeInstanceOf(CountingWatch);
    const events: string[] = [];
    let ended: unknown = 'not yet';
    const opened = await watch.watch(
      '/api/v1/namespaces',
      {},
      (type) => events.push(type),
      (err) => (ended = err),
    );
    await expect.poll(() => events).toEqual(['ADDED']);
    opened.abort();
    let refusal: unknown;
    await watch.watch(
      '/api/v1/secrets',
      {},
      () => {},
      (err) => (refusal = err),
    );
    expect(refusal).toMatchObject({ statusCode: 403 });
    expect(ended).not.toBe('not yet');
    expect(seen).toEqual([
      { code: '200', method: 'GET', host },
      { code: '403', method: 'GET', host },
    ]);
  });

  it('keeps quiet watches open far longer than the 30 s after which client-node 2.x ends them', async () => {
    // The field watchFor sets is the one that decides: set short, a quiet watch ends.
    const short = new Watch(kubeConfig(host));
    Reflect.set(short, 'requestTimeoutMs', 100);
    const ended = await new Promise<unknown>((resolve) => {
      void short.watch('/api/v1/namespaces', {}, () => {}, resolve);
    });
    expect(ended).toMatchObject({ name: 'TimeoutError' });
    for (const kc of [kubeConfig(host), countRequests(kubeConfig(host), () => {})])
      expect(Reflect.get(watchFor(kc), 'requestTimeoutMs')).toBe(WATCH_IDLE_MS);
  });

  it('asks for bookmarks, so that kube-apiserver keeps a quiet watch busy and its resourceVersion current', async () => {
    watchQueries.length = 0;
    const opened = await watchFor(kubeConfig(host)).watch(
      '/api/v1/namespaces',
      { labelSelector: 'a=b' },
      () => {},
      () => {},
    );
    opened.abort();
    expect(watchQueries.map((q) => [q.get('allowWatchBookmarks'), q.get('labelSelector')])).toEqual([['true', 'a=b']]);
  });

  it('leaves a kubeconfig it was not given alone: plain API clients and watches', () => {
    expect(watchFor(kubeConfig(host))).not.toBeInstanceOf(CountingWatch);
  });
});
