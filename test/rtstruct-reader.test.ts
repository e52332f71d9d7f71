import { IBSI_DIR } from './helpers/ibsi.js';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetWriter } from '../src/dicom/dataset-writer.js';
import { part10Header } from '../src/dicom/part10.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { TS } from '../src/dicom/transfer-syntax.js';
import { circleContour, ringContours } from '../src/dvh/synthetic-plan.js';
import type { Contour } from '../src/geometry/types.js';
import { parseDecimalStrings, parseRtStruct, RtStructFormatError, RtStructUnsupported } from '../src/rt/rtstruct-reader.js';
import { buildRtStruct, readRtStruct, readRtStructWithDcmjs, type RtStruct, type RtStructCtSlice, type RtStructRoiInput } from '../src/rt/rtstruct.js';

const IBSI_RTSTRUCT = `${IBSI_DIR}/ibsi_1_ct_radiomics_phantom/dicom/mask/DCM_RS_00060.dcm`;

let work: string;
/** Our writer's output: explicit VR LE, undefined-length sequences and items. */
let ours: Buffer;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'rtstruct-reader-'));
  ours = buildRtStruct(plan());
  await writeFile(join(work, 'ours.dcm'), ours);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Five axial slices; ROIs with many points, rings (outer + hole), a hole placed by z, an empty ROI. */
function plan(): Parameters<typeof buildRtStruct>[0] {
  const zs = [-5, -2.5, 0, 2.5, 5];
  const slices: RtStructCtSlice[] = zs.map((zMm, k) => ({ sopInstanceUid: `2.25.7700${k}`, sopClassUid: SOP_CLASS.CtImage, zMm }));
  const named = (cs: Contour[]) => cs.map((c, k) => ({ ...c, sopInstanceUid: k % 2 === 0 ? slices[zs.indexOf(c.points[2])].sopInstanceUid : undefined }));
  const roi = (number: number, name: string, contours: Contour[], interpretedType: RtStructRoiInput['interpretedType'] = 'ORGAN'): RtStructRoiInput => ({
    number, name, color: [number * 20, 255 - number, 7], interpretedType, algorithm: 'AUTOMATIC', contours,
  });
  return {
    ct: { studyInstanceUid: '2.25.11', seriesInstanceUid: '2.25.12', frameOfReferenceUid: '2.25.13', patientId: 'RDR-1', patientName: 'READER^TEST', slices },
    rois: [
      roi(1, 'BODY', zs.map((z) => ({ ...circleContour([0.3, -1.7], 120.123456789, z, 400), sopInstanceUid: slices[zs.indexOf(z)].sopInstanceUid })), 'EXTERNAL'),
      roi(2, 'RING', named(ringContours([10, 20], 15, 7.5, zs, 64))),
      roi(3, 'Rückenmark é', [circleContour([-3.25, 4e-7], 1e-3, 0, 5), circleContour([1e5 / 3, -2e4 / 7], 2, 2.5, 3)]),
      roi(9, 'EMPTY', []),
    ],
    seriesDescription: 'reader test',
    deterministic: { seed: 'rtstruct-reader' },
  };
}

function dcmconv(args: string[], input: string, output: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('dcmconv', [...args, input, output], (err, _stdout, stderr) => (err ? reject(new Error(`dcmconv ${args.join(' ')}: ${stderr || err.message}`)) : resolve()));
  });
}

/** dcmconv's copy of our file, in the named encoding. */
async function converted(name: string, args: string[]): Promise<Buffer> {
  const out = join(work, `${name}.dcm`);
  await dcmconv(args, join(work, 'ours.dcm'), out);
  return readFile(out);
}

/** The points as raw bytes, so that equality is bit for bit (-0 vs 0, NaN payloads, last ulp). */
function pointBytes(rs: RtStruct): string[] {
  return rs.rois.flatMap((r) => r.contours.map((c) => Buffer.from(c.points.buffer, c.points.byteOffset, c.points.byteLength).toString('hex')));
}

/** The direct reader gives the dcmjs reader's RtStruct, deep equal and with bit-identical points. */
function expectSameAsDcmjs(buf: Buffer): RtStruct {
  const direct = parseRtStruct(buf);
  const reference = readRtStructWithDcmjs(buf);
  expect(direct).toEqual(reference);
  expect(pointBytes(direct)).toEqual(pointBytes(reference));
  expect(readRtStruct(buf)).toEqual(reference);
  return direct;
}

describe('parseRtStruct gives the same RtStruct as the dcmjs reader', () => {
  it("for our writer's output (explicit VR, undefined lengths, holes, an empty ROI, latin1 names)", () => {
    const rs = expectSameAsDcmjs(ours);
    expect(rs.rois.map((r) => [r.number, r.name, r.contours.length])).toEqual([[1, 'BODY', 5], [2, 'RING', 10], [3, 'Rückenmark é', 2], [9, 'EMPTY', 0]]);
    expect(rs.rois[1].contours.filter((c) => c.sopInstanceUid !== undefined)).toHaveLength(10); // holes placed by z
    expect(rs.rois[0].contours[0].points).toHaveLength(1200);
    expect(rs.referencedSopInstanceUids).toHaveLength(5);
  });

  it('for explicit VR with defined-length sequences and items (dcmconv +te +e)', async () => {
    const buf = await converted('explicit-defined', ['+te', '+e']);
    expect(buf.indexOf(Buffer.from([0xfe, 0xff, 0xdd, 0xe0]))).toBe(-1); // no sequence delimiters left
    expect(expectSameAsDcmjs(buf)).toEqual(parseRtStruct(ours));
  });

  it('for implicit VR, defined lengths (dcmconv +ti)', async () => {
    const buf = await converted('implicit-defined', ['+ti']);
    expect(expectSameAsDcmjs(buf)).toEqual(parseRtStruct(ours));
  });

  it('for implicit VR, undefined lengths (dcmconv +ti -e)', async () => {
    const buf = await converted('implicit-undefined', ['+ti', '-e']);
    expect(buf.indexOf(Buffer.from([0xfe, 0xff, 0xdd, 0xe0]))).toBeGreaterThan(0);
    expect(expectSameAsDcmjs(buf)).toEqual(parseRtStruct(ours));
  });

  it.skipIf(!existsSync(IBSI_RTSTRUCT))("for the IBSI CT phantom's RTSTRUCT (implicit VR, written by CERR/dcm4che)", async () => {
    const rs = expectSameAsDcmjs(await readFile(IBSI_RTSTRUCT));
    expect(rs.rois.map((r) => r.name)).toEqual(['GTV-1']);
    expect(rs.rois[0].contours.length).toBe(26);
    expect(rs.rois[0].contours.every((c) => c.points.length > 0 && c.points.length % 3 === 0)).toBe(true);
  });

  it('for Decimal String edge cases: exponents, signs, spaces, empty values, junk, too many digits', () => {
    const contourData = [
      '1e5\\-2.5E-3\\+7\\ 1.25 \\-0\\.5\\5.\\1E+02\\-.75\\0.000001\\2.5e-22\\3e22',
      '1\\\\3', // an empty value in the middle: 0
      '\\', // two empty values
      ' ', // one empty value: no points at all
      '', // zero-length
      '12345678.9012345\\1234567890123456\\0.1234567890123456\\-9007199254740993', // beyond 15 digits
      '1e300\\1e-300\\4.9e-324\\1e400\\-1e400\\0e999\\1.5e-30', // far exponents
      '1x2\\abc\\1.2.3\\--1\\e5\\.\\+\\1e\\ - 3\\1 000', // what dcmjs filters, or Number() rejects
      '0\\-0.0\\+0e5\\007.50\\1.\\99999999999999.9\\0.30000000000000004',
    ];
    const buf = handWritten({ contourData, roiNumber: ' 7 ', color: '255\\ 0\\+10', roiName: ' A\\B  ' });
    const rs = expectSameAsDcmjs(buf);
    const points = rs.rois[0].contours.map((c) => Array.from(c.points));
    expect(points[0]).toEqual([1e5, -2.5e-3, 7, 1.25, -0, 0.5, 5, 100, -0.75, 1e-6, 2.5e-22, 3e22]);
    expect(Object.is(points[0][4], -0)).toBe(true);
    expect(points[1]).toEqual([1, 0, 3]);
    expect(points[2]).toEqual([0, 0]);
    expect(points[3]).toEqual([]);
    expect(points[4]).toEqual([]);
    expect(points[6]).toEqual([1e300, 1e-300, 5e-324, Infinity, -Infinity, 0, 1.5e-30]);
    expect(points[7]).toEqual([12, 0, NaN, NaN, NaN, NaN, NaN, NaN, -3, 1000]);
    expect(rs.rois[0]).toMatchObject({ number: 7, name: 'A,B', color: [255, 0, 10] });
  });

  it('drops a sequence item with no content, as dcmjs does', () => {
    const buf = handWritten({ contourData: ['1\\2\\3'], emptyContourItem: true });
    expect(expectSameAsDcmjs(buf).rois[0].contours).toHaveLength(1);
  });
});

describe('parseDecimalStrings', () => {
  /** dcmjs's DS formatting (DecimalString.applyFormatting) followed by the reader's Number(). */
  const reference = (text: string): number[] => {
    const values = text.split('\\').map((v) => {
      const kept = v.trim().replace(/[^0-9.\\\-+e]/gi, '');
      return kept === '' ? null : Number(kept);
    });
    return values.length === 1 && values[0] === null ? [] : values.map(Number);
  };

  it('matches Number() bit for bit on 20,000 values written in many ways', () => {
    let seed = 12345;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const forms = [
      (x: number) => x.toFixed(Math.floor(random() * 7)),
      (x: number) => String(x),
      (x: number) => x.toExponential(Math.floor(random() * 10)),
      (x: number) => x.toPrecision(1 + Math.floor(random() * 16)),
      (x: number) => x.toExponential(Math.floor(random() * 10)).toUpperCase().replace('E+', 'E'),
      (x: number) => `+${x.toFixed(2)}`.replace('+-', '-'),
      (x: number) => ` ${x.toFixed(3)}  `,
    ];
    const texts: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const magnitude = 10 ** (Math.floor(random() * 16) - 8);
      const x = (random() - 0.5) * 2 * magnitude;
      texts.push(forms[i % forms.length](x).slice(0, 16));
    }
    const text = texts.join('\\');
    const bytes = Buffer.from(`XX${text}YY`, 'latin1');
    const parsed = parseDecimalStrings(bytes, 2, bytes.length - 2); // a range inside a larger buffer
    const expected = Float64Array.from(reference(text));
    expect(parsed.length).toBe(20_000);
    expect(Buffer.from(parsed.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });
});

describe('character sets', () => {
  it('decodes ISO_IR 192 (UTF-8) names, in sequences too, where dcmjs reads nested items as latin1', () => {
    const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('latin1'); // DatasetWriter writes latin1 bytes
    const buf = handWritten({ contourData: ['1\\2\\3'], charset: 'ISO_IR 192', patientId: utf8('Müller-Ωμέγα'), roiName: utf8('Rückenmark 脊髓') });
    const direct = parseRtStruct(buf);
    expect(direct.patientId).toBe('Müller-Ωμέγα');
    expect(direct.rois[0].name).toBe('Rückenmark 脊髓');
    const reference = readRtStructWithDcmjs(buf);
    expect(reference.patientId).toBe('Müller-Ωμέγα');
    expect({ ...direct, rois: direct.rois.map((r) => ({ ...r, name: '' })) }).toEqual({ ...reference, rois: reference.rois.map((r) => ({ ...r, name: '' })) });
  });

  it('leaves other character sets to the dcmjs reader', () => {
    const buf = handWritten({ contourData: ['1\\2\\3'], charset: 'ISO_IR 144', roiName: 'x' });
    expect(() => parseRtStruct(buf)).toThrow(RtStructUnsupported);
    expect(readRtStruct(buf)).toEqual(readRtStructWithDcmjs(buf));
  });
});

describe('other encodings and damaged files', () => {
  it.each([
    ['deflated', ['+td']],
    ['big endian', ['+tb']],
  ])('leaves %s files to the dcmjs reader, with the same result', async (name, args) => {
    const buf = await converted(name.replace(' ', '-'), args);
    expect(() => parseRtStruct(buf)).toThrow(RtStructUnsupported);
    const rs = readRtStruct(buf);
    expect(rs).toEqual(readRtStructWithDcmjs(buf));
    expect(rs).toEqual(parseRtStruct(ours));
  });

  it('says where a truncated file ends', () => {
    const cut = ours.subarray(0, ours.length - 5000);
    expect(() => parseRtStruct(cut)).toThrow(RtStructFormatError);
    expect(() => readRtStruct(cut)).toThrow(/past the end of the file|ends inside/);
  });

  it('rejects a file that is not an RT Structure Set', () => {
    const buf = handWritten({ contourData: ['1\\2\\3'], sopClass: SOP_CLASS.CtImage });
    expect(() => parseRtStruct(buf)).toThrow(`not an RT Structure Set: SOP class ${SOP_CLASS.CtImage}`);
  });
});

interface HandWritten {
  contourData: string[];
  charset?: string;
  sopClass?: string;
  patientId?: string;
  roiNumber?: string;
  roiName?: string;
  color?: string;
  emptyContourItem?: boolean;
}

/** A minimal RTSTRUCT with raw element text, for values our writer would never produce. */
function handWritten(o: HandWritten): Buffer {
  const w = new DatasetWriter();
  const roiNumber = o.roiNumber ?? '1';
  w.text(0x00080005, 'CS', o.charset ?? 'ISO_IR 100')
    .text(0x00080016, 'UI', o.sopClass ?? SOP_CLASS.RtStructureSet)
    .text(0x00080018, 'UI', '2.25.555')
    .text(0x00080060, 'CS', 'RTSTRUCT')
    .text(0x00100020, 'LO', o.patientId ?? 'EDGE')
    .text(0x0020000d, 'UI', '2.25.1')
    .text(0x0020000e, 'UI', '2.25.2')
    .text(0x30060002, 'SH', 'EDGES ')
    .sequence(0x30060020, [0], (item) =>
      item.text(0x30060022, 'IS', roiNumber).text(0x30060024, 'UI', '2.25.3').text(0x30060026, 'LO', o.roiName ?? 'ROI').text(0x30060036, 'CS', 'MANUAL '),
    )
    .sequence(0x30060039, [0], (item) => {
      item.text(0x3006002a, 'IS', o.color ?? '1\\2\\3');
      const contours = o.emptyContourItem ? ['', ...o.contourData] : o.contourData;
      item.sequence(0x30060040, contours, (c, data, k) => {
        if (o.emptyContourItem && k === 0) return;
        c.text(0x30060042, 'CS', 'CLOSED_PLANAR').text(0x30060050, 'DS', data);
      });
      item.text(0x30060084, 'IS', roiNumber);
    })
    .sequence(0x30060080, [0], (item) => item.text(0x30060084, 'IS', roiNumber).text(0x300600a4, 'CS', 'ORGAN'));
  const header = part10Header({ sopClassUid: o.sopClass ?? SOP_CLASS.RtStructureSet, sopInstanceUid: '2.25.555', transferSyntaxUid: TS.ExplicitVRLittleEndian });
  return Buffer.concat([header, w.take()]);
}
