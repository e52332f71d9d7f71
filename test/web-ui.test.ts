// The web UI in a real browser (Debian's chromium driven by playwright-core) against a real node:
// upload a planned patient through the file chooser, read the validation summary, follow the job
// live (server-sent events) to done, open its results (QC report or RS_auto, DVH plot and table),
// download the results zip; a zip with a `../` entry is refused with a visible message; a wrong
// API key brings up the key prompt. Screenshots go to test-output/web-ui/.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { plannedPatient } from './helpers/planned-patient.js';
import { zip, readZipDirectory } from '../src/io/zip.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';

const SHOTS = fileURLToPath(new URL('../test-output/web-ui/', import.meta.url));
const PATIENT = 'WEBUI-1';

let node: NodeHandle;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
const pageErrors: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  [node, browser] = await Promise.all([
    startNode({ args: ['--stable-seconds', '1'] }),
    chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] }),
  ]);
  base = `http://127.0.0.1:${node.httpPort}`;
  context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => void d.accept()); // the delete confirmation
});

afterAll(async () => {
  await browser?.close();
  await node?.stop();
});

describe('web UI assets', () => {
  it('serves the page and its modules with their content types, and nothing outside the UI folder', async () => {
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await index.text()).toContain('/ui/app.js');
    for (const [asset, type] of [['app.js', /^text\/javascript/], ['style.css', /^text\/css/], ['dvh-plot.js', /^text\/javascript/]] as const) {
      const r = await fetch(`${base}/ui/${asset}`);
      expect(r.status, asset).toBe(200);
      expect(r.headers.get('content-type'), asset).toMatch(type);
    }
    // The server module itself, dot-segments (encoded so that fetch keeps them) and unknown files.
    for (const p of ['/ui/assets.ts', '/ui/..%2F..%2Fnode%2Fnode.ts', '/ui/..%2Fapp.js', '/ui/index.html', '/ui/nope.js']) {
      expect((await fetch(base + p)).status, p).toBe(404);
    }
  });
});

describe('web UI in chromium', () => {
  it('uploads a study, shows the summary, follows the job live to done and shows and downloads its results', async () => {
    const root = tempDir('rtp-webui-');
    const patient = await plannedPatient(root, PATIENT);
    await page.goto(`${base}/`);
    await page.locator('#live-status', { hasText: 'updates: live' }).waitFor({ timeout: 10_000 });
    await shot('01-empty');

    await page.setInputFiles('#file-input', [...patient.files, ...patient.rtFiles]);
    const summary = page.getByTestId('upload-summary');
    await summary.waitFor({ timeout: 20_000 });
    const summaryText = await summary.innerText();
    expect(summaryText).toContain(`${patient.files.length + 3} stored`);
    expect(summaryText).toContain(PATIENT);
    for (const chip of [`CT ${patient.files.length}`, 'RTSTRUCT 1', 'RTPLAN 1', 'RTDOSE 1']) expect(summaryText).toContain(chip);
    expect(await page.locator('#upload-bar').evaluate((e) => (e as HTMLProgressElement).value)).toBe(1);
    await shot('02-uploaded');

    // The job appears, runs and finishes; after the upload's own refresh only the event stream updates the list.
    const job = page.locator('#job-list li.job').filter({ hasText: PATIENT });
    await job.first().waitFor({ timeout: 15_000 });
    await page.locator('#job-list li.job[data-state="running"], #job-list li.job[data-state="done"]').first().waitFor({ timeout: 20_000 });
    await shot('03-running');
    const done = page.locator('#job-list li.job[data-state="done"]').filter({ hasText: PATIENT });
    await done.waitFor({ timeout: 45_000 });
    expect(await page.locator('#live-status').innerText()).toBe('updates: live');
    const chips = await done.locator('.stage').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-stage')}:${e.getAttribute('data-status')}`));
    expect(chips).toContain('organize:done');
    expect(chips).toContain('dvh:done');
    const jobId = Number(await done.getAttribute('data-job-id'));
    const apiJob = (await node.api(`/api/jobs/${jobId}`)).body;
    expect(apiJob.state).toBe('done');

    // Details: the DVH plot (one line per ROI of dvh_curves.json) and the DVH table.
    await done.getByRole('button', { name: 'Details' }).click();
    const plot = page.getByTestId('dvh-plot');
    await plot.waitFor({ timeout: 10_000 });
    const curves = JSON.parse(readFileSync(path.join(apiJob.result.courseDir, 'dvh_curves.json'), 'utf8')) as { curves: { roi: string }[] };
    const lines = await plot.locator('polyline').evaluateAll((els) => els.map((e) => e.getAttribute('data-roi')));
    expect(lines.sort()).toEqual(curves.curves.map((c) => c.roi).sort());
    expect(lines).toContain('PTV');
    const table = page.getByTestId('dvh-table');
    expect(await table.locator('tbody tr').count()).toBe(curves.curves.length);
    expect(await table.locator('thead').innerText()).toContain('DmeanGy');
    await shot('04-results');

    // The study's timeline under the details: received (the upload), complete (and why: an upload has no association, so
    // the quiet time), the job, its stages.
    const timeline = page.getByTestId('study-timeline');
    await timeline.locator('li[data-event="stage"]').first().waitFor({ timeout: 10_000 });
    const events = await timeline.locator('li').evaluateAll((els) => els.map((e) => e.getAttribute('data-event')));
    expect(events.slice(0, 3)).toEqual(['received', 'complete', 'job']);
    expect(await timeline.locator('li[data-event="complete"]').innerText()).toMatch(/generation 1: quiet \(/);
    expect(await timeline.locator('li[data-event="stage"]').allInnerTexts()).toEqual(expect.arrayContaining([expect.stringMatching(/organize done/)]));

    // The QC report when the course has one (its pictures load), else RS_auto.dcm.
    const qc = page.getByTestId('qc-link');
    if ((await qc.count()) > 0) {
      const [report] = await Promise.all([context.waitForEvent('page'), qc.click()]);
      await report.waitForLoadState('load');
      const images = await report.locator('img').evaluateAll((els) => els.map((e) => (e as HTMLImageElement).naturalWidth));
      expect(images.length).toBeGreaterThan(0);
      expect(images.every((w) => w > 0)).toBe(true);
      await report.screenshot({ path: path.join(SHOTS, '05-qc-report.png'), fullPage: true });
      await report.close();
    } else {
      const [rs] = await Promise.all([page.waitForEvent('download'), page.getByTestId('rs-auto-link').click()]);
      const file = path.join(SHOTS, 'RS_auto.dcm');
      await rs.saveAs(file);
      expect(readFileSync(file).subarray(128, 132).toString('latin1')).toBe('DICM');
    }

    // The results zip holds the course folder.
    const [download] = await Promise.all([page.waitForEvent('download'), done.getByRole('link', { name: 'Download' }).click()]);
    expect(download.suggestedFilename()).toMatch(new RegExp(`^${PATIENT}_.+\\.zip$`));
    const zipFile = path.join(SHOTS, download.suggestedFilename());
    await download.saveAs(zipFile);
    const fh = await open(zipFile);
    try {
      const names = (await readZipDirectory(fh, (await fh.stat()).size)).map((e) => e.name);
      expect(names).toEqual(expect.arrayContaining(['RS_auto.dcm', 'dvh_metrics.csv', 'dvh_curves.json']));
    } finally {
      await fh.close();
    }

    // A finished job can be deleted from the list.
    await done.getByRole('button', { name: 'Delete' }).click();
    await done.waitFor({ state: 'detached', timeout: 5000 });
    expect((await node.api(`/api/jobs/${jobId}`)).status).toBe(404);
    expect(pageErrors).toEqual([]);
  });

  it('refuses a zip with a ../ entry and says so on the page', async () => {
    const evil = zip([
      { name: 'notes.txt', data: Buffer.from('not DICOM') },
      { name: '../escape.dcm', data: Buffer.from('would land outside the extraction folder') },
    ]);
    await page.goto(`${base}/`);
    await page.setInputFiles('#file-input', { name: 'evil.zip', mimeType: 'application/zip', buffer: evil });
    const refused = page.locator('.refused');
    await refused.waitFor({ timeout: 10_000 });
    const text = await refused.innerText();
    expect(text).toContain('../escape.dcm');
    expect(await page.locator('.summary .counts').innerText()).toMatch(/^0 stored/);
    await shot('06-zip-refused');
    expect(pageErrors).toEqual([]);
  });
});

describe('web UI with an API key', () => {
  it('asks for the key when the API answers 401, takes it from ?key=, and asks again when the stored one is refused', async () => {
    const keyNode = await startNode({ args: ['--stable-seconds', '600'], env: { RTPIPELINE_API_KEY: 'sesame-4711' } });
    const p = await context.newPage();
    try {
      const keyBase = `http://127.0.0.1:${keyNode.httpPort}`;
      // The page and its code are public; every API route answers 401 without the key.
      expect((await fetch(`${keyBase}/api/jobs`)).status).toBe(401);
      await p.goto(`${keyBase}/`);
      const dialog = p.locator('#key-dialog');
      await dialog.waitFor({ state: 'visible', timeout: 10_000 });
      await p.screenshot({ path: path.join(SHOTS, '07-key-prompt.png') });
      await p.fill('#key-input', 'sesame-4711');
      await p.click('#key-ok');
      await p.locator('#live-status', { hasText: 'updates: live' }).waitFor({ timeout: 10_000 });

      // A link with the key: kept for the tab, dropped from the address bar.
      await p.evaluate(() => sessionStorage.clear());
      await p.goto(`${keyBase}/?key=sesame-4711`);
      await p.locator('#live-status', { hasText: 'updates: live' }).waitFor({ timeout: 10_000 });
      expect(new URL(p.url()).search).toBe('');
      expect(await dialog.isVisible()).toBe(false);

      // The key was rotated: the next call is refused and the prompt comes up; the upload then goes through.
      await p.evaluate(() => sessionStorage.setItem('rtpipeline.apiKey', 'old-key'));
      const ct = await writeCtSeries(path.join(tempDir('rtp-webui-key-'), 'ct'), { patientId: 'WEBUI-KEY', patientName: 'Key^Test', phantom: { rows: 16, columns: 16, slices: 1, pixelSpacingMm: [10, 10], sliceThicknessMm: 5 } });
      await p.setInputFiles('#file-input', ct.files);
      await dialog.waitFor({ state: 'visible', timeout: 10_000 });
      await p.fill('#key-input', 'sesame-4711');
      await p.click('#key-ok');
      await p.getByTestId('upload-summary').waitFor({ timeout: 10_000 });
      expect(await p.locator('.summary .counts').innerText()).toMatch(/^1 stored/);
      expect(await p.evaluate(() => sessionStorage.getItem('rtpipeline.apiKey'))).toBe('sesame-4711');
    } finally {
      await p.close();
      await keyNode.stop();
    }
  });
});

