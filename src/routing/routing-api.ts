import type http from 'node:http';
import type { Route } from '../http/server.js';
import { validateRouting, type RoutingTable } from './routing-table.js';

/**
 * GET /api/routing (the rules in force and where they came from), PUT /api/routing (replace them:
 * validated, written, swapped, audited), POST /api/routing/validate (validation only).
 */
export function routingRoutes(table: RoutingTable, readJson: (req: http.IncomingMessage) => Promise<Record<string, unknown>>): Route[] {
  const body = async (req: http.IncomingMessage): Promise<{ value: unknown } | { error: string }> => {
    try {
      return { value: await readJson(req) };
    } catch (e) {
      return { error: `bad request body: ${(e as Error).message}; send the rules as a JSON object {"routes": [...]}` };
    }
  };
  return [
    { method: 'GET', path: '/api/routing', handler: () => ({ status: 200, body: table.view() }) },
    {
      method: 'PUT',
      path: '/api/routing',
      handler: async (req) => {
        const b = await body(req);
        if ('error' in b) return { status: 400, body: { error: b.error } };
        const r = await table.replace(b.value, req.socket.remoteAddress);
        if (!r.ok) return { status: 400, body: { error: r.error, issues: r.issues } };
        return { status: 200, body: table.view() };
      },
    },
    {
      method: 'POST',
      path: '/api/routing/validate',
      handler: async (req) => {
        const b = await body(req);
        if ('error' in b) return { status: 400, body: { error: b.error } };
        const v = validateRouting(b.value);
        return v.ok
          ? { status: 200, body: { valid: true, routes: v.document.routes.map((r) => r.name) } }
          : { status: 200, body: { valid: false, error: v.error, issues: v.issues } };
      },
    },
  ];
}
