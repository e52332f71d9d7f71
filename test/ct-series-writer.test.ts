import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeriesInstances, writeCtSeries, type CtSeriesResult, type PatientPosition } from '../src/dicom/ct-series-writer.js';
import { AIR_HU, NOISE_AMPLITUDE_HU, thoraxAnatomy, thoraxSlices, type PhantomSpec } from '../src/phantom/thorax.js';

// Rows != columns and anisotropic pixels, so a transposed or mis-flipped axis cannot go unnoticed.
const SPEC: PhantomSpec = { rows: 48, columns: 64, slices: 8, pixelSpacingMm: [10, 7.8125], sliceThicknessMm: 5 };

const CASES: { transferSyntax: 'explicit' | 'implicit'; patientPosition: PatientPosition }[] = [
  { transferSyntax: 'explicit', patientPosition: 'HFS' },
  { transferSyntax: 'implicit', patientPosition: 'HFS' },
  { transferSyntax: 'explicit', patientPosition: 'FFS' },
  { transferSyntax: 'implicit', patientPosition: 'HFP' },
  { transferSyntax: 'explicit', patientPosition: 'FFP' },
];

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'ct-series-writer-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** Runs a tool to completion; the DICOM validators exit non-zero on findings, which we assert on instead. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (_err, stdout, stderr) => resolve(stdout + stderr));
  });
}

/** One file as DCMTK sees it: keyword -> value text (+L: untruncated), and the pixel data dcmdump extracted. */
interface Dump {
  values: Map<string, string>;
  pixels: Buffer;
}

const DUMP_LINE = /^\([0-9a-f]{4},[0-9a-f]{4}\) \w\w (.*?)\s+#\s*\d+,\s*\d+ (\w+)$/;

async function dcmdump(file: string, rawDir: string): Promise<Dump> {
  const values = new Map<string, string>();
  for (const line of (await run('dcmdump', ['-q', '+L', '+W', rawDir, file])).split('\n')) {
    const m = DUMP_LINE.exec(line);
    if (m) values.set(m[2], m[1].replace(/^\[(.*)\]$/, '$1'));
  }
  const rawPath = values.get('PixelData')?.replace(/^=/, '');
  if (!rawPath) throw new Error(`no PixelData in ${file}`);
  return { values, pixels: await readFile(rawPath) };
}

function numbers(dump: Dump, keyword: string): number[] {
  return (dump.values.get(keyword) ?? '').split('\\').map(Number);
}

/** HU at a patient (x, y) point, located the way any reader must: through IPP, IOP and PixelSpacing. */
function huAtPatientPoint(dump: Dump, [x, y]: [number, number]): number {
  const [ippX, ippY] = numbers(dump, 'ImagePositionPatient');
  const iop = numbers(dump, 'ImageOrientationPatient');
  const [rowSpacing, colSpacing] = numbers(dump, 'PixelSpacing');
  const [columns] = numbers(dump, 'Columns');
  const col = Math.round((x - ippX) / (iop[0] * colSpacing));
  const row = Math.round((y - ippY) / (iop[4] * rowSpacing));
  const stored = dump.pixels.readUInt16LE((row * columns + col) * 2);
  return stored * numbers(dump, 'RescaleSlope')[0] + numbers(dump, 'RescaleIntercept')[0];
}

describe.each(CASES)('CT series, $transferSyntax VR, $patientPosition', ({ transferSyntax, patientPosition }) => {
  let series: CtSeriesResult;
  let dumps: Dump[]; // in InstanceNumber order

  beforeAll(async () => {
    const dir = join(workDir, `${transferSyntax}-${patientPosition}`);
    series = await writeCtSeries(dir, { patientId: 'PH001', patientName: 'PHANTOM^THORAX', transferSyntax, patientPosition, phantom: SPEC });
    dumps = await Promise.all(series.files.map((f) => dcmdump(f, dir)));
    dumps.sort((a, b) => numbers(a, 'InstanceNumber')[0] - numbers(b, 'InstanceNumber')[0]);
  });

  it('writes one file per slice', () => {
    expect(series.files).toHaveLength(SPEC.slices);
    expect(dumps.map((d) => numbers(d, 'InstanceNumber')[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('passes dciodvfy on every file', async () => {
    for (const file of series.files) {
      const lines = (await run('dciodvfy', [file])).split('\n');
      const warnings = lines.filter((l) => l.includes('Warning'));
      if (warnings.length > 0) console.warn(basename(file), warnings);
      expect(lines.filter((l) => l.includes('Error'))).toEqual([]);
    }
  });

  it('is consistent across the series (dcentvfy)', async () => {
    const output = await run('dcentvfy', series.files);
    expect(output.split('\n').filter((l) => l.includes('Error'))).toEqual([]);
  });

  it('encodes the data set in the transfer syntax named by the meta header', async () => {
    const expectedUid = transferSyntax === 'implicit' ? '=LittleEndianImplicit' : '=LittleEndianExplicit';
    for (const d of dumps) expect(d.values.get('TransferSyntaxUID')).toBe(expectedUid);

    // The first data set element is (0008,0005) SpecificCharacterSet, 10 bytes. After its tag comes
    // either the VR "CS" (explicit) or directly a 4-byte length (implicit).
    const bytes = await readFile(series.files[0]);
    const dataSetStart = 144 + bytes.readUInt32LE(140); // preamble + DICM + group length element
    expect(bytes.readUInt32LE(dataSetStart)).toBe(0x0005_0008);
    if (transferSyntax === 'implicit') expect(bytes.readUInt32LE(dataSetStart + 4)).toBe(10);
    else expect(bytes.toString('latin1', dataSetStart + 4, dataSetStart + 6)).toBe('CS');
  });

  it('carries the expected identifiers and image attributes', () => {
    for (const d of dumps) {
      expect(d.values.get('SOPClassUID')).toBe('=CTImageStorage');
      expect(d.values.get('Modality')).toBe('CT');
      expect(d.values.get('StudyInstanceUID')).toBe(series.studyInstanceUid);
      expect(d.values.get('SeriesInstanceUID')).toBe(series.seriesInstanceUid);
      expect(d.values.get('FrameOfReferenceUID')).toBe(series.frameOfReferenceUid);
      expect(d.values.get('PatientPosition')).toBe(patientPosition);
      expect(d.values.get('RescaleIntercept')).toBe('-1024');
      expect(numbers(d, 'Rows')).toEqual([SPEC.rows]);
      expect(numbers(d, 'Columns')).toEqual([SPEC.columns]);
      expect(numbers(d, 'PixelSpacing')).toEqual(SPEC.pixelSpacingMm);
      expect(d.pixels.length).toBe(SPEC.rows * SPEC.columns * 2);
    }
  });

  it('steps ImagePositionPatient along +z by the slice thickness', () => {
    const positions = dumps.map((d) => numbers(d, 'ImagePositionPatient'));
    for (let i = 1; i < positions.length; i++) {
      expect(positions[i][0]).toBe(positions[0][0]);
      expect(positions[i][1]).toBe(positions[0][1]);
      expect(positions[i][2] - positions[i - 1][2]).toBeCloseTo(SPEC.sliceThicknessMm, 6);
    }
    dumps.forEach((d, i) => expect(numbers(d, 'SliceLocation')[0]).toBeCloseTo(positions[i][2], 6));
  });

  it('puts the anatomy at the same patient coordinates whatever the patient position', () => {
    /** HU at structure `name`'s centre, shifted by `fractionOfRadiusX` of its x radius. */
    const at = (name: string, fractionOfRadiusX = 0) => {
      const s = thoraxAnatomy(SPEC).find((e) => e.name === name)!;
      const slice = dumps.reduce((best, d) =>
        Math.abs(numbers(d, 'SliceLocation')[0] - s.centreMm[2]) < Math.abs(numbers(best, 'SliceLocation')[0] - s.centreMm[2]) ? d : best,
      );
      return huAtPatientPoint(slice, [s.centreMm[0] + fractionOfRadiusX * s.radiiMm[0], s.centreMm[1]]);
    };
    const tolerance = NOISE_AMPLITUDE_HU + 1;
    expect(Math.abs(at('lung_right') - -850)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(at('lung_left') - -850)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(at('spine') - 700)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(at('heart') - 50)).toBeLessThanOrEqual(tolerance);
    // The heart reaches further to the patient's left than to the right, the phantom's one left-right
    // asymmetry: a wrongly mirrored image would put right lung here. (The spine checks front-back.)
    expect(Math.abs(at('heart', 0.8) - 50)).toBeLessThanOrEqual(tolerance);
    // The grid corners lie outside the elliptical body.
    const [x, y] = [numbers(dumps[0], 'ImagePositionPatient')[0], numbers(dumps[0], 'ImagePositionPatient')[1]];
    expect(Math.abs(huAtPatientPoint(dumps[0], [x, y]) - AIR_HU)).toBeLessThanOrEqual(tolerance);
  });

  it.runIf(patientPosition === 'HFS')('stores exactly the phantom HU + 1024 as pixel data', () => {
    let i = 0;
    for (const slice of thoraxSlices(SPEC)) {
      const expected = Buffer.alloc(slice.hu.length * 2);
      slice.hu.forEach((hu, p) => expected.writeUInt16LE(hu + 1024, p * 2));
      expect(dumps[i++].pixels.equals(expected)).toBe(true);
    }
  });
});

describe('thorax phantom', () => {
  it('is reproducible and differs between slices', () => {
    const first = [...thoraxSlices(SPEC)];
    const again = [...thoraxSlices(SPEC)];
    first.forEach((s, i) => expect(Buffer.from(s.hu.buffer).equals(Buffer.from(again[i].hu.buffer))).toBe(true));
    const lungPixels = (hu: Int16Array) => hu.filter((v) => v < -700).length;
    expect(new Set(first.map((s) => lungPixels(s.hu))).size).toBeGreaterThan(SPEC.slices / 2);
  });

  it('generates and encodes a 512x512x200 series (timing, not asserted)', () => {
    const big: PhantomSpec = { rows: 512, columns: 512, slices: 200, pixelSpacingMm: [0.9765625, 0.9765625], sliceThicknessMm: 1.5 };
    let t0 = performance.now();
    let count = 0;
    for (const _slice of thoraxSlices(big)) count++;
    const generateMs = performance.now() - t0;
    t0 = performance.now();
    let bytes = 0;
    for (const instance of ctSeriesInstances({ patientId: 'PH001', patientName: 'PHANTOM^THORAX', phantom: big })) bytes += instance.bytes.length;
    const encodeMs = performance.now() - t0;
    console.log(
      `phantom 512x512x${count}: generated in ${generateMs.toFixed(0)} ms; ` +
        `generated+encoded ${(bytes / 2 ** 20).toFixed(0)} MiB of DICOM in ${encodeMs.toFixed(0)} ms`,
    );
    expect(count).toBe(200);
  });
});
