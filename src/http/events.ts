/**
 * Server-sent events of job changes (GET /api/events). The hub compares a fingerprint of each
 * recent job (state, progress, finish) and sends the ones that changed. It looks when told
 * (`poke`: a stage started or ended, a job was deleted) and on a short poll while someone listens,
 * because jobs are also created and finished by parts that know nothing of HTTP (study
 * completion, the job runner); the poll is one indexed query, only with clients connected.
 */
import type http from 'node:http';
import type { IndexDb, JobRow } from '../store/index-db.js';

/** SSE clients are told something every 15 s so proxies and browsers keep the stream open. */
export const HEARTBEAT_MS = 15_000;
const POLL_MS = 500;
/** Jobs watched for changes: the newest ones (what the UI lists). */
const WATCHED_JOBS = 200;

type JobView = Record<string, unknown> & { id: number };

function fingerprint(j: JobRow): string {
  return `${j.state}|${j.attempts}|${j.started_at}|${j.finished_at}|${j.progress}`;
}

export class JobEventHub {
  private readonly clients = new Set<http.ServerResponse>();
  private readonly seen = new Map<number, string>();
  private poll: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly index: IndexDb,
    private readonly view: (j: JobRow) => JobView,
  ) {}

  get listeners(): number {
    return this.clients.size;
  }

  /** Takes over a response as an event stream: `hello`, then `job` events until the client goes. */
  subscribe(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    if (this.clients.size === 0) this.snapshot(); // only changes from now on are news
    this.clients.add(res);
    res.write(`retry: 3000\nevent: hello\ndata: ${JSON.stringify({ time: new Date().toISOString(), heartbeatSeconds: HEARTBEAT_MS / 1000 })}\n\n`);
    const gone = () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.idle();
    };
    req.on('close', gone);
    res.on('close', gone);
    this.poll ??= setInterval(() => this.poke(), POLL_MS);
    this.heartbeat ??= setInterval(() => this.broadcast(`: heartbeat ${Date.now()}\n\n`), HEARTBEAT_MS);
  }

  /** Sends every watched job that changed since the last look; a removed job is sent as {id, deleted: true}. */
  poke(): void {
    if (this.clients.size === 0) return;
    const rows = this.index.listJobs(WATCHED_JOBS);
    const present = new Set<number>();
    for (const j of rows) {
      present.add(j.id);
      const f = fingerprint(j);
      if (this.seen.get(j.id) === f) continue;
      this.seen.set(j.id, f);
      this.broadcast(`event: job\ndata: ${JSON.stringify(this.view(j))}\n\n`);
    }
    const oldest = rows.length > 0 ? rows[rows.length - 1].id : Infinity;
    for (const id of [...this.seen.keys()]) {
      if (present.has(id)) continue;
      this.seen.delete(id);
      // Fell out of the window by age, or removed: only the latter is news.
      if (id > oldest || rows.length < WATCHED_JOBS) this.broadcast(`event: job\ndata: ${JSON.stringify({ id, deleted: true })}\n\n`);
    }
  }

  private snapshot(): void {
    this.seen.clear();
    for (const j of this.index.listJobs(WATCHED_JOBS)) this.seen.set(j.id, fingerprint(j));
  }

  private broadcast(text: string): void {
    for (const c of this.clients) c.write(text);
  }

  private idle(): void {
    clearInterval(this.poll);
    clearInterval(this.heartbeat);
    this.poll = this.heartbeat = undefined;
  }

  /** Ends every stream (node stop). */
  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.idle();
  }
}
