// The QC report: PNG encoder (read back by an independent decoder), snapshot pixels and aspect,
// the checks on constructed cases, and the batch command writing qc_report.html, its PNGs and
// _RESULTS/qc_reports.csv for a planned patient.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, tempDir } from './helpers/node.js';
import { plannedPatient } from './helpers/planned-patient.js';
import { encodePng, type RasterImage } from '../src/qc/png.js';
import { extractPlane, renderSnapshot } from '../src/qc/render.js';
import { checkDoseCoverage, checkFrameOfReference, checkRoiCropping, checkRoiSizes, measureMask, worstStatus, type RoiFacts } from '../src/qc/checks.js';
import type { Grid, Mask, Volume } from '../src/geometry/types.js';

/** An independent PNG decoder (Python's zlib + struct): checks every CRC, undoes all five filters. */
const PY_DECODER = `
import sys, zlib, struct, json
b = open(sys.argv[1], 'rb').read()
assert b[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'bad signature'
p = 8; idat = b''; ihdr = None
while p < len(b):
    n, = struct.unpack('>I', b[p:p+4]); t = b[p+4:p+8]; d = b[p+8:p+8+n]
    crc, = struct.unpack('>I', b[p+8+n:p+12+n])
    assert zlib.crc32(t + d) & 0xffffffff == crc, 'bad CRC in ' + t.decode()
    if t == b'IHDR': ihdr = struct.unpack('>IIBBBBB', d)
    elif t == b'IDAT': idat += d
    elif t == b'IEND': break
    p += 12 + n
w, h, depth, ctype, _, _, interlace = ihdr
assert depth == 8 and interlace == 0
bpp = {2: 3, 6: 4}[ctype]
raw = zlib.decompress(idat); stride = w * bpp; out = bytearray(); prev = bytearray(stride)
for y in range(h):
    f = raw[y*(stride+1)]; line = bytearray(raw[y*(stride+1)+1:(y+1)*(stride+1)])
    for x in range(stride):
        a = line[x-bpp] if x >= bpp else 0; up = prev[x]; c = prev[x-bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + up) & 255
        elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
        elif f == 4:
            pa, pb, pc = abs(up - c), abs(a - c), abs(a + up - 2*c)
            pr = a if pa <= pb and pa <= pc else (up if pb <= pc else c)
            line[x] = (line[x] + pr) & 255
    out += line; prev = line
print(json.dumps({'width': w, 'height': h, 'channels': bpp, 'hex': out.hex()}))
`;

function decodePng(file: string): RasterImage {
  const r = spawnSync('/usr/bin/python3', ['-c', PY_DECODER, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.status, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as { width: number; height: number; channels: 3 | 4; hex: string };
  return { width: j.width, height: j.height, channels: j.channels, data: Uint8Array.from(Buffer.from(j.hex, 'hex')) };
}

const pixel = (img: RasterImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * img.channels, (y * img.width + x + 1) * img.channels));

function grid(dims: [number, number, number], spacingMm: [number, number, number]): Grid {
  return { dims, spacingMm, originMm: [0, 0, 0], direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };
}

function boxMask(g: Grid, [i0, i1]: number[], [j0, j1]: number[], [k0, k1]: number[]): Mask {
  const [nx, ny] = g.dims;
  const data = new Uint8Array(g.dims[0] * g.dims[1] * g.dims[2]);
  for (let k = k0; k <= k1; k++) for (let j = j0; j <= j1; j++) for (let i = i0; i <= i1; i++) data[i + nx * (j + ny * k)] = 1;
  return { grid: g, data };
}

describe('PNG encoder', () => {
  it.each([3, 4] as const)('writes %i-channel images that an independent decoder reads back exactly', (channels) => {
    const width = 37;
    const height = 11;
    const data = new Uint8Array(width * height * channels);
    let seed = 12345;
    for (let n = 0; n < data.length; n++) data[n] = n % 5 === 0 ? 0 : (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const file = path.join(tempDir('rtp-png-'), 'x.png');
    writeFileSync(file, encodePng({ width, height, channels, data }));
    const back = decodePng(file);
    expect([back.width, back.height, back.channels]).toEqual([width, height, channels]);
    expect(Buffer.from(back.data).equals(Buffer.from(data))).toBe(true);
  });

  it('refuses data of the wrong length, naming the expected size', () => {
    expect(() => encodePng({ width: 4, height: 2, channels: 3, data: new Uint8Array(10) })).toThrow(/4x2x3 = 24/);
  });
});

describe('CT snapshots', () => {
  // 40 x 30 voxels of 2 mm, 12 slices of 5 mm; soft tissue (0 HU) in air, a box ROI inside.
  const g = grid([40, 30, 12], [2, 2, 5]);
  const ct: Volume<Int16Array> = { grid: g, data: new Int16Array(40 * 30 * 12).fill(-1000) };
  const body = boxMask(g, [4, 35], [3, 26], [0, 11]);
  body.data.forEach((v, n) => v && (ct.data[n] = 0));
  const roi = boxMask(g, [10, 19], [8, 15], [3, 8]);
  const red: [number, number, number] = [255, 0, 0];

  it('draws the ROI outline in its colour where the mask boundary is, CT in grey inside', () => {
    const img = renderSnapshot(extractPlane(ct, 'axial', 5), [{ color: red, plane: extractPlane(roi, 'axial', 5) }]);
    const sx = img.width / 40;
    const sy = img.height / 30;
    const yMid = Math.floor(((8 + 16) / 2) * sy);
    const xLeft = Math.ceil(10 * sx - 0.5); // first output pixel whose centre falls in voxel column 10
    const xRight = Math.ceil(20 * sx - 0.5) - 1; // last one in column 19
    expect(pixel(img, xLeft, yMid)).toEqual(red);
    expect(pixel(img, xRight, yMid)).toEqual(red);
    const grey = Math.round((1000 * 255) / 1400); // 0 HU in [-1000, 400]
    expect(pixel(img, xLeft - 1, yMid)).toEqual([grey, grey, grey]);
    expect(pixel(img, xLeft + 1, yMid)).toEqual([grey, grey, grey]);
    expect(pixel(img, Math.floor(((10 + 20) / 2) * sx), yMid)).toEqual([grey, grey, grey]);
    expect(pixel(img, 0, 0)).toEqual([0, 0, 0]); // air
  });

  it('gives the coronal image the aspect ratio of the patient, superior up', () => {
    const img = renderSnapshot(extractPlane(ct, 'coronal', 12), [{ color: red, plane: extractPlane(roi, 'coronal', 12) }]);
    // 40 columns x 2 mm = 80 mm across, 12 slices x 5 mm = 60 mm down (voxel counts alone would give 40:12).
    expect(Math.abs(img.width / img.height - 80 / 60)).toBeLessThan(0.02);
    expect(img.width).toBeGreaterThanOrEqual(256);
    // The ROI's top (slice 8) is 3 slices below the top row (slice 11).
    const sz = img.height / 12;
    const xMid = Math.floor(15 * (img.width / 40));
    const yTop = Math.ceil(3 * sz - 0.5);
    expect(pixel(img, xMid, yTop)).toEqual(red);
    expect(pixel(img, xMid, yTop - 1)).not.toEqual(red);
    expect(pixel(img, xMid, Math.ceil(9 * sz - 0.5) - 1)).toEqual(red); // bottom edge: slice 3
  });
});

describe('QC checks', () => {
  const g = grid([20, 20, 10], [2, 2, 5]);
  const facts = (name: string, m: Mask): RoiFacts => ({ source: 'Manual', name, ...measureMask(m) });

  it('warns about an ROI touching the first slice or the in-plane border, passes one inside', () => {
    const inside = facts('GTV', boxMask(g, [5, 9], [5, 9], [3, 6]));
    expect(inside.edge).toEqual({ firstSlice: false, lastSlice: false, inPlaneBorder: false });
    expect(checkRoiCropping([inside])).toMatchObject([{ status: 'PASS' }]);
    const cut = facts('LUNG', boxMask(g, [5, 9], [5, 9], [0, 4]));
    const side = facts('BODY', boxMask(g, [0, 9], [5, 9], [3, 6]));
    const found = checkRoiCropping([inside, cut, side]);
    expect(found.map((c) => [c.subject, c.status])).toEqual([['Manual/LUNG', 'WARN'], ['Manual/BODY', 'WARN']]);
    expect(found[0].detail).toMatch(/first slice/);
    expect(found[1].detail).toMatch(/in-plane/);
  });

  it('fails an empty ROI and warns about one under 1 cm³', () => {
    const empty = facts('EMPTY', boxMask(g, [1, 0], [0, 0], [0, 0]));
    const tiny = facts('TINY', boxMask(g, [5, 6], [5, 6], [4, 4])); // 4 voxels x 20 mm³ = 0.08 cm³
    const big = facts('BIG', boxMask(g, [5, 14], [5, 14], [3, 6])); // 400 voxels = 8 cm³
    const found = checkRoiSizes([empty, tiny, big]);
    expect(found.map((c) => [c.subject, c.status])).toEqual([['Manual/EMPTY', 'FAIL'], ['Manual/TINY', 'WARN']]);
    expect(found[1].detail).toMatch(/0\.080 cm³/);
    expect(worstStatus(found)).toBe('FAIL');
    expect(checkRoiSizes([big])).toMatchObject([{ status: 'PASS' }]);
  });

  it('fails a structure set or a dose in another frame of reference than the CT', () => {
    const ok = checkFrameOfReference({ ct: { frameOfReferenceUid: '1.2.3' }, structureSets: [{ source: 'Manual', file: 'RS.dcm', frameOfReferenceUid: '1.2.3' }], doses: [{ file: 'RD.dcm', frameOfReferenceUid: '1.2.3' }] });
    expect(ok).toMatchObject([{ status: 'PASS' }]);
    const bad = checkFrameOfReference({ ct: { frameOfReferenceUid: '1.2.3' }, structureSets: [{ source: 'Manual', file: 'RS.dcm', frameOfReferenceUid: '9.9' }], doses: [{ file: 'RD.dcm', frameOfReferenceUid: '8.8' }] });
    expect(bad.map((c) => c.status)).toEqual(['FAIL', 'FAIL']);
    expect(bad[0].detail).toMatch(/9\.9 differs from the CT's 1\.2\.3/);
    expect(checkFrameOfReference({ ct: null, structureSets: [], doses: [] })).toMatchObject([{ status: 'FAIL', detail: 'the course has no CT' }]);
  });

  it('judges dose grid coverage from the DVH curves', () => {
    const rois = ['A', 'B', 'C', 'D'].map((n) => facts(n, boxMask(g, [5, 9], [5, 9], [3, 6])));
    const curves = [
      { roi: 'A', source: 'Manual', cumulativeCm3: [2, 1] },
      { roi: 'B__partial', source: 'Manual', cumulativeCm3: [2, 1] },
      { roi: 'C__partial', source: 'Manual', cumulativeCm3: [0, 0] },
    ];
    expect(checkDoseCoverage(rois, curves).map((c) => [c.subject, c.status])).toEqual([['Manual/B', 'WARN'], ['Manual/C', 'FAIL'], ['Manual/D', 'WARN']]);
    expect(checkDoseCoverage(rois.slice(0, 1), curves)).toMatchObject([{ status: 'PASS' }]);
    expect(checkDoseCoverage(rois, null)).toMatchObject([{ status: 'WARN', detail: expect.stringMatching(/run the dvh stage/) }]);
  });
});

describe('batch --stage organize,segmentation,dvh,qc', () => {
  it('writes qc_report.html with its snapshots and _RESULTS/qc_reports.csv', async () => {
    const work = tempDir('rtp-qc-');
    const root = path.join(work, 'in');
    const out = path.join(work, 'out');
    await plannedPatient(root, 'QC1');
    const r = spawnSync(process.execPath, [CLI, '--dicom-root', root, '--outdir', out, '--logs', path.join(work, 'logs'), '--stage', 'organize,segmentation,dvh,qc'], {
      encoding: 'utf8',
      timeout: 180_000,
      env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json' },
    });
    expect(r.status, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const course = path.join(out, 'QC1', '2025-03');
    const html = readFileSync(path.join(course, 'qc_report.html'), 'utf8');
    for (const plane of ['axial', 'coronal', 'sagittal']) {
      expect(html).toContain(`src="qc_${plane}.png"`);
      const img = decodePng(path.join(course, `qc_${plane}.png`));
      expect(img.width).toBeGreaterThan(100);
      // The planes go through the PTV (the target), drawn in its RTSTRUCT colour (red).
      let red = 0;
      for (let p = 0; p < img.width * img.height; p++) if (img.data[3 * p] === 255 && img.data[3 * p + 1] === 0 && img.data[3 * p + 2] === 0) red++;
      expect(red, plane).toBeGreaterThan(20);
    }
    // Coronal: 64 x 6 mm across, 20 x 10 mm down.
    const cor = decodePng(path.join(course, 'qc_coronal.png'));
    expect(Math.abs(cor.width / cor.height - 384 / 200)).toBeLessThan(0.03);
    expect(html).toMatch(/<svg[^>]*class="dvh"/);
    expect(html).toMatch(/PTV \(Manual\)/);
    expect(html.length).toBeLessThan(100_000); // flat DVH runs are not written point by point
    expect(html).toMatch(/frame_of_reference<\/td><td>[^<]*<\/td><td>all 2 structure set\(s\) and 1 dose\(s\) share/);
    expect(html).not.toMatch(/(src|href)="https?:/); // self-contained: nothing fetched from elsewhere
    // Structure volumes: the PTV box is 60 x 60 mm over 10 slices of 10 mm = 360 cm³.
    expect(html).toMatch(/PTV<\/td><td>Manual<\/td><td class="num">360\.00</);
    const [head, ...rows] = readFileSync(path.join(out, '_RESULTS', 'qc_reports.csv'), 'utf8').replace(/^\uFEFF/, '').trim().split('\r\n');
    expect(head).toBe('PatientID,CourseID,status,failed_checks,report');
    expect(rows).toHaveLength(1);
    const [pid, cid, status, failed, report] = rows[0].split(',');
    expect([pid, cid, report]).toEqual(['QC1', '2025-03', path.join('QC1', '2025-03', 'qc_report.html')]);
    // The built-in BODY runs through every slice of the phantom: cropped by the scan range, a warning.
    expect(html).toMatch(/roi_cropped<\/td><td>RS_auto\/BODY<\/td><td>touches the first slice and the last slice/);
    expect(status).toBe('WARN');
    expect(failed).toBe('');
    expect(existsSync(path.join(out, '_RESULTS', 'qc_reports.xlsx'))).toBe(true);
    const meta = JSON.parse(readFileSync(path.join(course, 'case_metadata.json'), 'utf8')) as { qc: { status: string; report: string } };
    expect(meta.qc).toMatchObject({ status, report: 'qc_report.html' });
  }, 200_000);
});
