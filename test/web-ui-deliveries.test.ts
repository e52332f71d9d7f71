// The web UI's Deliveries panel in a real browser (Debian's chromium driven by playwright-core)
// against the real node: a dead letter is listed with its reason, and its Retry button delivers it
// to a DCMTK storescp started after the item failed for good.
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { tempDir } from './helpers/node.js';
import { outboundFixtures, outboundItems as outbound, sendStudy } from './helpers/outbound.js';
import { freePort } from './helpers/ports.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';

const SMALL = { rows: 16, columns: 16, slices: 3, pixelSpacingMm: [4, 4] as [number, number], sliceThicknessMm: 5, seed: 1 };
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
});

const { node, storescp } = outboundFixtures(cleanup);

describe('web UI: Deliveries panel', () => {
  it('lists a dead letter with its reason and a Retry button that delivers it', async () => {
    const port = await freePort();
    const n = await node('  retry_initial_seconds: 0.2\n  retry_max_seconds: 0.4\n  retry_max_age_hours: 0.0003\n  circuit_breaker:\n    failures: 100\n', [`UIPACS@127.0.0.1:${port}`]);
    const ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'OB-UI', patientName: 'UI^X', studyDate: '20240101', phantom: SMALL });
    await sendStudy(n, path.dirname(ct.files[0]));
    const dead = await n.waitFor(async () => ((await n.api('/api/dead-letters')).body as any[])[0], 20_000, 'dead letter');
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
    cleanup.push(() => browser.close());
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${n.httpPort}/`);
    const row = page.locator(`#delivery-list li[data-id="${dead.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.getAttribute('data-state')).toBe('failed');
    expect(await row.locator('.reason').textContent()).toMatch(/^gave up: network error/);
    const pacs = await storescp(port, 'UIPACS');
    await row.locator('button.retry').click();
    // Delivered items leave the panel (it lists pending, sending, failed and held ones).
    await page.locator(`#delivery-list li[data-id="${dead.id}"]`).waitFor({ state: 'detached', timeout: 20_000 });
    expect(await page.locator('#deliveries-empty').isVisible()).toBe(true);
    expect((await outbound(n)).find((o) => o.id === dead.id)).toMatchObject({ state: 'done', delivered: 3 });
    expect(await pacs.received()).toHaveLength(3);
    expect(errors).toEqual([]);
  });
});

