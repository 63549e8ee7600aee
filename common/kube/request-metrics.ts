// Counts every request a component makes to the API server, as client-go's
// rest_client_requests_total does: by status code, method and host. A KubeConfig handed to
// countRequests makes API clients whose HTTP library reports each response, and watchFor gives
// the informers a Watch that reports how each watch request was answered.
import {
  Observable,
  ServerConfiguration,
  Watch,
  createConfiguration,
  type ApiConstructor,
  type ApiType,
  type HttpLibrary,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { WATCH_IDLE_MS } from './keepalive.js';
import { undiciRequestLibrary } from './undici-request.js';

export interface ApiRequest {
  /** The HTTP status code, or "<error>" when no response came (client-go's word for it). */
  code: string;
  method: string;
  /** host:port of the API server. */
  host: string;
}

export type RequestObserver = (request: ApiRequest) => void;

const NO_RESPONSE = '<error>';
const observers = new WeakMap<KubeConfig, RequestObserver>();

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/** An HTTP library that reports each request it sends once its answer (or failure) is known. */
export class CountingHttpLibrary implements HttpLibrary {
  constructor(
    private readonly inner: HttpLibrary,
    private readonly observe: RequestObserver,
  ) {}

  send(request: RequestContext): Observable<ResponseContext> {
    const method = request.getHttpMethod().toString();
    const host = hostOf(request.getUrl());
    const answered = this.inner
      .send(request)
      .toPromise()
      .then(
        (response) => {
          this.observe({ code: String(response.httpStatusCode), method, host });
          return response;
        },
        (err: unknown) => {
          this.observe({ code: NO_RESPONSE, method, host });
          throw err;
        },
      );
    return new Observable(answered);
  }
}

/**
 * Makes every API client `kc` creates from now on (makeApiClient) report its requests to
 * `observe`, and registers `observe` for the watches of watchFor(kc). Returns `kc`.
 */
export function countRequests<K extends KubeConfig>(kc: K, observe: RequestObserver): K {
  observers.set(kc, observe);
  // client-node's own makeApiClient, with the counting library, sending through undici's request()
  // (undici-request.ts), in place of the default one.
  kc.makeApiClient = <T extends ApiType>(apiClientType: ApiConstructor<T>): T => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('No active cluster!');
    const config = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      httpApi: new CountingHttpLibrary(undiciRequestLibrary, observe),
    });
    return new apiClientType(config);
  };
  return kc;
}

/**
 * A Watch that reports each watch request: 200 once the stream is open, the status code the API
 * server refused it with, or "<error>" when no answer came. How the stream ends later is not a
 * request and is not counted.
 */
export class CountingWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly observe: RequestObserver,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const host = hostOf(this.config.getCurrentCluster()?.server ?? '');
    let opening = true;
    let failure: unknown;
    const report = (err: unknown) => {
      const code = (err as { statusCode?: unknown } | null)?.statusCode;
      this.observe({
        code: err ? (typeof code === 'number' ? String(code) : NO_RESPONSE) : '200',
        method: 'GET',
        host,
      });
    };
    try {
      const controller = await super.watch(path, queryParams, callback, (err) => {
        if (opening) failure = err ?? null;
        done(err);
      });
      report(failure);
      return controller;
    } catch (err) {
      report(err ?? new Error('watch failed'));
      throw err;
    } finally {
      opening = false;
    }
  }
}

/**
 * The Watch for informers on `kc`: counting when countRequests was given `kc`, and asking for
 * bookmarks as client-go's reflector does. kube-apiserver then sends a quiet watch a bookmark
 * about once a minute: it is never idle long enough to be ended, and client-node's ListWatch
 * keeps its resourceVersion current, so a watch that does end resumes without a re-list.
 */
export function watchFor(kc: KubeConfig): Watch {
  const observe = observers.get(kc);
  const watch = observe ? new CountingWatch(kc, observe) : new Watch(kc);
  // A private field of client-node's Watch (no option sets it); the unit test notices a rename.
  Reflect.set(watch, 'requestTimeoutMs', WATCH_IDLE_MS);
  const open = watch.watch.bind(watch);
  watch.watch = (path, queryParams, callback, done) =>
    open(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  return watch;
}
