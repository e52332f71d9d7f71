/**
 * Checks an RT Structure Set against the study it will be attached to, before it leaves the node.
 * A treatment planning system that imports a structure set whose references do not resolve, or
 * whose contours lie off the images, either refuses it or (worse) attaches it wrongly; so a
 * failure here holds the result back for a person to look at. Pure: the caller reads the files
 * and the index (result-validation.ts).
 *
 * Checks:
 *  - the referenced series is a CT series of the study, on the structure set's frame of reference;
 *  - every Contour Image reference (series level and per contour) is a CT instance of the study,
 *    with the SOP class the index has for it;
 *  - every contour point lies inside the image stack: in-plane within the grid plus half a pixel,
 *    along the normal within the slice range plus half a slice;
 *  - ROI numbers are unique, and every ROI Contour item names a Structure Set ROI.
 */
import type { CtSliceHeader } from '../geometry/ct-volume.js';
import type { Vec3 } from '../geometry/types.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import type { RtStruct } from './rtstruct.js';

export interface StudyInstanceRef {
  sopInstanceUid: string;
  sopClassUid: string;
  seriesInstanceUid: string;
}

export interface CtSeriesGeometry {
  seriesInstanceUid: string;
  frameOfReferenceUid: string | null;
  slices: readonly CtSliceHeader[];
}

export interface RtStructValidationContext {
  /** Every instance of the study in the index. */
  instances: readonly StudyInstanceRef[];
  /** The CT series the structure set references, with its slice geometry; undefined when the
   *  study has no such CT series. */
  ctSeries: CtSeriesGeometry | undefined;
}

/** Slack for coordinates written as decimal strings (DS keeps ~6 decimals; 1 µm is far below a voxel). */
const EPSILON_MM = 1e-3;
/** Failures listed at most; the rest are counted, so the error text stays readable. */
const MAX_LISTED = 12;

/** The failures (empty when the structure set may be sent). */
export function validateRtStruct(rs: RtStruct, ctx: RtStructValidationContext): string[] {
  const failures: string[] = [];

  // ROI numbering.
  const seen = new Set<number>();
  for (const roi of rs.rois) {
    if (seen.has(roi.number)) failures.push(`ROI number ${roi.number} is used by more than one Structure Set ROI ("${roi.name}")`);
    seen.add(roi.number);
  }
  for (const ref of rs.roiContourReferences ?? []) {
    if (!seen.has(ref)) failures.push(`an ROI Contour item references ROI number ${Number.isNaN(ref) ? '(missing)' : ref}, which no Structure Set ROI defines`);
  }

  // The referenced CT series and its frame of reference.
  const ct = ctx.ctSeries;
  if (!rs.referencedFrameOfReferenceUid) failures.push('the structure set names no Referenced Frame of Reference');
  if (!ct) {
    failures.push(`the referenced series ${rs.referencedSeriesInstanceUid || '(none)'} is not a CT series of the study`);
  } else {
    if (rs.referencedFrameOfReferenceUid && ct.frameOfReferenceUid !== rs.referencedFrameOfReferenceUid) {
      failures.push(`Referenced Frame of Reference ${rs.referencedFrameOfReferenceUid} does not match the CT series' Frame of Reference ${ct.frameOfReferenceUid ?? '(none)'}`);
    }
    for (const roi of rs.rois) {
      if (roi.frameOfReferenceUid && ct.frameOfReferenceUid && roi.frameOfReferenceUid !== ct.frameOfReferenceUid) {
        failures.push(`ROI ${roi.number} "${roi.name}" is on Frame of Reference ${roi.frameOfReferenceUid}, not the CT's ${ct.frameOfReferenceUid}`);
      }
    }
  }

  // Contour Image references.
  const byUid = new Map(ctx.instances.map((i) => [i.sopInstanceUid, i]));
  const dangling = new Set<string>();
  const check = (uid: string, sopClassUid: string | undefined, where: string) => {
    const inst = byUid.get(uid);
    if (!inst) {
      if (!dangling.has(uid)) failures.push(`${where} references SOP instance ${uid}, which is not an instance of the study`);
      dangling.add(uid);
    } else if (inst.sopClassUid !== SOP_CLASS.CtImage) {
      failures.push(`${where} references ${uid}, which is not a CT image (SOP class ${inst.sopClassUid})`);
    } else if (sopClassUid !== undefined && sopClassUid !== inst.sopClassUid) {
      failures.push(`${where} gives SOP class ${sopClassUid || '(none)'} for ${uid}, which is ${inst.sopClassUid}`);
    } else if (ct && inst.seriesInstanceUid !== ct.seriesInstanceUid) {
      failures.push(`${where} references ${uid} of series ${inst.seriesInstanceUid}, not the referenced CT series ${ct.seriesInstanceUid}`);
    }
  };
  for (const uid of rs.referencedSopInstanceUids) check(uid, undefined, 'the Contour Image Sequence of the referenced series');
  for (const roi of rs.rois) {
    for (const [n, c] of roi.contours.entries()) {
      if (c.sopInstanceUid !== undefined) check(c.sopInstanceUid, c.sopClassUid, `ROI ${roi.number} "${roi.name}" contour ${n + 1}`);
    }
  }

  // Contour points inside the image stack.
  if (ct && ct.slices.length > 0) {
    const stack = stackOf(ct.slices);
    for (const roi of rs.rois) {
      let outside = 0;
      let first: string | undefined;
      for (const [n, c] of roi.contours.entries()) {
        const p = c.points;
        for (let i = 0; i + 2 < p.length; i += 3) {
          const why = stack.outside([p[i], p[i + 1], p[i + 2]]);
          if (why) {
            outside += 1;
            first ??= `contour ${n + 1} point (${fmt(p[i])}, ${fmt(p[i + 1])}, ${fmt(p[i + 2])}) ${why}`;
          }
        }
      }
      if (outside > 0) failures.push(`ROI ${roi.number} "${roi.name}": ${outside} contour point(s) outside the CT image stack, e.g. ${first}`);
    }
  }

  if (failures.length > MAX_LISTED) return [...failures.slice(0, MAX_LISTED), `… and ${failures.length - MAX_LISTED} more`];
  return failures;
}

const fmt = (v: number) => String(Math.round(v * 100) / 100);
const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];

/** The image stack's extent: slices sorted along the normal, each with its own in-plane origin. */
function stackOf(slices: readonly CtSliceHeader[]) {
  const iop = slices[0].imageOrientationPatient;
  const row: Vec3 = [iop[0], iop[1], iop[2]];
  const col: Vec3 = [iop[3], iop[4], iop[5]];
  const normal: Vec3 = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const sorted = slices.map((s) => ({ s, d: dot(s.imagePositionPatient, normal) })).sort((a, b) => a.d - b.d);
  const gaps = sorted.slice(1).map((x, k) => x.d - sorted[k].d).sort((a, b) => a - b);
  // The slice spacing (median gap); a single slice has only its thickness.
  const spacing = gaps.length > 0 ? gaps[Math.floor(gaps.length / 2)] : (slices[0].sliceThickness ?? 0);
  const lo = sorted[0].d - spacing / 2 - EPSILON_MM;
  const hi = sorted[sorted.length - 1].d + spacing / 2 + EPSILON_MM;
  return {
    outside(p: Vec3): string | undefined {
      const d = dot(p, normal);
      if (d < lo || d > hi) return `is ${fmt(d)} mm along the slice normal, outside the slices' ${fmt(lo + EPSILON_MM)}..${fmt(hi - EPSILON_MM)} mm`;
      // The nearest slice's own grid (slices of one series normally share x/y; this allows a shift).
      let k = 0;
      for (let j = 1; j < sorted.length; j++) if (Math.abs(sorted[j].d - d) < Math.abs(sorted[k].d - d)) k = j;
      const s = sorted[k].s;
      const rel = sub(p, s.imagePositionPatient);
      const [rowSpacing, colSpacing] = s.pixelSpacing;
      const u = dot(rel, row);
      const v = dot(rel, col);
      const uMax = (s.columns - 1) * colSpacing + colSpacing / 2;
      const vMax = (s.rows - 1) * rowSpacing + rowSpacing / 2;
      if (u < -colSpacing / 2 - EPSILON_MM || u > uMax + EPSILON_MM || v < -rowSpacing / 2 - EPSILON_MM || v > vMax + EPSILON_MM) {
        return `lies outside the ${s.columns}x${s.rows} image grid of slice ${s.sopInstanceUid}`;
      }
      return undefined;
    },
  };
}
