import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { ProgressBar, summaryTable } from '../src/batch/progress.js';

function fakeStream(isTTY: boolean) {
  let text = '';
  const s = new Writable({ write(c, _e, cb) { text += String(c); cb(); } }) as unknown as NodeJS.WriteStream;
  Object.assign(s, { isTTY, columns: 120 });
  return { s, text: () => text };
}

describe('batch progress bar', () => {
  it('draws done/total, failures and the current step on a TTY', () => {
    const { s, text } = fakeStream(true);
    const bar = new ProgressBar(4, s);
    bar.tick(true);
    bar.tick(false);
    bar.status('dvh P1/2024-03');
    expect(bar.render(8)).toMatch(/^\[####----\] 2\/4 courses, 1 failed · \d+ s · dvh P1\/2024-03$/);
    bar.finish();
    expect(text()).toContain('2/4 courses, 1 failed');
  });

  it('writes nothing when stderr is not a terminal (CI, log files)', () => {
    const { s, text } = fakeStream(false);
    const bar = new ProgressBar(2, s);
    bar.tick(true);
    bar.finish();
    expect(text()).toBe('');
  });

  it('prints a summary table: one line per course with its stages and error', () => {
    const t = summaryTable([
      { patientId: 'P1', courseId: '2024-03', ok: true, stages: [{ stage: 'organize', status: 'skipped', ms: 0 }, { stage: 'dvh', status: 'done', ms: 2000 }] },
      { patientId: 'P2', courseId: '2024-04', ok: false, error: 'segmentation failed', stages: [] },
    ]);
    const lines = t.trim().split('\n');
    expect(lines[0]).toMatch(/^course\s+status\s+stages \(= already done\)\s+error$/);
    expect(lines[2]).toMatch(/^P1\/2024-03\s+ok\s+organize=, dvh 2 s$/);
    expect(lines[3]).toMatch(/^P2\/2024-04\s+FAILED\s+segmentation failed$/);
  });
});
