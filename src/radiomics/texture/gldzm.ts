/**
 * IBSI grey level distance zone matrix (GLDZM, VMDZ) features: `_2D`, `_2_5D`, `_3D`.
 *
 * Zones are the GLSZM zones (intensity mask, 26- / 8-connected). A zone's distance is the smallest
 * distance to the ROI edge over its voxels, measured on the morphological mask (IBSI: re-segmentation
 * holes must not create edges) in city-block steps: 6-connected in 3-D, 4-connected within a slice in
 * 2-D; voxels on the edge have distance 1, and outside the image counts as outside the ROI.
 */
import type { Discretised, Features, RoiVolume } from '../types.js';
import { type Offset, type PaddedRoi, padRoi, putFeatures, stride } from './glcm.js';
import { countMatrixFeatures } from './glrlm.js';
import { type Zones, findZones, perSliceAndMerged, zoneMatrix } from './glszm.js';

const FACE_NEIGHBOURS_3D: readonly Offset[] = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];
const FACE_NEIGHBOURS_2D: readonly Offset[] = FACE_NEIGHBOURS_3D.slice(0, 4);

/** City-block distance of every morphological-mask voxel to the nearest voxel outside it (edge = 1). */
export function edgeDistanceMap(roi: PaddedRoi, inPlane: boolean): Int32Array {
  const { morph } = roi;
  const steps = Int32Array.from(inPlane ? FACE_NEIGHBOURS_2D : FACE_NEIGHBOURS_3D, (o) => stride(roi, o));
  const dist = new Int32Array(morph.length);
  const queue = new Int32Array(morph.length);
  let tail = 0;
  const [nx, ny, nz] = roi.dims;
  // The padding is empty, so every mask voxel is interior to the box and its neighbours are valid indices.
  for (let z = roi.pad; z < nz - roi.pad; z++) {
    for (let y = roi.pad; y < ny - roi.pad; y++) {
      let v = roi.pad + nx * (y + ny * z);
      for (let x = roi.pad; x < nx - roi.pad; x++, v++) {
        if (!morph[v]) continue;
        for (let s = 0; s < steps.length; s++) {
          if (morph[v + steps[s]]) continue;
          dist[v] = 1;
          queue[tail++] = v;
          break;
        }
      }
    }
  }
  for (let head = 0; head < tail; head++) {
    const u = queue[head];
    for (let s = 0; s < steps.length; s++) {
      const w = u + steps[s];
      if (morph[w] && !dist[w]) {
        dist[w] = dist[u] + 1;
        queue[tail++] = w;
      }
    }
  }
  return dist;
}

/** Per zone, the smallest edge distance over its voxels. */
function zoneDistances(zones: Zones, dist: Int32Array): Int32Array {
  const out = new Int32Array(zones.count).fill(0x7fffffff);
  for (let v = 0; v < zones.label.length; v++) {
    const id = zones.label[v];
    if (id && dist[v] < out[id - 1]) out[id - 1] = dist[v];
  }
  return out;
}

const GLDZM_NAMES = [
  'dzm_sde', 'dzm_lde', 'dzm_lgze', 'dzm_hgze', 'dzm_sdlge', 'dzm_sdhge', 'dzm_ldlge', 'dzm_ldhge',
  'dzm_glnu', 'dzm_glnu_norm', 'dzm_zdnu', 'dzm_zdnu_norm', 'dzm_z_perc', 'dzm_gl_var', 'dzm_zd_var',
  'dzm_zd_entr',
] as const;

/** GLDZM features: `_2D`, `_2_5D`, `_3D`. */
export function gldzmFeatures(vol: RoiVolume, disc: Discretised): Features {
  const roi = padRoi(vol, disc, 1);
  const out: Features = new Map();
  const ng = roi.nLevels;
  const distanceFeatures = (zones: Zones, distance: Int32Array) => (from: number, to: number) =>
    countMatrixFeatures(zoneMatrix(zones, distance, from, to, ng));

  const zones2 = findZones(roi, true);
  const { perSlice, merged } = perSliceAndMerged(zones2, distanceFeatures(zones2, zoneDistances(zones2, edgeDistanceMap(roi, true))));
  putFeatures(out, GLDZM_NAMES, '_2D', perSlice);
  putFeatures(out, GLDZM_NAMES, '_2_5D', merged);
  const zones3 = findZones(roi, false);
  const d3 = zoneDistances(zones3, edgeDistanceMap(roi, false));
  putFeatures(out, GLDZM_NAMES, '_3D', zones3.count ? distanceFeatures(zones3, d3)(0, zones3.count) : null);
  return out;
}
