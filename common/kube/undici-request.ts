// client-node's API clients send through this HTTP library instead of its default one, which
// goes through undici's fetch: the WHATWG fetch machinery (web streams, Headers and Response
// objects) around every request. undici's own request() sends the same bytes on the same
// dispatcher without it.
import {
  ResponseContext,
  SelfDecodingBody,
  wrapHttpLibrary,
  type HttpLibrary,
  type RequestContext,
} from '@kubernetes/client-node';
import { request, type Dispatcher } from 'undici';

async function send(ctx: RequestContext): Promise<ResponseContext> {
  const body = ctx.getBody();
  const res = await request(ctx.getUrl(), {
    method: ctx.getHttpMethod().toString() as Dispatcher.HttpMethod,
    headers: ctx.getHeaders(),
    body: body instanceof URLSearchParams ? body.toString() : body,
    signal: ctx.getSignal(),
    dispatcher: ctx.getDispatcher(),
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const data = Buffer.from(await res.body.arrayBuffer());
  return new ResponseContext(res.statusCode, headers, new SelfDecodingBody(Promise.resolve(data)));
}

export const undiciRequestLibrary: HttpLibrary = wrapHttpLibrary({ send });
