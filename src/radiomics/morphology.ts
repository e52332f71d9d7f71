/**
 * IBSI morphological features (family HCUG): shape of the morphological mask, measured on a
 * marching-cubes mesh, its convex hull and the voxel-centre PCA, plus the few morphology features
 * that also look at intensities (integrated intensity, centre of mass shift, Moran's I, Geary's C).
 *
 * Pure computation on a RoiVolume. Internally everything works on the bounding box of the mask,
 * zero padded by one voxel so the mesh is closed.
 */
import type { Features, RoiVolume, Vec3 } from './types.js';

/** Computes every IBSI morphology feature that has a reference value (the oriented bounding box and
 *  minimum-volume enclosing ellipsoid densities have none and are left out). */
export function morphologyFeatures(vol: RoiVolume): Features {
  const box = maskBox(vol.morphMask, vol.dims);
  if (!box) throw new Error('morphologyFeatures: the morphological mask is empty; check the ROI label and the mask interpolation settings');
  const [sx, sy, sz] = vol.spacingMm;
  const mesh = marchingCubesMesh(vol.morphMask, vol.dims, box, vol.spacingMm);
  const hull = convexHull(mesh.hullCandidates);
  const V = mesh.volumeMm3;
  const A = mesh.areaMm2;

  const f: Features = new Map();
  f.set('morph_volume', V);
  f.set('morph_vol_approx', box.count * sx * sy * sz);
  f.set('morph_area_mesh', A);
  f.set('morph_av', A / V);
  f.set('morph_comp_1', V / (Math.sqrt(Math.PI) * A ** 1.5));
  f.set('morph_comp_2', (36 * Math.PI * V * V) / (A * A * A));
  f.set('morph_sph_dispr', A / Math.cbrt(36 * Math.PI * V * V));
  f.set('morph_sphericity', Math.cbrt(36 * Math.PI * V * V) / A);
  f.set('morph_asphericity', Math.cbrt((A * A * A) / (36 * Math.PI * V * V)) - 1);

  const { volumeMm3: hullV, areaMm2: hullA, diameterMm } = hullMeasures(hull, mesh.hullCandidates, vol.spacingMm);
  f.set('morph_diam', diameterMm);

  const axes = principalAxes(vol.morphMask, vol.dims, box, vol.spacingMm);
  const [l1, l2, l3] = axes; // descending
  f.set('morph_pca_maj_axis', 4 * Math.sqrt(l1));
  f.set('morph_pca_min_axis', 4 * Math.sqrt(l2));
  f.set('morph_pca_least_axis', 4 * Math.sqrt(l3));
  f.set('morph_pca_elongation', Math.sqrt(l2 / l1));
  f.set('morph_pca_flatness', Math.sqrt(l3 / l1));

  const [ex, ey, ez] = mesh.extentMm;
  f.set('morph_vol_dens_aabb', V / (ex * ey * ez));
  f.set('morph_area_dens_aabb', A / (2 * (ex * ey + ex * ez + ey * ez)));

  // Approximate enclosing ellipsoid: semi-axes 2*sqrt(lambda) (IBSI).
  const a = 2 * Math.sqrt(l1);
  const b = 2 * Math.sqrt(l2);
  const c = 2 * Math.sqrt(l3);
  f.set('morph_vol_dens_aee', V / ((4 * Math.PI * a * b * c) / 3));
  f.set('morph_area_dens_aee', A / ellipsoidArea(a, b, c));

  f.set('morph_vol_dens_conv_hull', V / hullV);
  f.set('morph_area_dens_conv_hull', A / hullA);

  const intensity = intensityMeasures(vol);
  f.set('morph_integ_int', V * intensity.mean);
  f.set('morph_com', centreOfMassShift(vol, box));
  const spatial = spatialAutocorrelation(vol);
  f.set('morph_moran_i', spatial.moranI);
  f.set('morph_geary_c', spatial.gearyC);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Bounding box

/** Inclusive voxel bounds of a mask and its voxel count. */
export interface MaskBox {
  lo: Vec3;
  hi: Vec3;
  count: number;
}

export function maskBox(mask: ArrayLike<number>, dims: Vec3): MaskBox | undefined {
  const [nx, ny, nz] = dims;
  const lo: Vec3 = [nx, ny, nz];
  const hi: Vec3 = [-1, -1, -1];
  let count = 0;
  for (let k = 0, idx = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, idx++) {
        if (!mask[idx]) continue;
        count++;
        if (i < lo[0]) lo[0] = i;
        if (i > hi[0]) hi[0] = i;
        if (j < lo[1]) lo[1] = j;
        if (j > hi[1]) hi[1] = j;
        if (k < lo[2]) lo[2] = k;
        if (k > hi[2]) hi[2] = k;
      }
    }
  }
  return count === 0 ? undefined : { lo, hi, count };
}

// ---------------------------------------------------------------------------------------------
// Marching cubes

/*
 * Cube corners are numbered c = x + 2y + 4z (x, y, z in {0, 1}); edges are numbered by axis, then by
 * the two other coordinates. The case table is derived here, not copied: on a binary field at
 * iso-level 0.5 every vertex is an edge midpoint, so a case is fixed by how each face's crossings are
 * joined. A face with four crossings (inside corners on a diagonal) is resolved by separating the
 * inside corners, the same on both cubes sharing the face, so the mesh is closed and consistently
 * oriented. Loops of more than three crossings are not always planar, so their triangulation changes
 * area and volume: each is triangulated with the largest total area on the unit cube (the topology
 * must not depend on the spacing). That is the choice that reproduces the IBSI reference mesh values,
 * which come from Lewiner's tables (scikit-image), on the digital phantom and on configurations A-E;
 * the smallest-area choice misses sphericity by 0.5 %.
 */

interface Edge {
  axis: number;
  from: number; // corner with the lower coordinate along `axis`
  to: number;
}

const EDGES: Edge[] = (() => {
  const edges: Edge[] = [];
  for (let axis = 0; axis < 3; axis++) {
    for (let c = 0; c < 8; c++) if (!(c & (1 << axis))) edges.push({ axis, from: c, to: c | (1 << axis) });
  }
  return edges;
})();

const cornerXyz = (c: number): Vec3 => [c & 1, (c >> 1) & 1, (c >> 2) & 1];

/** Edge midpoint in doubled cube units (integers 0..2). */
const EDGE_MID2: Vec3[] = EDGES.map((e) => {
  const p = cornerXyz(e.from).map((v) => 2 * v) as Vec3;
  p[e.axis] += 1;
  return p;
});

/** Triangles per case, as triples of edge numbers, oriented with normals pointing out of the mask. */
type CaseTable = Int8Array[];

function buildCaseTable(): CaseTable {
  const table: CaseTable = [];
  for (let cs = 0; cs < 256; cs++) table.push(caseTriangles(cs));
  return table;
}

function caseTriangles(cs: number): Int8Array {
  const inside = (c: number) => (cs >> c) & 1;
  const crossing = EDGES.map((e) => inside(e.from) !== inside(e.to));
  const next = new Int8Array(12).fill(-1); // oriented loop successor of each crossed edge
  for (let axis = 0; axis < 3; axis++) {
    for (let side = 0; side < 2; side++) {
      for (const [p, q] of faceSegments(cs, axis, side)) orientSegment(cs, axis, side, p, q, next);
    }
  }
  const tris: number[] = [];
  const seen = new Array<boolean>(12).fill(false);
  for (let start = 0; start < 12; start++) {
    if (!crossing[start] || seen[start]) continue;
    const loop: number[] = [];
    for (let e = start; !seen[e]; e = next[e]) {
      if (e < 0) throw new Error(`marching cubes table: open loop in case ${cs}`);
      seen[e] = true;
      loop.push(e);
    }
    tris.push(...maximumAreaTriangulation(loop));
  }
  return Int8Array.from(tris);
}

/** The edges of a face in cyclic order, with the corner each pair of consecutive edges shares. */
function faceCycle(axis: number, side: number): { corners: number[]; edges: number[] } {
  const [u, v] = [0, 1, 2].filter((a) => a !== axis);
  const base = side << axis;
  const corners = [base, base | (1 << u), base | (1 << u) | (1 << v), base | (1 << v)];
  const edges = corners.map((c, n) => {
    const d = corners[(n + 1) % 4];
    const lo = Math.min(c, d);
    const hi = Math.max(c, d);
    return EDGES.findIndex((e) => e.from === lo && e.to === hi);
  });
  return { corners, edges };
}

/** Pairs of crossed edges joined on one face. */
function faceSegments(cs: number, axis: number, side: number): [number, number][] {
  const { corners, edges } = faceCycle(axis, side);
  const inside = corners.map((c) => (cs >> c) & 1);
  const crossed = edges.filter((_, n) => inside[n] !== inside[(n + 1) % 4]);
  if (crossed.length === 2) return [[crossed[0], crossed[1]]];
  if (crossed.length === 0) return [];
  // Ambiguous face: cut off each inside corner by joining the two face edges that meet at it.
  const segments: [number, number][] = [];
  for (let n = 0; n < 4; n++) if (inside[n]) segments.push([edges[(n + 3) % 4], edges[n]]);
  return segments;
}

/** Orients segment p-q so the loop runs counter-clockwise seen from outside the mask. */
function orientSegment(cs: number, axis: number, side: number, p: number, q: number, next: Int8Array): void {
  // g: in-face direction from inside to outside corners; f: outward normal of the cube face.
  const g = [0, 0, 0];
  for (const e of [p, q]) {
    const dir = (cs >> EDGES[e].from) & 1 ? 1 : -1;
    g[EDGES[e].axis] += dir;
  }
  const f = [0, 0, 0];
  f[axis] = side ? 1 : -1;
  const t = EDGE_MID2[q].map((v, n) => v - EDGE_MID2[p][n]);
  const gxt = cross(g, t);
  // The surface lies to the left of its boundary seen from its outward normal, i.e. inside the cube.
  const [a, b] = dot(gxt, f) < 0 ? [p, q] : [q, p];
  if (next[a] !== -1) throw new Error(`marching cubes table: edge ${a} has two successors`);
  next[a] = b;
}

function maximumAreaTriangulation(loop: number[]): number[] {
  const m = loop.length;
  const pos = loop.map((e) => EDGE_MID2[e]);
  const area = (i: number, j: number, k: number) => norm(cross(sub(pos[j], pos[i]), sub(pos[k], pos[i])));
  const cost: number[][] = Array.from({ length: m }, () => new Array<number>(m).fill(0));
  const split: number[][] = Array.from({ length: m }, () => new Array<number>(m).fill(-1));
  for (let len = 2; len < m; len++) {
    for (let i = 0; i + len < m; i++) {
      const j = i + len;
      cost[i][j] = -Infinity;
      for (let k = i + 1; k < j; k++) {
        const c = cost[i][k] + cost[k][j] + area(i, k, j);
        if (c > cost[i][j] + 1e-12) {
          cost[i][j] = c;
          split[i][j] = k;
        }
      }
    }
  }
  const out: number[] = [];
  const emit = (i: number, j: number) => {
    if (j - i < 2) return;
    const k = split[i][j];
    out.push(loop[i], loop[k], loop[j]);
    emit(i, k);
    emit(k, j);
  };
  emit(0, m - 1);
  return out;
}

let caseTableCache: CaseTable | undefined;
function caseTable(): CaseTable {
  caseTableCache ??= buildCaseTable();
  return caseTableCache;
}

export interface MaskMesh {
  volumeMm3: number;
  areaMm2: number;
  /** Axis-aligned extent of the mesh vertices, mm. */
  extentMm: Vec3;
  /** Mesh vertices that can be on the convex hull, in doubled voxel units (integers): x, y, z triplets. */
  hullCandidates: Int32Array;
  triangles: number;
}

/** Marching cubes at level 0.5 on the zero-padded mask box: volume (divergence theorem) and area. */
export function marchingCubesMesh(mask: Uint8Array, dims: Vec3, box: MaskBox, spacing: Vec3): MaskMesh {
  const [nx, ny] = dims;
  // Padded copy of the box: one empty voxel on every side.
  const px = box.hi[0] - box.lo[0] + 3;
  const py = box.hi[1] - box.lo[1] + 3;
  const pz = box.hi[2] - box.lo[2] + 3;
  const pad = new Uint8Array(px * py * pz);
  for (let k = box.lo[2]; k <= box.hi[2]; k++) {
    for (let j = box.lo[1]; j <= box.hi[1]; j++) {
      const src = box.lo[0] + nx * (j + ny * k);
      const dst = 1 + px * (j - box.lo[1] + 1 + py * (k - box.lo[2] + 1));
      for (let i = 0; i <= box.hi[0] - box.lo[0]; i++) pad[dst + i] = mask[src + i] ? 1 : 0;
    }
  }
  const table = caseTable();
  const [sx, sy, sz] = spacing;
  const hx = sx / 2;
  const hy = sy / 2;
  const hz = sz / 2;
  const corner = [0, 1, px, px + 1, px * py, px * py + 1, px * py + px, px * py + px + 1];
  const ex = EDGE_MID2.map((p) => p[0]);
  const ey = EDGE_MID2.map((p) => p[1]);
  const ez = EDGE_MID2.map((p) => p[2]);
  // Extremes along x of the vertices on each (y, z) line of the doubled lattice: only these can be hull vertices.
  const ly = 2 * py;
  const lz = 2 * pz;
  const minX = new Int32Array(ly * lz).fill(0x7fffffff);
  const maxX = new Int32Array(ly * lz).fill(-1);
  let vol6 = 0;
  let area2 = 0;
  let triangles = 0;
  for (let z = 0; z < pz - 1; z++) {
    for (let y = 0; y < py - 1; y++) {
      for (let x = 0; x < px - 1; x++) {
        const base = x + px * (y + py * z);
        let cs = 0;
        for (let c = 0; c < 8; c++) cs |= pad[base + corner[c]] << c;
        if (cs === 0 || cs === 255) continue;
        const tris = table[cs];
        for (let t = 0; t < tris.length; t += 3) {
          const a = tris[t];
          const b = tris[t + 1];
          const c = tris[t + 2];
          const ax = (2 * x + ex[a]) * hx, ay = (2 * y + ey[a]) * hy, az = (2 * z + ez[a]) * hz;
          const bx = (2 * x + ex[b]) * hx, by = (2 * y + ey[b]) * hy, bz = (2 * z + ez[b]) * hz;
          const cx = (2 * x + ex[c]) * hx, cy = (2 * y + ey[c]) * hy, cz = (2 * z + ez[c]) * hz;
          vol6 += ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx);
          const ux = bx - ax, uy = by - ay, uz = bz - az;
          const vx = cx - ax, vy = cy - ay, vz = cz - az;
          const nx2 = uy * vz - uz * vy, ny2 = uz * vx - ux * vz, nz2 = ux * vy - uy * vx;
          area2 += Math.sqrt(nx2 * nx2 + ny2 * ny2 + nz2 * nz2);
          triangles++;
        }
        for (let e = 0; e < 12; e++) {
          const ed = EDGES[e];
          if (((cs >> ed.from) & 1) === ((cs >> ed.to) & 1)) continue;
          const X = 2 * x + ex[e];
          const line = 2 * y + ey[e] + ly * (2 * z + ez[e]);
          if (X < minX[line]) minX[line] = X;
          if (X > maxX[line]) maxX[line] = X;
        }
      }
    }
  }
  const cand: number[] = [];
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (let Z = 0; Z < lz; Z++) {
    for (let Y = 0; Y < ly; Y++) {
      const line = Y + ly * Z;
      if (maxX[line] < 0) continue;
      cand.push(minX[line], Y, Z);
      if (maxX[line] !== minX[line]) cand.push(maxX[line], Y, Z);
      lo[0] = Math.min(lo[0], minX[line]);
      hi[0] = Math.max(hi[0], maxX[line]);
      lo[1] = Math.min(lo[1], Y);
      hi[1] = Math.max(hi[1], Y);
      lo[2] = Math.min(lo[2], Z);
      hi[2] = Math.max(hi[2], Z);
    }
  }
  return {
    volumeMm3: Math.abs(vol6) / 6,
    areaMm2: area2 / 2,
    extentMm: [((hi[0] - lo[0]) * sx) / 2, ((hi[1] - lo[1]) * sy) / 2, ((hi[2] - lo[2]) * sz) / 2],
    hullCandidates: Int32Array.from(cand),
    triangles,
  };
}

// ---------------------------------------------------------------------------------------------
// Convex hull (3-D quickhull, exact integer predicates)

/*
 * The points lie on a lattice, so many are coplanar. With integer coordinates (|x| < 2^16) every
 * orientation determinant is exact in a double, which makes the coplanar cases safe: a point exactly
 * on a face plane is never "visible", so it is simply absorbed.
 */

/** Hull triangles as vertex-index triples (indices into the point array), counter-clockwise seen from outside. */
export function convexHull(points: Int32Array): Int32Array {
  const n = points.length / 3;
  const P = points;
  const orient = (a: number, b: number, c: number, d: number): number => {
    const ax = P[3 * a], ay = P[3 * a + 1], az = P[3 * a + 2];
    const ux = P[3 * b] - ax, uy = P[3 * b + 1] - ay, uz = P[3 * b + 2] - az;
    const vx = P[3 * c] - ax, vy = P[3 * c + 1] - ay, vz = P[3 * c + 2] - az;
    const wx = P[3 * d] - ax, wy = P[3 * d + 1] - ay, wz = P[3 * d + 2] - az;
    return wx * (uy * vz - uz * vy) + wy * (uz * vx - ux * vz) + wz * (ux * vy - uy * vx);
  };
  const simplex = initialSimplex(P, n, orient);
  if (!simplex) throw new Error(`convexHull: ${n} points, all on one plane or fewer than 4; a 3-D hull needs 4 points not on a plane (a closed mask mesh always has them)`);

  // Faces: vertex triples, alive flag, outside-point lists, and a directed-edge -> face map.
  const fa: number[] = [], fb: number[] = [], fc: number[] = [];
  const alive: boolean[] = [];
  const outside: number[][] = [];
  const edgeFace = new Map<number, number>();
  const key = (u: number, v: number) => u * n + v;
  const addFace = (a: number, b: number, c: number): number => {
    const id = fa.length;
    fa.push(a); fb.push(b); fc.push(c);
    alive.push(true);
    outside.push([]);
    edgeFace.set(key(a, b), id);
    edgeFace.set(key(b, c), id);
    edgeFace.set(key(c, a), id);
    return id;
  };
  const removeFace = (f: number) => {
    alive[f] = false;
    edgeFace.delete(key(fa[f], fb[f]));
    edgeFace.delete(key(fb[f], fc[f]));
    edgeFace.delete(key(fc[f], fa[f]));
  };

  const [s0, s1, s2, s3] = simplex;
  // Orient the tetrahedron so that s3 is behind (s0, s1, s2).
  const first = orient(s0, s1, s2, s3) < 0 ? [s0, s1, s2] : [s0, s2, s1];
  const [t0, t1, t2] = first;
  const initial = [
    addFace(t0, t1, t2),
    addFace(t0, s3, t1),
    addFace(t1, s3, t2),
    addFace(t2, s3, t0),
  ];
  const assign = (p: number, faces: number[]): void => {
    for (const f of faces) {
      if (orient(fa[f], fb[f], fc[f], p) > 0) {
        outside[f].push(p);
        return;
      }
    }
  };
  for (let p = 0; p < n; p++) if (p !== s0 && p !== s1 && p !== s2 && p !== s3) assign(p, initial);

  const stack = [...initial];
  while (stack.length) {
    const f0 = stack.pop()!;
    if (!alive[f0] || outside[f0].length === 0) continue;
    // Farthest point of this face's outside set.
    let apex = -1;
    let best = 0;
    for (const p of outside[f0]) {
      const d = orient(fa[f0], fb[f0], fc[f0], p);
      if (d > best) { best = d; apex = p; }
    }
    // Faces visible from the apex (connected), found by walking across edges.
    const visible: number[] = [f0];
    const isVisible = new Set<number>([f0]);
    const horizon: [number, number][] = [];
    for (let v = 0; v < visible.length; v++) {
      const f = visible[v];
      for (const [u, w] of [[fa[f], fb[f]], [fb[f], fc[f]], [fc[f], fa[f]]] as const) {
        const g = edgeFace.get(key(w, u))!;
        if (isVisible.has(g)) continue;
        if (orient(fa[g], fb[g], fc[g], apex) > 0) {
          isVisible.add(g);
          visible.push(g);
        }
      }
    }
    for (const f of visible) {
      for (const [u, w] of [[fa[f], fb[f]], [fb[f], fc[f]], [fc[f], fa[f]]] as const) {
        if (!isVisible.has(edgeFace.get(key(w, u))!)) horizon.push([u, w]);
      }
    }
    const orphans: number[] = [];
    for (const f of visible) {
      for (const p of outside[f]) if (p !== apex) orphans.push(p);
      outside[f] = [];
      removeFace(f);
    }
    const created = horizon.map(([u, w]) => addFace(u, w, apex));
    for (const p of orphans) assign(p, created);
    stack.push(...created);
  }
  const out: number[] = [];
  for (let f = 0; f < fa.length; f++) if (alive[f]) out.push(fa[f], fb[f], fc[f]);
  return Int32Array.from(out);
}

function initialSimplex(
  P: Int32Array,
  n: number,
  orient: (a: number, b: number, c: number, d: number) => number,
): [number, number, number, number] | undefined {
  if (n < 4) return undefined;
  // Two extreme points along x (ties by y, z), then the point farthest from their line, then from their plane.
  let a = 0;
  let b = 0;
  const less = (p: number, q: number) =>
    P[3 * p] - P[3 * q] || P[3 * p + 1] - P[3 * q + 1] || P[3 * p + 2] - P[3 * q + 2];
  for (let p = 1; p < n; p++) {
    if (less(p, a) < 0) a = p;
    if (less(p, b) > 0) b = p;
  }
  if (a === b) return undefined;
  const ux = P[3 * b] - P[3 * a], uy = P[3 * b + 1] - P[3 * a + 1], uz = P[3 * b + 2] - P[3 * a + 2];
  let c = -1;
  let best = 0;
  for (let p = 0; p < n; p++) {
    const vx = P[3 * p] - P[3 * a], vy = P[3 * p + 1] - P[3 * a + 1], vz = P[3 * p + 2] - P[3 * a + 2];
    const cx = uy * vz - uz * vy, cy = uz * vx - ux * vz, cz = ux * vy - uy * vx;
    const d = cx * cx + cy * cy + cz * cz;
    if (d > best) { best = d; c = p; }
  }
  if (c < 0) return undefined;
  let d = -1;
  best = 0;
  for (let p = 0; p < n; p++) {
    const o = Math.abs(orient(a, b, c, p));
    if (o > best) { best = o; d = p; }
  }
  return d < 0 ? undefined : [a, b, c, d];
}

/** Volume, area and largest vertex-to-vertex distance of a hull whose points are in doubled voxel units. */
export function hullMeasures(hull: Int32Array, points: Int32Array, spacing: Vec3): { volumeMm3: number; areaMm2: number; diameterMm: number } {
  const hx = spacing[0] / 2;
  const hy = spacing[1] / 2;
  const hz = spacing[2] / 2;
  const used = new Set<number>();
  let vol6 = 0;
  let area2 = 0;
  // Relative to the first vertex, to keep the signed volumes small.
  const o = hull[0];
  const px = (i: number) => (points[3 * i] - points[3 * o]) * hx;
  const py = (i: number) => (points[3 * i + 1] - points[3 * o + 1]) * hy;
  const pz = (i: number) => (points[3 * i + 2] - points[3 * o + 2]) * hz;
  for (let t = 0; t < hull.length; t += 3) {
    const a = hull[t], b = hull[t + 1], c = hull[t + 2];
    used.add(a).add(b).add(c);
    const ax = px(a), ay = py(a), az = pz(a);
    const bx = px(b), by = py(b), bz = pz(b);
    const cx = px(c), cy = py(c), cz = pz(c);
    vol6 += ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx);
    const ux = bx - ax, uy = by - ay, uz = bz - az;
    const vx = cx - ax, vy = cy - ay, vz = cz - az;
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    area2 += Math.sqrt(nx * nx + ny * ny + nz * nz);
  }
  const verts = [...used];
  const m = verts.length;
  const X = new Float64Array(m), Y = new Float64Array(m), Z = new Float64Array(m);
  verts.forEach((v, i) => { X[i] = px(v); Y[i] = py(v); Z[i] = pz(v); });
  let d2 = 0;
  for (let i = 0; i < m; i++) {
    const xi = X[i], yi = Y[i], zi = Z[i];
    for (let j = i + 1; j < m; j++) {
      const dx = X[j] - xi, dy = Y[j] - yi, dz = Z[j] - zi;
      const q = dx * dx + dy * dy + dz * dz;
      if (q > d2) d2 = q;
    }
  }
  return { volumeMm3: Math.abs(vol6) / 6, areaMm2: area2 / 2, diameterMm: Math.sqrt(d2) };
}

// ---------------------------------------------------------------------------------------------
// PCA and the approximate enclosing ellipsoid

/** Eigenvalues (descending) of the covariance of the mask's voxel centres in mm. The IBSI reference
 *  values use the unbiased (N - 1) covariance; pyradiomics divides by N (pass 'n' to reproduce it). */
export function principalAxes(mask: Uint8Array, dims: Vec3, box: MaskBox, spacing: Vec3, divisor: 'n-1' | 'n' = 'n-1'): Vec3 {
  const [nx, ny] = dims;
  let n = 0;
  let mx = 0, my = 0, mz = 0;
  let cxx = 0, cyy = 0, czz = 0, cxy = 0, cxz = 0, cyz = 0;
  // Running (Welford) moments: one pass, no cancellation for large coordinates.
  for (let k = box.lo[2]; k <= box.hi[2]; k++) {
    for (let j = box.lo[1]; j <= box.hi[1]; j++) {
      let idx = box.lo[0] + nx * (j + ny * k);
      for (let i = box.lo[0]; i <= box.hi[0]; i++, idx++) {
        if (!mask[idx]) continue;
        n++;
        const x = i * spacing[0], y = j * spacing[1], z = k * spacing[2];
        const dx = x - mx, dy = y - my, dz = z - mz;
        mx += dx / n; my += dy / n; mz += dz / n;
        const ex = x - mx, ey = y - my, ez = z - mz;
        cxx += dx * ex; cyy += dy * ey; czz += dz * ez;
        cxy += dx * ey; cxz += dx * ez; cyz += dy * ez;
      }
    }
  }
  const d = divisor === 'n' ? n : n - 1;
  const eig = symmetricEigenvalues([
    [cxx / d, cxy / d, cxz / d],
    [cxy / d, cyy / d, cyz / d],
    [cxz / d, cyz / d, czz / d],
  ]);
  return eig.sort((a, b) => b - a).map((v) => Math.max(v, 0)) as Vec3;
}

/** Eigenvalues of a symmetric 3x3 matrix by cyclic Jacobi rotations. */
function symmetricEigenvalues(m: number[][]): Vec3 {
  const a = m.map((r) => [...r]);
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[0][1] ** 2 + a[0][2] ** 2 + a[1][2] ** 2;
    const diag = a[0][0] ** 2 + a[1][1] ** 2 + a[2][2] ** 2;
    if (off <= 1e-30 * diag || off === 0) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      if (a[p][q] === 0) continue;
      const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const s = t * c;
      for (let k = 0; k < 3; k++) {
        const akp = a[k][p], akq = a[k][q];
        a[k][p] = c * akp - s * akq;
        a[k][q] = s * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[p][k], aqk = a[q][k];
        a[p][k] = c * apk - s * aqk;
        a[q][k] = s * apk + c * aqk;
      }
    }
  }
  return [a[0][0], a[1][1], a[2][2]];
}

/** Surface area of an ellipsoid with semi-axes a >= b >= c, by the Legendre series the IBSI manual
 *  gives (terms 0..20). It is the IBSI definition, not the exact area (for spheroids it is a few
 *  percent low), and the reference values use it. Written with Q_v = (alpha beta)^v P_v(x) so that
 *  spheroids (alpha or beta = 0) need no special case. */
export function ellipsoidArea(a: number, b: number, c: number): number {
  const alpha = Math.sqrt(Math.max(0, 1 - (b * b) / (a * a)));
  const beta = Math.sqrt(Math.max(0, 1 - (c * c) / (a * a)));
  const half = (alpha * alpha + beta * beta) / 2; // x * alpha * beta
  const ab2 = (alpha * beta) ** 2;
  let qPrev = 1; // Q_0
  let q = half; // Q_1
  let sum = qPrev / 1 + q / (1 - 4);
  for (let v = 1; v < 20; v++) {
    const qNext = ((2 * v + 1) * half * q - v * ab2 * qPrev) / (v + 1);
    qPrev = q;
    q = qNext;
    sum += q / (1 - 4 * (v + 1) ** 2);
  }
  return 4 * Math.PI * a * b * sum;
}

// ---------------------------------------------------------------------------------------------
// Intensity-based morphology

function intensityMeasures(vol: RoiVolume): { mean: number } {
  let sum = 0;
  let count = 0;
  const m = vol.intensityMask;
  for (let i = 0; i < m.length; i++) {
    if (m[i]) {
      sum += vol.intensity[i];
      count++;
    }
  }
  return { mean: count ? sum / count : NaN };
}

/** Distance (mm) between the mask's geometric centre (morphological mask) and its intensity-weighted
 *  centre (intensity mask). */
function centreOfMassShift(vol: RoiVolume, box: MaskBox): number {
  const [nx, ny, nz] = vol.dims;
  const [sx, sy, sz] = vol.spacingMm;
  let gx = 0, gy = 0, gz = 0;
  let wx = 0, wy = 0, wz = 0, w = 0;
  for (let k = 0, idx = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, idx++) {
        if (vol.morphMask[idx]) { gx += i; gy += j; gz += k; }
        if (vol.intensityMask[idx]) {
          const v = vol.intensity[idx];
          wx += v * i; wy += v * j; wz += v * k; w += v;
        }
      }
    }
  }
  const n = box.count;
  if (w === 0) return NaN;
  return Math.hypot((gx / n - wx / w) * sx, (gy / n - wy / w) * sy, (gz / n - wz / w) * sz);
}

// ---------------------------------------------------------------------------------------------
// Moran's I and Geary's C

/*
 * Both use inverse-distance weights w_ij = 1/|r_i - r_j| (mm) over every pair of intensity-mask
 * voxels. IBSI allows estimating them from random subsets for large ROIs, but subset estimates carry
 * sampling noise larger than some reference tolerances. Instead we compute them exactly: every pair
 * sum is a correlation of two voxel fields weighted by the kernel 1/|r|, which the FFT gives in
 * O(N log N). Small ROIs use the direct O(N^2) sum.
 */

const DIRECT_PAIR_LIMIT = 3000;

export interface SpatialAutocorrelation {
  moranI: number;
  gearyC: number;
}

export function spatialAutocorrelation(vol: RoiVolume, method: 'auto' | 'direct' | 'fft' = 'auto'): SpatialAutocorrelation {
  const box = maskBox(vol.intensityMask, vol.dims);
  if (!box || box.count < 2) return { moranI: NaN, gearyC: NaN };
  const useDirect = method === 'direct' || (method === 'auto' && box.count <= DIRECT_PAIR_LIMIT);
  const sums = useDirect ? pairSumsDirect(vol, box) : pairSumsFft(vol, box);
  const nv = box.count;
  // A single grey level means perfect autocorrelation (as MIRP reports it).
  if (!(sums.sumZ2 > 0)) return { moranI: 1, gearyC: 1 };
  return {
    moranI: (nv * sums.wzz) / (sums.w * sums.sumZ2),
    gearyC: ((nv - 1) * sums.wdd) / (2 * sums.w * sums.sumZ2),
  };
}

/** Sums over ordered pairs i != j of the intensity mask: w, w z_i z_j, w (z_i - z_j)^2; and sum z^2. */
interface PairSums {
  w: number;
  wzz: number;
  wdd: number;
  sumZ2: number;
}

function maskedDeviations(vol: RoiVolume, box: MaskBox): { pos: Float64Array; z: Float64Array } {
  const [nx, ny] = vol.dims;
  const [sx, sy, sz] = vol.spacingMm;
  const pos = new Float64Array(3 * box.count);
  const z = new Float64Array(box.count);
  let n = 0;
  let mean = 0;
  for (let k = box.lo[2]; k <= box.hi[2]; k++) {
    for (let j = box.lo[1]; j <= box.hi[1]; j++) {
      let idx = box.lo[0] + nx * (j + ny * k);
      for (let i = box.lo[0]; i <= box.hi[0]; i++, idx++) {
        if (!vol.intensityMask[idx]) continue;
        pos[3 * n] = i * sx; pos[3 * n + 1] = j * sy; pos[3 * n + 2] = k * sz;
        z[n] = vol.intensity[idx];
        mean += z[n];
        n++;
      }
    }
  }
  mean /= n;
  for (let i = 0; i < n; i++) z[i] -= mean;
  return { pos, z };
}

function pairSumsDirect(vol: RoiVolume, box: MaskBox): PairSums {
  const { pos, z } = maskedDeviations(vol, box);
  const n = z.length;
  let w = 0, wzz = 0, wdd = 0, sumZ2 = 0;
  for (let i = 0; i < n; i++) {
    sumZ2 += z[i] * z[i];
    const xi = pos[3 * i], yi = pos[3 * i + 1], zi = pos[3 * i + 2];
    for (let j = i + 1; j < n; j++) {
      const dx = pos[3 * j] - xi, dy = pos[3 * j + 1] - yi, dz = pos[3 * j + 2] - zi;
      const wij = 1 / Math.sqrt(dx * dx + dy * dy + dz * dz);
      const d = z[i] - z[j];
      w += wij;
      wzz += wij * z[i] * z[j];
      wdd += wij * d * d;
    }
  }
  return { w: 2 * w, wzz: 2 * wzz, wdd: 2 * wdd, sumZ2 };
}

/**
 * Pair sums by FFT. With K(r) = 1/|r| (K(0) = 0), zero padding to at least 2n - 1 per axis (no wrap),
 * and real symmetric K, Parseval gives sum_{i,j} K(r_j - r_i) a_i b_j = (1/N) sum_k K^(k) conj(A^(k)) B^(k).
 * Two complex FFTs carry the four real fields: z + i m and q + i K, with m the mask and q = z^2.
 */
function pairSumsFft(vol: RoiVolume, box: MaskBox): PairSums {
  const [nx, ny] = vol.dims;
  const b: Vec3 = [box.hi[0] - box.lo[0] + 1, box.hi[1] - box.lo[1] + 1, box.hi[2] - box.lo[2] + 1];
  const P = b.map((v) => nextPow2(2 * v - 1)) as Vec3;
  const N = P[0] * P[1] * P[2];
  const re1 = new Float64Array(N), im1 = new Float64Array(N);
  const re2 = new Float64Array(N), im2 = new Float64Array(N);
  let mean = 0;
  let count = 0;
  for (let k = 0; k < b[2]; k++) {
    for (let j = 0; j < b[1]; j++) {
      for (let i = 0; i < b[0]; i++) {
        const idx = box.lo[0] + i + nx * (box.lo[1] + j + ny * (box.lo[2] + k));
        if (vol.intensityMask[idx]) { mean += vol.intensity[idx]; count++; }
      }
    }
  }
  mean /= count;
  let sumZ2 = 0;
  for (let k = 0; k < b[2]; k++) {
    for (let j = 0; j < b[1]; j++) {
      for (let i = 0; i < b[0]; i++) {
        const idx = box.lo[0] + i + nx * (box.lo[1] + j + ny * (box.lo[2] + k));
        if (!vol.intensityMask[idx]) continue;
        const zz = vol.intensity[idx] - mean;
        const at = i + P[0] * (j + P[1] * k);
        re1[at] = zz;
        im1[at] = 1;
        re2[at] = zz * zz;
        sumZ2 += zz * zz;
      }
    }
  }
  // Kernel 1/|r| at every offset the pairs can have, wrapped into the padded grid.
  const [sx, sy, sz] = vol.spacingMm;
  const d2x = new Float64Array(P[0]), d2y = new Float64Array(P[1]), d2z = new Float64Array(P[2]);
  const wrapped = (e: number, n: number) => (e <= n / 2 ? e : e - n);
  for (let e = 0; e < P[0]; e++) d2x[e] = (wrapped(e, P[0]) * sx) ** 2;
  for (let e = 0; e < P[1]; e++) d2y[e] = (wrapped(e, P[1]) * sy) ** 2;
  for (let e = 0; e < P[2]; e++) d2z[e] = (wrapped(e, P[2]) * sz) ** 2;
  const reach = (e: number, n: number, extent: number) => Math.abs(wrapped(e, n)) < extent;
  for (let k = 0; k < P[2]; k++) {
    if (!reach(k, P[2], b[2])) continue;
    for (let j = 0; j < P[1]; j++) {
      if (!reach(j, P[1], b[1])) continue;
      const row = P[0] * (j + P[1] * k);
      const dyz = d2y[j] + d2z[k];
      for (let i = 0; i < P[0]; i++) {
        const d2 = d2x[i] + dyz;
        if (d2 > 0 && reach(i, P[0], b[0])) im2[row + i] = 1 / Math.sqrt(d2);
      }
    }
  }
  fft3d(re1, im1, P, b);
  fft3d(re2, im2, P, P); // the kernel fills the whole padded grid (it wraps)
  // Index of -k along each axis.
  const negX = Int32Array.from({ length: P[0] }, (_, e) => (P[0] - e) % P[0]);
  let w = 0, wzz = 0, wqm = 0;
  for (let k = 0; k < P[2]; k++) {
    const nk = (P[2] - k) % P[2];
    for (let j = 0; j < P[1]; j++) {
      const nj = (P[1] - j) % P[1];
      const row = P[0] * (j + P[1] * k);
      const negRow = P[0] * (nj + P[1] * nk);
      for (let i = 0; i < P[0]; i++) {
        const at = row + i;
        const neg = negRow + negX[i];
        // Split the packed transforms: for c = a + i b, A = (C(k) + conj C(-k))/2, B = (C(k) - conj C(-k))/(2i).
        const zr = (re1[at] + re1[neg]) / 2, zi = (im1[at] - im1[neg]) / 2;
        const mr = (im1[at] + im1[neg]) / 2, mi = -(re1[at] - re1[neg]) / 2;
        const qr = (re2[at] + re2[neg]) / 2, qi = (im2[at] - im2[neg]) / 2;
        const kr = (im2[at] + im2[neg]) / 2; // K^ is real (K is real and even)
        w += kr * (mr * mr + mi * mi);
        wzz += kr * (zr * zr + zi * zi);
        wqm += kr * (qr * mr + qi * mi);
      }
    }
  }
  w /= N; wzz /= N; wqm /= N;
  // sum_{i != j} w (z_i - z_j)^2 = 2 sum_i z_i^2 sum_{j != i} w_ij - 2 sum_{i != j} w z_i z_j
  return { w, wzz, wdd: 2 * wqm - 2 * wzz, sumZ2 };
}

function nextPow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

/** In-place 3-D FFT (radix 2) of a grid of size P; only the first `filled` entries per axis may be
 *  non-zero on input, so lines that are all zero are skipped on the first two passes. The y and z
 *  passes transform whole rows / planes at once, so their inner loops run over contiguous memory. */
function fft3d(re: Float64Array, im: Float64Array, P: Vec3, filled: Vec3): void {
  const [px, py, pz] = P;
  if (px > 1) {
    const tw = twiddles(px);
    for (let k = 0; k < filled[2]; k++) {
      for (let j = 0; j < filled[1]; j++) {
        const s = px * (j + py * k);
        fftBlocks(re, im, s, px, 1, 1, tw);
      }
    }
  }
  if (py > 1) {
    const tw = twiddles(py);
    for (let k = 0; k < filled[2]; k++) fftBlocks(re, im, px * py * k, py, px, px, tw);
  }
  if (pz > 1) fftBlocks(re, im, 0, pz, px * py, px * py, twiddles(pz));
}

/**
 * Iterative radix-2 forward DFT, X_k = sum_t x_t exp(-2 pi i k t / n), applied to `width` interleaved
 * sequences at once: element t of sequence x is at base + t*stride + x.
 */
function fftBlocks(re: Float64Array, im: Float64Array, base: number, n: number, stride: number, width: number, tw: { cos: Float64Array; sin: Float64Array }): void {
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const a = base + i * stride;
      const b = base + j * stride;
      for (let x = 0; x < width; x++) {
        let t = re[a + x]; re[a + x] = re[b + x]; re[b + x] = t;
        t = im[a + x]; im[a + x] = im[b + x]; im[b + x] = t;
      }
    }
  }
  for (let size = 2; size <= n; size *= 2) {
    const half = size / 2;
    const step = n / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = tw.cos[k * step], wi = tw.sin[k * step];
        const a = base + (start + k) * stride;
        const b = a + half * stride;
        for (let x = 0; x < width; x++) {
          const br = re[b + x], bi = im[b + x];
          const xr = br * wr - bi * wi;
          const xi = br * wi + bi * wr;
          const ar = re[a + x], ai = im[a + x];
          re[b + x] = ar - xr; im[b + x] = ai - xi;
          re[a + x] = ar + xr; im[a + x] = ai + xi;
        }
      }
    }
  }
}

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();
function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  let t = twiddleCache.get(n);
  if (!t) {
    const cos = new Float64Array(n / 2);
    const sin = new Float64Array(n / 2);
    for (let i = 0; i < n / 2; i++) {
      cos[i] = Math.cos((2 * Math.PI * i) / n);
      sin[i] = -Math.sin((2 * Math.PI * i) / n);
    }
    t = { cos, sin };
    twiddleCache.set(n, t);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Small vector helpers (table construction only)

function sub(a: number[], b: number[]): number[] {
  return [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
}
function cross(a: number[], b: number[]): number[] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
function dot(a: number[], b: number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
function norm(a: number[]): number {
  return Math.hypot(a[0], a[1], a[2]);
}
