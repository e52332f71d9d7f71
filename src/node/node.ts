import path from 'node:path';
import { existsSync, promises as fsp } from 'node:fs';
import type http from 'node:http';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { Metrics } from '../metrics.js';
import { IndexDb } from '../store/index-db.js';
import { InstanceStore } from '../store/instance-store.js';
import { reindex } from '../store/reindex.js';
import { DicomServer, StudyActivity } from '../dicom/scp.js';
import { OutboundQueue } from './outbound.js';
import { JobRunner } from './job-runner.js';
import { StudyCompletion } from './study-completion.js';
import { studyJob } from './study-job.js';
import { StagePool } from '../pipeline/stage-pool.js';
import { ChildRegistry } from '../pipeline/child-registry.js';
import { isStageName, STAGES } from '../pipeline/stage-names.js';
import { usableCpusSync } from '../system/cpus.js';
import { resolveWorkers } from '../system/workers.js';
import { createHttpServer, HANDLED, type Route } from '../http/server.js';
import { handleUpload } from '../http/upload.js';
import { JobEventHub } from '../http/events.js';
import { courseFile, courseZip, resultsOf } from '../http/course-files.js';
import { WatchFolder } from './watch-folder.js';
import { AuditLog } from '../audit/audit-log.js';
import { openAuditLog, nodeStartEvent } from '../audit/node-audit.js';
import { Retention, type PurgeRecord } from '../store/retention.js';
import { auditWeb } from '../http/web-audit.js';
import { Timeline } from '../store/timeline.js';
import { uiPage, uiAsset } from '../http/ui/assets.js';
import { RoutingTable } from '../routing/routing-table.js';
import { routingRoutes } from '../routing/routing-api.js';
import { storageCommitmentDeps } from '../completion/commitment-record.js';
import { tlsServerOptions } from '../dicom/tls.js';
import { circuitMetric, deadLetters, outboundList, retryDeadLetter } from '../http/outbound-routes.js';

export const STUDY_JOB = 'study';

/** The long-running DICOM node: listener, index, study completion, jobs, outbound queue, HTTP API. */
export class RtNode {
  readonly metrics = new Metrics();
  readonly activity = new StudyActivity();
  index!: IndexDb;
  store!: InstanceStore;
  dicom!: DicomServer;
  outbound!: OutboundQueue;
  jobs!: JobRunner;
  pool!: StagePool;
  completion!: StudyCompletion;
  /** The audit trail (<data>/audit/audit.jsonl): security-relevant events only. */
  audit!: AuditLog;
  /** Per-study timeline in the index. */
  timeline!: Timeline;
  /** Return routing rules in force (node.routes, or <data>/routing.json once edited through the API). */
  routing!: RoutingTable;
  /** One per `node.watch` folder; files there are stored like C-STOREs. */
  watchers: WatchFolder[] = [];
  private http: http.Server | undefined;
  private events: JobEventHub | undefined;
  private stopping = false;
  private started = false;
  private readonly startedAt = Date.now();
  /** Purges finished studies by age or disk budget (node.retention). */
  retention!: Retention;
  private retentionTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly config: Config,
    private readonly log: Logger,
    /** Where the config came from, for the 'node.start' audit event. */
    private readonly origin: { configFile?: string } = {},
  ) {}

  get dataDir(): string {
    return path.resolve(this.config.node.data_dir);
  }

  async start(): Promise<void> {
    const node = this.config.node;
    // Bad TLS key/cert/CA: a ConfigError (exit 2) before anything starts, not after the index opened.
    if (node.tls) tlsServerOptions(node.tls);
    await fsp.mkdir(this.dataDir, { recursive: true });
    const dbFile = path.join(this.dataDir, 'index.sqlite');
    const fresh = !existsSync(dbFile);
    this.index = new IndexDb(dbFile);
    this.store = new InstanceStore(this.dataDir, this.index, { minFreeBytes: node.min_free_disk_mb * 1048576, maxInstanceBytes: node.max_instance_mb * 1048576 }, this.log);
    await this.store.init();
    this.store.limitStudySize(node.max_study_mb * 1048576);
    this.audit = openAuditLog(this.config, this.log);
    this.retention = new Retention({ index: this.index, layout: this.store.layout, outputDir: path.join(this.dataDir, 'output'), log: this.log.child({ component: 'retention' }), audit: this.audit, isBusy: (uid) => this.activity.isBusy(uid), onPurged: (uid) => this.store.forgetStudySize(uid) });
    // Before the reindex: the files of a purge a crash interrupted must not be indexed again.
    await this.retention.resumeInterrupted();
    // The files are the truth: rebuild a lost index, and reconcile after an unclean stop.
    const clean = this.index.getMeta('clean_shutdown') === '1';
    if (fresh && existsSync(this.store.layout.store)) await reindex(this.store.layout, this.index, this.log, 'rebuild');
    else if (!fresh && !clean) await reindex(this.store.layout, this.index, this.log, 'reconcile');
    this.index.setMetaDurable('clean_shutdown', '0');
    this.timeline = new Timeline(this.index.db);
    this.routing = await RoutingTable.load(this.dataDir, node, this.audit, this.log.child({ component: 'routing' }));

    this.outbound = new OutboundQueue(
      this.index,
      { callingAet: node.aet, retryInitialSeconds: node.retry_initial_seconds, retryMaxSeconds: node.retry_max_seconds, retryMaxAgeHours: node.retry_max_age_hours, destinations: node.destinations },
      this.log.child({ component: 'outbound' }),
      this.metrics,
      { timeline: this.timeline, audit: this.audit, circuitBreaker: node.circuit_breaker },
    );
    const outputDir = path.join(this.dataDir, 'output');
    const children = new ChildRegistry(path.join(this.dataDir, 'running-tools.json'));
    children.killLeftovers(this.log.child({ component: 'stages' }));
    const cpus = usableCpusSync();
    // Flags and variables are merged into the config by now; this adds the CPU-aware default.
    const workers = resolveWorkers({ env: {}, configMaxWorkers: this.config.max_workers, configSegWorkers: this.config.seg_workers, usable: cpus.count });
    for (const w of workers.warnings) this.log.warn(w);
    this.log.info({ usableCpus: cpus.count, cpuLimit: cpus.source, maxWorkers: workers.maxWorkers, segWorkers: workers.segWorkers, workersFrom: workers.detail }, 'pipeline workers');
    this.pool = new StagePool({
      maxWorkers: workers.maxWorkers,
      segWorkers: workers.segWorkers,
      graceMs: node.shutdown_grace_seconds * 1000,
      children,
      log: this.log.child({ component: 'stages' }),
    });
    // Loaded only for a SLURM node: a local node does not carry the executor (and execa) in memory.
    const remote =
      this.config.executor.kind === 'slurm'
        ? (await import('../executor/slurm-executor.js')).slurmCourseRunner({ ...this.config, output_dir: outputDir, logs_dir: path.join(this.dataDir, 'logs') })
        : undefined;
    this.jobs = new JobRunner(
      this.index,
      {
        [STUDY_JOB]: studyJob({
          index: this.index,
          pool: this.pool,
          outputDir,
          destinations: node.destinations,
          forward: node.forward,
          segmentation: this.config.segmentation,
          customStructures: this.config.custom_structures,
          segWorkers: workers.segWorkers,
          graceSeconds: Math.min(10, node.shutdown_grace_seconds / 2),
          outbound: this.outbound,
          heartbeatSeconds: this.config.heartbeat_seconds,
          // executor.kind: slurm (the batch command's section): the course task writes into this
          // node's output folder and its task logs under <data>/logs/slurm.
          remote,
          onProgress: () => this.events?.poke(),
          routing: this.routing,
          timeline: this.timeline,
          audit: this.audit,
        }),
      },
      node.max_concurrent_jobs,
      this.log.child({ component: 'jobs' }),
      this.timeline,
    );
    this.completion = new StudyCompletion(this.index, this.activity, node.stable_seconds, STUDY_JOB, this.log.child({ component: 'completion' }), () => this.jobs.kick(), { completion: node.completion, timeline: this.timeline, metrics: this.metrics });
    this.dicom = new DicomServer({ config: node, store: this.store, log: this.log.child({ component: 'scp' }), metrics: this.metrics, activity: this.activity, audit: this.audit, timeline: this.timeline });
    this.dicom.use({
      onAssociationReleased: (studies) => this.completion.released(studies),
      storageCommitment: node.completion.storage_commitment ? storageCommitmentDeps(this.index, this.timeline, this.log.child({ component: 'commitment' }), () => this.completion.safeCheck()) : undefined,
    });

    this.outbound.start();
    this.jobs.start();
    this.completion.start();
    await this.dicom.listen();
    await this.listenHttp();
    // After the store and completion: files already waiting in a folder are taken at once.
    for (const dir of node.watch) {
      const w = new WatchFolder({ dir, store: this.store, activity: this.activity, log: this.log.child({ component: 'watch' }), metrics: this.metrics, audit: this.audit, timeline: this.timeline });
      this.watchers.push(w);
      await w.start();
    }
    this.started = true;
    this.log.info({ aet: node.aet, dicomPort: this.dicom.port, dicomTlsPort: this.dicom.tlsPort, httpPort: this.httpPort, dataDir: this.dataDir, destinations: node.destinations.length }, 'rtpipeline node ready');
    this.audit.record(nodeStartEvent(this.config, { configFile: this.origin.configFile, dicomPort: this.dicom.port, httpPort: this.httpPort, apiKeySet: Boolean(process.env.RTPIPELINE_API_KEY) }));
    this.scheduleRetention();
  }

  get httpPort(): number {
    const a = this.http?.address();
    return typeof a === 'object' && a ? a.port : this.config.node.http_port;
  }

  private async listenHttp(): Promise<void> {
    this.events = new JobEventHub(this.index, jobView);
    // Partial uploads of a previous run (zips waiting to be read) were never answered: drop them.
    await fsp.rm(this.uploadTmpDir, { recursive: true, force: true });
    this.http = createHttpServer(this.routes(), { apiKey: process.env.RTPIPELINE_API_KEY || undefined, log: this.log.child({ component: 'http' }), audit: this.audit });
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', reject);
      this.http!.listen(this.config.node.http_port, this.config.node.http_bind_address, () => resolve());
    });
  }

  health(): { healthy: boolean; body: Record<string, unknown> } {
    const freeMb = Math.round(this.store.freeBytes() / 1048576);
    const diskOk = this.store.hasSpace();
    const healthy = !this.stopping && diskOk;
    return {
      healthy,
      body: {
        status: healthy ? 'healthy' : 'unhealthy',
        reason: this.stopping ? 'shutting down' : diskOk ? undefined : `disk nearly full (${freeMb} MB free)`,
        aet: this.config.node.aet,
        dicomPort: this.dicom.port,
        dicomTlsPort: this.dicom.tlsPort,
        dicomPlain: this.dicom.plainListening,
        uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
        freeDiskMb: freeMb,
        activeAssociations: this.dicom.activeAssociations,
      },
    };
  }

  private get uploadTmpDir(): string {
    return path.join(this.store.layout.incoming, 'uploads');
  }

  private routes(): Route[] {
    return [
      { method: 'GET', path: '/health', handler: () => { const h = this.health(); return { status: h.healthy ? 200 : 503, body: h.body }; } },
      { method: 'GET', path: '/', handler: () => uiPage() },
      { method: 'GET', path: '/ui/:asset', handler: (_r, p) => uiAsset(p.asset) },
      { method: 'GET', path: '/metrics', handler: () => ({ status: 200, body: this.renderMetrics(), contentType: 'text/plain; version=0.0.4' }) },
      { method: 'GET', path: '/api/studies', handler: () => ({ status: 200, body: this.index.listStudies() }) },
      { method: 'GET', path: '/api/studies/:uid', handler: (_r, p) => {
          const study = this.index.getStudy(p.uid);
          return study ? { status: 200, body: { ...study, series: this.index.seriesOfStudy(p.uid) } } : { status: 404, body: { error: `no study ${p.uid}` } };
        } },
      { method: 'GET', path: '/api/studies/:uid/timeline', handler: (_r, p) => {
          const study = this.index.getStudy(p.uid);
          if (!study) return { status: 404, body: { error: `no study ${p.uid}` } };
          const pending = study.state === 'receiving' ? this.completion.verdict(study) : undefined;
          return { status: 200, body: { study: { ...study, waiting: pending && { detail: pending.detail, recheckAt: pending.recheckAt } }, events: this.timeline.list(p.uid) } };
        } },
      { method: 'GET', path: '/api/jobs', handler: () => ({ status: 200, body: this.index.listJobs().map(jobView) }) },
      { method: 'GET', path: '/api/jobs/:id', handler: (_r, p) => {
          const job = this.index.getJob(Number(p.id));
          return job ? { status: 200, body: jobView(job) } : { status: 404, body: { error: `no job ${p.id}` } };
        } },
      { method: 'POST', path: '/api/jobs/:id/cancel', handler: (req, p) => {
          const reply = this.jobs.cancel(Number(p.id)) ? { status: 200, body: { cancelled: true } } : { status: 409, body: { error: `job ${p.id} is neither queued nor running` } };
          auditWeb(this.audit, req, 'http.request', reply.status, { action: 'cancel', jobId: Number(p.id) });
          return reply;
        } },
      { method: 'POST', path: '/api/studies/:uid/reprocess', handler: async (req, p) => {
          let body: Record<string, unknown>;
          try {
            body = await readJsonBody(req);
          } catch (e) {
            return { status: 400, body: { error: `bad request body: ${(e as Error).message}` } };
          }
          const force = body.force_redo ?? true;
          if (force !== true && !(Array.isArray(force) && force.every((s) => typeof s === 'string' && isStageName(s)))) {
            return { status: 400, body: { error: `force_redo must be true or a list of stages (${STAGES.join(', ')})` } };
          }
          const job = this.index.reprocessStudy(p.uid, STUDY_JOB, { forceRedo: force }, Date.now());
          auditWeb(this.audit, req, 'http.request', job ? 202 : 409, { action: 'reprocess', studyUid: p.uid, forceRedo: force, jobId: job?.id });
          if (!job) return { status: 409, body: { error: `study ${p.uid} is unknown or still receiving` } };
          this.jobs.kick();
          return { status: 202, body: jobView(job) };
        } },
      { method: 'DELETE', path: '/api/jobs/:id', handler: (req, p) => {
          const outcome = this.index.deleteJob(Number(p.id));
          auditWeb(this.audit, req, 'http.delete', outcome === 'deleted' ? 200 : outcome === 'missing' ? 404 : 409, { jobId: Number(p.id) });
          if (outcome === 'missing') return { status: 404, body: { error: `no job ${p.id}` } };
          if (outcome === 'unfinished') return { status: 409, body: { error: `job ${p.id} is queued or running: cancel it first (POST /api/jobs/${p.id}/cancel), then delete it` } };
          this.events?.poke();
          return { status: 200, body: { deleted: true } };
        } },
      { method: 'GET', path: '/api/jobs/:id/download', handler: async (req, p) => {
          const found = resultsOf(this.index, Number(p.id));
          const reply = 'error' in found ? found.error : await courseZip(found);
          auditWeb(this.audit, req, 'http.download', reply.status, { jobId: Number(p.id), what: 'course zip', patientId: 'error' in found ? undefined : found.patientId });
          return reply;
        } },
      { method: 'GET', path: '/api/jobs/:id/files/*', handler: async (req, p) => {
          const found = resultsOf(this.index, Number(p.id));
          const reply = 'error' in found ? found.error : await courseFile(found, p['*']);
          auditWeb(this.audit, req, 'http.download', reply.status, { jobId: Number(p.id), what: p['*'], patientId: 'error' in found ? undefined : found.patientId });
          return reply;
        } },
      { method: 'POST', path: '/api/upload', handler: (req) =>
          handleUpload(req, {
            store: this.store,
            index: this.index,
            activity: this.activity,
            minFreeBytes: this.config.node.min_free_disk_mb * 1048576,
            tmpDir: this.uploadTmpDir,
            log: this.log.child({ component: 'upload' }),
            maxBytes: this.config.node.max_upload_mb * 1048576,
            maxFiles: this.config.node.max_upload_files,
            audit: this.audit,
            timeline: this.timeline,
          }) },
      { method: 'POST', path: '/api/retention/run', handler: async (req) => {
          const purged = await this.runRetention();
          auditWeb(this.audit, req, 'http.request', 200, { action: 'retention.run', purged: purged.length });
          return { status: 200, body: { policy: this.config.node.retention, purged: purged.map(({ files: _f, ...r }) => r) } };
        } },
      { method: 'GET', path: '/api/events', handler: (req, _p, res) => {
          this.events!.subscribe(req, res);
          return HANDLED;
        } },
      ...routingRoutes(this.routing, readJsonBody),
      { method: 'GET', path: '/api/outbound', handler: (req) => outboundList(this.index, this.outbound, req) },
      { method: 'GET', path: '/api/outbound/destinations', handler: () => ({ status: 200, body: this.outbound.circuits() }) },
      { method: 'GET', path: '/api/dead-letters', handler: () => ({ status: 200, body: deadLetters(this.index, this.outbound) }) },
      { method: 'POST', path: '/api/outbound/:id/retry', handler: (req, p) => retryDeadLetter(this.outbound, this.audit, req, p.id) },
    ];
  }

  /** The HTTP routes (method and pattern), for the web security tests and the docs. */
  routeTable(): { method: string; path: string }[] {
    return this.routes().map((r) => ({ method: r.method, path: r.path }));
  }

  /** One retention pass with the configured policy (nothing to do when neither limit is set). */
  runRetention(): Promise<PurgeRecord[]> {
    const r = this.config.node.retention;
    return this.retention.run({ maxAgeDays: r.max_age_days, diskBudgetBytes: r.disk_budget_gb === null ? null : r.disk_budget_gb * 1024 ** 3, purgeOutputs: r.purge_outputs });
  }

  private scheduleRetention(): void {
    const r = this.config.node.retention;
    if (r.max_age_days === null && r.disk_budget_gb === null) return;
    this.retentionTimer = setInterval(() => {
      this.runRetention().catch((e: Error) => this.log.error({ err: e.message }, 'retention pass failed; the next pass retries'));
    }, r.interval_minutes * 60_000);
    this.retentionTimer.unref();
  }

  renderMetrics(): string {
    const jobs = this.index.countBy('jobs');
    const outbound = this.index.countBy('outbound');
    const studies = this.index.countBy('studies');
    return this.metrics.render([
      { name: 'rtpipeline_associations_active', help: 'Open DICOM associations', values: [{ value: this.dicom.activeAssociations }] },
      { name: 'rtpipeline_instances_stored', help: 'Instances in the index', values: [{ value: this.index.countInstances() }] },
      { name: 'rtpipeline_studies', help: 'Studies by state', values: ['receiving', 'complete'].map((s) => ({ labels: { state: s }, value: studies[s] ?? 0 })) },
      { name: 'rtpipeline_jobs', help: 'Jobs by state', values: ['queued', 'running', 'done', 'failed', 'cancelled'].map((s) => ({ labels: { state: s }, value: jobs[s] ?? 0 })) },
      { name: 'rtpipeline_outbound_queue', help: 'Outbound items by state', values: ['pending', 'sending', 'done', 'failed', 'held'].map((s) => ({ labels: { state: s }, value: outbound[s] ?? 0 })) },
      circuitMetric(this.outbound),
      { name: 'rtpipeline_disk_free_bytes', help: 'Free bytes on the data volume', values: [{ value: this.store.freeBytes() }] },
    ]);
  }

  /**
   * Graceful stop: no new associations, stores in flight answered; running stages get the grace
   * period, then their workers and tools are killed and their jobs go back to the queue; the index
   * is flushed and marked clean.
   */
  async stop(graceMs = 8000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('stopping: refusing new associations, finishing stores in flight, stopping running stages');
    this.completion?.stop();
    this.outbound?.stop();
    clearInterval(this.retentionTimer);
    await this.retention?.idle();
    await Promise.all([...this.watchers.map((w) => w.stop()), this.dicom?.close(graceMs), this.jobs?.stop(), this.pool?.stop()]);
    this.events?.close();
    const httpClosed = new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
    this.http?.closeAllConnections();
    await httpClosed;
    // Interrupted jobs and sends stay 'running'/'sending' and resume at the next start; the index
    // is still consistent with the files, so the next start needs no reconciliation.
    // Only a node that finished starting, and whose index took every stored file, may say "clean".
    if (this.started && this.store.indexErrors === 0) this.index.setMetaDurable('clean_shutdown', '1');
    this.index?.close();
    this.audit?.record({ type: 'node.stop', outcome: 'success', aet: this.config.node.aet, clean: this.started && this.store.indexErrors === 0 });
    this.audit?.close();
    this.log.info('stopped');
  }
}

/** The JSON body of a request ({} when empty); at most 64 kB. */
async function readJsonBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 65536) throw new Error('request body over 64 kB');
  }
  if (text.trim() === '') return {};
  const v = JSON.parse(text) as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the request body must be a JSON object');
  return v as Record<string, unknown>;
}

export function jobView(j: import('../store/index-db.js').JobRow) {
  return { ...j, result: j.result ? JSON.parse(j.result) : null, progress: j.progress ? JSON.parse(j.progress) : null };
}
