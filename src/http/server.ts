import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.js';

export interface Route {
  method: string;
  /** Path pattern with `:param` segments. */
  path: string;
  handler: (req: http.IncomingMessage, params: Record<string, string>) => Promise<HttpReply> | HttpReply;
}

export interface HttpReply {
  status: number;
  body: unknown;
  contentType?: string;
}

function match(pattern: string, pathname: string): Record<string, string> | undefined {
  const a = pattern.split('/');
  const b = pathname.split('/');
  if (a.length !== b.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return undefined;
  }
  return params;
}

function keyMatches(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The node's HTTP API on one port (the web UI joins it later). With an API key set, every route
 * but /health needs the `X-API-Key` header: health checks come from orchestrators without secrets.
 */
export function createHttpServer(routes: Route[], opts: { apiKey: string | undefined; log: Logger }): http.Server {
  return http.createServer(async (req, res) => {
    const send = (r: HttpReply) => {
      const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body, null, 2);
      res.writeHead(r.status, { 'content-type': r.contentType ?? (typeof r.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json') });
      res.end(text);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return send({ status: 400, body: { error: `cannot parse the request path "${String(req.url).slice(0, 200)}"` } });
    }
    try {
      if (opts.apiKey && url.pathname !== '/health' && !keyMatches(req.headers['x-api-key'], opts.apiKey)) {
        opts.log.warn({ path: url.pathname, remote: req.socket.remoteAddress }, 'HTTP request without a valid API key');
        return send({ status: 401, body: { error: 'missing or wrong X-API-Key header (RTPIPELINE_API_KEY is set on this node)' } });
      }
      let methodMismatch = false;
      for (const r of routes) {
        const params = match(r.path, url.pathname);
        if (!params) continue;
        if (r.method !== req.method) {
          methodMismatch = true;
          continue;
        }
        return send(await r.handler(req, params));
      }
      send(methodMismatch ? { status: 405, body: { error: `${req.method} not allowed on ${url.pathname}` } } : { status: 404, body: { error: `no route ${url.pathname}` } });
    } catch (e) {
      opts.log.error({ err: (e as Error).message, path: url.pathname }, 'HTTP handler failed');
      send({ status: 500, body: { error: (e as Error).message } });
    }
  });
}
