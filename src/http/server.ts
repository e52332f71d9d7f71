import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.js';
import type { AuditSink } from '../audit/audit-log.js';

/** Returned by a handler that wrote the response itself (server-sent events). */
export const HANDLED = Symbol('handled');

export interface Route {
  method: string;
  /** Path pattern with `:param` segments; a last segment `*` takes the rest of the path as params['*']. */
  path: string;
  handler: (req: http.IncomingMessage, params: Record<string, string>, res: http.ServerResponse) => Promise<HttpReply | typeof HANDLED> | HttpReply | typeof HANDLED;
}

export interface HttpReply {
  status: number;
  /** JSON-able value, text, bytes, or a stream of bytes (sent as it comes). */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

export function match(pattern: string, pathname: string): Record<string, string> | undefined {
  const a = pattern.split('/');
  const b = pathname.split('/');
  const rest = a[a.length - 1] === '*';
  if (rest ? b.length < a.length : a.length !== b.length) return undefined;
  const params: Record<string, string> = {};
  const fixed = rest ? a.length - 1 : a.length;
  for (let i = 0; i < fixed; i++) {
    if (a[i].startsWith(':')) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return undefined;
  }
  if (rest) params['*'] = b.slice(fixed).map((s) => decodeURIComponent(s)).join('/');
  return params;
}

function keyMatches(given: string | string[] | null | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Whether a request carries the API key: the X-API-Key header, or for GET/HEAD only `?key=`
 * (EventSource and plain download links cannot set headers; a state-changing request must).
 */
export function hasApiKey(req: http.IncomingMessage, url: URL, apiKey: string): boolean {
  if (keyMatches(req.headers['x-api-key'], apiKey)) return true;
  return (req.method === 'GET' || req.method === 'HEAD') && keyMatches(url.searchParams.get('key'), apiKey);
}

function isByteStream(v: unknown): v is Readable | AsyncIterable<Buffer> {
  return v instanceof Readable || (typeof v === 'object' && v !== null && Symbol.asyncIterator in v);
}

/** The web UI's page and static code: no patient data, and the browser loads them without headers. */
function isPublicUiPath(method: string | undefined, pathname: string): boolean {
  return method === 'GET' && (pathname === '/' || pathname.startsWith('/ui/'));
}

/**
 * The node's HTTP API and web UI on one port. With an API key set, every route but /health and
 * the UI's own page and assets needs it: health checks come from orchestrators without secrets,
 * and the page asks the user for the key before it calls the API.
 */
export function createHttpServer(routes: Route[], opts: { apiKey: string | undefined; log: Logger; audit?: AuditSink }): http.Server {
  return http.createServer(async (req, res) => {
    const send = async (r: HttpReply) => {
      const headers: Record<string, string> = { ...r.headers };
      if (isByteStream(r.body)) {
        res.writeHead(r.status, { 'content-type': r.contentType ?? 'application/octet-stream', ...headers });
        try {
          await pipeline(r.body instanceof Readable ? r.body : Readable.from(r.body), res);
        } catch (e) {
          // Headers are gone: all we can do is cut the connection so the client sees a failure.
          opts.log.warn({ err: (e as Error).message, path: req.url }, 'HTTP response stream failed');
          res.destroy();
        }
        return;
      }
      const bytes = Buffer.isBuffer(r.body);
      const text = bytes || typeof r.body === 'string' ? (r.body as Buffer | string) : JSON.stringify(r.body, null, 2);
      const type = r.contentType ?? (bytes ? 'application/octet-stream' : typeof r.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json');
      res.writeHead(r.status, { 'content-type': type, ...headers });
      res.end(text);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return send({ status: 400, body: { error: `cannot parse the request path "${String(req.url).slice(0, 200)}"` } });
    }
    // URL parsing would quietly resolve dot segments to another route: a client sending them is wrong or probing.
    // "%2e%2e" is a dot segment too for the URL parser (WHATWG): it is refused the same way.
    if ((req.url ?? '').split('?')[0].split('/').some((seg) => /^(\.|%2e){1,2}$/i.test(seg))) {
      return send({ status: 400, body: { error: 'dot segments ("." or "..") are not allowed in request paths' } });
    }
    try {
      if (opts.apiKey && url.pathname !== '/health' && !isPublicUiPath(req.method, url.pathname) && !hasApiKey(req, url, opts.apiKey)) {
        opts.log.warn({ path: url.pathname, remote: req.socket.remoteAddress }, 'HTTP request without a valid API key');
        opts.audit?.record({ type: 'http.auth_failed', outcome: 'failure', remote: req.socket.remoteAddress, method: req.method, path: url.pathname, keyGiven: req.headers['x-api-key'] !== undefined || url.searchParams.has('key') });
        return send({ status: 401, body: { error: 'missing or wrong API key: send the X-API-Key header (or ?key= on GET requests); RTPIPELINE_API_KEY is set on this node' } });
      }
      let methodMismatch = false;
      for (const r of routes) {
        const params = match(r.path, url.pathname);
        if (!params) continue;
        if (r.method !== req.method) {
          methodMismatch = true;
          continue;
        }
        const reply = await r.handler(req, params, res);
        if (reply === HANDLED) return;
        return await send(reply);
      }
      await send(methodMismatch ? { status: 405, body: { error: `${req.method} not allowed on ${url.pathname}` } } : { status: 404, body: { error: `no route ${url.pathname}` } });
    } catch (e) {
      opts.log.error({ err: (e as Error).message, path: url.pathname }, 'HTTP handler failed');
      if (!res.headersSent) await send({ status: 500, body: { error: (e as Error).message } });
      else res.destroy();
    }
  });
}
