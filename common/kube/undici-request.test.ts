import type { IncomingMessage } from 'node:http';
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiMessage, isConflict } from './client.js';
import { countRequests } from './request-metrics.js';
import { kubeConfigFor, listenLocally, sendJson, type LocalServer } from './testing.js';

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: string;
}

let server: LocalServer;
const seen: Seen[] = [];

const read = async (req: IncomingMessage): Promise<string> => {
  let body = '';
  for await (const chunk of req) body += String(chunk);
  return body;
};

/** An API client as the components make them: counted, so it sends through undici's request(). */
function customObjects(): CustomObjectsApi {
  return countRequests(kubeConfigFor(server.address, 'the-token'), () => {}).makeApiClient(CustomObjectsApi);
}

const target = {
  group: 'compute.kubenova.io',
  version: 'v1alpha1',
  plural: 'instances',
  namespace: 'ns',
  name: 'web-1',
};

beforeAll(async () => {
  // web-1 exists and answers status patches with the patched object; web-2 answers 409 as kube-apiserver does.
  server = await listenLocally((req, res) => {
    void read(req).then((body) => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body,
      });
      const json = (code: number, obj: object) => sendJson(res, code, obj);
      if (req.url?.includes('/web-2/'))
        return json(409, {
          kind: 'Status',
          code: 409,
          reason: 'Conflict',
          message: 'Operation cannot be fulfilled on instances "web-2": the object has been modified',
        });
      json(200, { metadata: { name: 'web-1', resourceVersion: '8' }, status: JSON.parse(body || '{}').status });
    });
  });
});

afterAll(() => server.close());

describe("API requests sent through undici's request()", () => {
  it('sends the method, path, query, credentials and body client-node built, and returns the parsed answer', async () => {
    seen.length = 0;
    const body = { metadata: { resourceVersion: '7' }, status: { vmState: 'active' } };
    const answer: unknown = await customObjects().patchNamespacedCustomObjectStatus(
      { ...target, body, fieldManager: 'kubenova-test' },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(answer).toEqual({ metadata: { name: 'web-1', resourceVersion: '8' }, status: { vmState: 'active' } });
    expect(seen).toEqual([
      {
        method: 'PATCH',
        url: '/apis/compute.kubenova.io/v1alpha1/namespaces/ns/instances/web-1/status?fieldManager=kubenova-test',
        contentType: 'application/merge-patch+json',
        authorization: 'Bearer the-token',
        body: JSON.stringify(body),
      },
    ]);
  });

  it("turns a refusal into client-node's ApiException with the server's code and message", async () => {
    const refused = customObjects().patchNamespacedCustomObjectStatus(
      { ...target, name: 'web-2', body: { status: {} } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const err: unknown = await refused.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect(isConflict(err)).toBe(true);
    expect(apiMessage(err)).toBe('Operation cannot be fulfilled on instances "web-2": the object has been modified');
  });
});
