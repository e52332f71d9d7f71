import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { openCtSeries } from '../dicom/ct-series-reader.js';
import { writeNifti, writeNiftiSlices, type NiftiWriteOptions } from '../io/nifti.js';
import { segmentBuiltinRunsAsync } from '../segment/builtin.js';
import { paintSlice, voxelsOf, type RunMask } from '../segment/runs.js';
import { runsToContours } from '../geometry/contours.js';
import { encodeRtStruct, type RtStructRoiInput } from '../rt/rtstruct.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { Vec3 } from '../geometry/types.js';
import type { RtStructBranding } from '../rt/branding.js';
import type { ResultLineage } from '../rt/lineage.js';

/** What the auto-segmentation of one study needs: the CT files and the study's identity. */
export interface AutoSegmentInput {
  ctFiles: string[];
  courseDir: string;
  study: {
    studyInstanceUid: string;
    seriesInstanceUid: string;
    frameOfReferenceUid: string;
    patientId: string;
    patientName: string;
    studyDate: string;
    studyTime: string;
    accessionNumber: string;
  };
  /** Makes the RTSTRUCT deterministic: a re-run of the same job writes the same bytes and UIDs. */
  seed: string;
  /** Result branding of RS_auto (routing: node.result_branding or the study's route). */
  branding?: RtStructBranding;
  /** The result's series and version (src/rt/lineage.ts); absent = a series derived from the seed, instance 1. */
  lineage?: ResultLineage;
}

export interface AutoSegmentResult {
  rsAuto: string;
  sopInstanceUid: string;
  rois: { name: string; voxels: number; volumeCm3: number; contours: number }[];
  /** Wall time per step. The NIfTI writes (write_*) run in the background, overlapping the other
   *  steps; wait_nifti is how long the end still waited for them. */
  timingsMs: Record<string, number>;
}

/** zlib level of the CT NIfTI: level 1 is several times faster than the default for ~10% more bytes. */
const CT_NIFTI: NiftiWriteOptions = { gzipLevel: 1 };
/** Masks: run-length deflate, as fast as level 1 and smaller on long runs of 0 and 1. */
const MASK_NIFTI: NiftiWriteOptions = { gzipLevel: 1, gzipStrategy: 'rle' };

/**
 * The built-in auto-segmentation of a CT series into the course folder (contract layout):
 * NIFTI/ct.nii.gz, Segmentation/builtin/<ROI>.nii.gz and RS_auto.dcm.
 *
 * The NIfTI files are compressed on the libuv threadpool while this thread segments, contours and
 * writes the RTSTRUCT, which therefore does not wait for them; the result comes when all are written.
 */
export async function autoSegment(input: AutoSegmentInput): Promise<AutoSegmentResult> {
  const timingsMs: Record<string, number> = {};
  const time = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    timingsMs[name] = Math.round(performance.now() - t0);
    return r;
  };
  const background = new BackgroundWrites(timingsMs);
  try {
    const ct = await time('read_ct', async () => {
      const reading = await openCtSeries(input.ctFiles);
      await fsp.mkdir(path.join(input.courseDir, 'NIFTI'), { recursive: true });
      // The CT's NIfTI starts on the first slices while the others are still being read.
      const ctNifti = path.join(input.courseDir, 'NIFTI', 'ct.nii.gz');
      background.start('write_ct_nifti', () => writeNifti(ctNifti, reading.series, { ...CT_NIFTI, slicesReady: reading.slicesReady }));
      return reading.done;
    });
    const segDir = path.join(input.courseDir, 'Segmentation', 'builtin');
    await fsp.mkdir(segDir, { recursive: true });
    const structures = await time('segment', () => segmentBuiltinRunsAsync(ct));
    const voxelCm3 = (ct.grid.spacingMm[0] * ct.grid.spacingMm[1] * ct.grid.spacingMm[2]) / 1000;
    const rois: RtStructRoiInput[] = [];
    const summary: AutoSegmentResult['rois'] = [];
    for (const [n, s] of structures.entries()) {
      // One mask file after the other: each holds a few blocks of painted slices while it is written.
      background.after(`write_${s.name}`, () => writeNiftiSlices(path.join(segDir, `${s.name}.nii.gz`), maskSource(s.runs), MASK_NIFTI));
      const bySlice = await time(`contour_${s.name}`, () => runsToContours(s.runs));
      const contours = bySlice.flatMap((cs, k) => cs.map((c) => ({ ...c, sopInstanceUid: ct.sliceSopInstanceUids[k] })));
      const voxels = voxelsOf(s.runs);
      summary.push({ name: s.name, voxels, volumeCm3: Math.round(voxels * voxelCm3 * 100) / 100, contours: contours.length });
      rois.push({ number: n + 1, name: s.name, color: s.color, interpretedType: s.type, algorithm: 'AUTOMATIC', contours });
    }
    const normal = ct.grid.direction[2] as Vec3;
    const zOf = (k: number) => {
      const o = ct.grid.originMm;
      const p: Vec3 = [o[0] + k * ct.grid.spacingMm[2] * normal[0], o[1] + k * ct.grid.spacingMm[2] * normal[1], o[2] + k * ct.grid.spacingMm[2] * normal[2]];
      return p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
    };
    const rs = await time('write_rtstruct', async () => {
      const encoded = encodeRtStruct({
        ct: {
          ...input.study,
          sliceNormal: normal,
          slices: ct.sliceSopInstanceUids.map((uid, k) => ({ sopInstanceUid: uid, sopClassUid: SOP_CLASS.CtImage, zMm: zOf(k) })),
        },
        rois,
        seriesDescription: 'rtpipeline auto-segmentation (builtin)',
        structureSetLabel: 'RS_auto',
        seriesInstanceUid: input.lineage?.seriesInstanceUid,
        instanceNumber: input.lineage?.instanceNumber,
        deterministic: { seed: input.seed },
        branding: input.branding,
      });
      await writeFileAtomic(path.join(input.courseDir, 'RS_auto.dcm'), encoded.bytes);
      return encoded;
    });
    await time('wait_nifti', () => background.done());
    return { rsAuto: path.join(input.courseDir, 'RS_auto.dcm'), sopInstanceUid: rs.sopInstanceUid, rois: summary, timingsMs };
  } finally {
    // On a failure, let the writes already started finish (or fail) before the caller goes on.
    await background.settled();
  }
}

/** A mask's NIfTI voxels painted slice by slice from its runs. */
function maskSource(runs: RunMask) {
  return { grid: runs.grid, datatype: 'uint8' as const, slice: (k: number, out: Uint8Array) => paintSlice(runs, k, out) };
}

/** File writes running while the job goes on; each records its wall time, and the first error wins. */
class BackgroundWrites {
  private readonly pending: Promise<void>[] = [];
  /** The last write started with after(). */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly timingsMs: Record<string, number>) {}

  /** Starts a write now. */
  start(name: string, write: () => Promise<void>): void {
    this.track(this.timed(name, write));
  }

  /** Starts a write when the previous `after` write is done (whether it succeeded or not). */
  after(name: string, write: () => Promise<void>): void {
    this.chain = this.track(this.chain.catch(() => undefined).then(() => this.timed(name, write)));
  }

  private async timed(name: string, write: () => Promise<void>): Promise<void> {
    const t0 = performance.now();
    await write();
    this.timingsMs[name] = Math.round(performance.now() - t0);
  }

  private track(p: Promise<void>): Promise<void> {
    p.catch(() => undefined); // awaited in done(); this only keeps it from counting as unhandled meanwhile
    this.pending.push(p);
    return p;
  }

  async done(): Promise<void> {
    await Promise.all(this.pending);
  }

  async settled(): Promise<void> {
    await Promise.allSettled(this.pending);
  }
}
