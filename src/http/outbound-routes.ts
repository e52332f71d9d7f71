/**
 * HTTP views of the outbound queue: the list (filterable by state), the dead letters (failed and
 * held items) with their retry, and the destinations' circuit breakers. Handlers only; node.ts
 * mounts them.
 */
import type http from 'node:http';
import type { IndexDb, OutboundRow, OutboundState } from '../store/index-db.js';
import type { OutboundQueue } from '../node/outbound.js';
import type { AuditSink } from '../audit/audit-log.js';
import { CIRCUIT_STATE_VALUE } from '../node/circuit-breaker.js';
import type { HttpReply } from './server.js';

const STATES: readonly OutboundState[] = ['pending', 'sending', 'done', 'failed', 'held'];
/** What the dead-letter list holds: given up or refused (failed), and kept back before sending (held). */
export const DEAD_LETTER_STATES: readonly OutboundState[] = ['failed', 'held'];

/** An item as the API shows it: file count instead of paths, its destination's circuit state. */
function view(o: OutboundRow, circuits: Map<string, string>) {
  return { ...o, files: (JSON.parse(o.files) as string[]).length, refused: o.refused ? (JSON.parse(o.refused) as string[]) : null, circuit: circuits.get(o.destination) ?? 'closed' };
}

function circuitStates(outbound: OutboundQueue): Map<string, string> {
  return new Map(outbound.circuits().map((c) => [c.destination, c.state]));
}

/** GET /api/outbound[?state=failed,held] */
export function outboundList(index: IndexDb, outbound: OutboundQueue, req: http.IncomingMessage): HttpReply {
  const param = new URL(req.url ?? '/', 'http://localhost').searchParams.get('state');
  const circuits = circuitStates(outbound);
  if (param === null) return { status: 200, body: index.listOutbound().map((o) => view(o, circuits)) };
  const wanted = param.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = wanted.filter((s) => !(STATES as readonly string[]).includes(s));
  if (bad.length > 0 || wanted.length === 0) {
    return { status: 400, body: { error: `unknown outbound state "${bad.join(', ') || param}": use one or more of ${STATES.join(', ')} (comma-separated)` } };
  }
  return { status: 200, body: index.listOutboundIn(wanted as OutboundState[]).map((o) => view(o, circuits)) };
}

/** GET /api/dead-letters */
export function deadLetters(index: IndexDb, outbound: OutboundQueue) {
  const circuits = circuitStates(outbound);
  return index.listOutboundIn(DEAD_LETTER_STATES).map((o) => view(o, circuits));
}

/** POST /api/outbound/:id/retry: 202 queued again, 404 unknown, 409 not a dead letter. Audited. */
export function retryDeadLetter(outbound: OutboundQueue, audit: AuditSink, req: http.IncomingMessage, idText: string): HttpReply {
  const id = Number(idText);
  const record = (outcome: 'success' | 'failure', result: string) =>
    audit.record({ type: 'http.request', outcome, method: 'POST', path: `/api/outbound/${idText}/retry`, peer: req.socket.remoteAddress, outboundId: Number.isSafeInteger(id) ? id : idText, result });
  if (!Number.isSafeInteger(id) || id <= 0) {
    record('failure', 'bad id');
    return { status: 400, body: { error: `"${idText}" is not an outbound item id (a positive integer, see GET /api/outbound)` } };
  }
  const outcome = outbound.retry(id);
  record(outcome === 'requeued' ? 'success' : 'failure', outcome);
  if (outcome === 'missing') return { status: 404, body: { error: `no outbound item ${id}` } };
  if (outcome === 'not_failed') return { status: 409, body: { error: `outbound item ${id} is not a dead letter (only failed or held items can be retried; see GET /api/dead-letters)` } };
  return { status: 202, body: { id, state: 'pending' } };
}

/** rtpipeline_destination_circuit_state{destination}: 0 closed, 1 open, 2 half-open. */
export function circuitMetric(outbound: OutboundQueue) {
  return {
    name: 'rtpipeline_destination_circuit_state',
    help: 'Circuit breaker of each outbound destination: 0 closed, 1 open, 2 half-open',
    values: outbound.circuits().map((c) => ({ labels: { destination: c.destination }, value: CIRCUIT_STATE_VALUE[c.state] })),
  };
}
