// A stand-in HTTP server for the unit tests of our HTTP client code (request counting, the HTTP
// library): it only has to answer as kube-apiserver would, over plain HTTP on 127.0.0.1.
import { createServer, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface LocalServer {
  /** host:port */
  address: string;
  /** Stops it, open watches included. */
  close(): Promise<void>;
}

/** Serves `handler` on a free port of 127.0.0.1 (no handler: a server that answers nothing). */
export async function listenLocally(handler?: RequestListener): Promise<LocalServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Answers with `body` as JSON. */
export function sendJson(res: ServerResponse, code: number, body: object): void {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A kubeconfig for the server at `address` (plain HTTP: the code under test does not depend on TLS). */
export function kubeConfigFor(address: string, token?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://${address}`, skipTLSVerify: true }],
    users: [token ? { name: 'u', token } : { name: 'u' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}
