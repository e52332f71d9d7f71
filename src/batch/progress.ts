/**
 * A one-line progress bar for the batch command on a terminal (stderr), redrawn at most every
 * 100 ms; nothing at all when stderr is not a TTY (CI, log files), where the log lines suffice.
 */
import { formatElapsed } from '../pipeline/course-pipeline.js';

export class ProgressBar {
  private done = 0;
  private failed = 0;
  private current = '';
  private last = 0;
  private readonly started = Date.now();

  constructor(
    private total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = stream.isTTY === true,
  ) {}

  setTotal(total: number): void {
    this.total = total;
    this.draw(true);
  }

  /** What is being worked on now, e.g. "segmentation P1/2024-03". */
  status(text: string): void {
    this.current = text;
    this.draw(false);
  }

  tick(ok: boolean): void {
    this.done++;
    if (!ok) this.failed++;
    this.draw(true);
  }

  /** The bar as text (also for tests). */
  render(width = 24): string {
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const failed = this.failed > 0 ? `, ${this.failed} failed` : '';
    return `[${bar}] ${this.done}/${this.total} courses${failed} · ${formatElapsed(Date.now() - this.started)}${this.current ? ` · ${this.current}` : ''}`;
  }

  private draw(force: boolean): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const cols = this.stream.columns ?? 100;
    this.stream.write(`\r${this.render().slice(0, cols - 1).padEnd(cols - 1)}`);
  }

  finish(): void {
    if (this.enabled) this.stream.write(`\r${this.render()}\n`);
  }
}

/** The end-of-run summary table: one line per course, its stages (✓ done, = skipped) and the error. */
export function summaryTable(courses: readonly { patientId: string; courseId: string; ok: boolean; error?: string; stages: { stage: string; status: string; ms: number }[] }[]): string {
  const rows = courses.map((c) => [
    `${c.patientId}/${c.courseId}`,
    c.ok ? 'ok' : 'FAILED',
    c.stages.map((s) => `${s.stage}${s.status === 'skipped' ? '=' : ' ' + formatElapsed(s.ms)}`).join(', '),
    c.error ?? '',
  ]);
  const head = ['course', 'status', 'stages (= already done)', 'error'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}
