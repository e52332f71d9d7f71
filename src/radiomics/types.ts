/** Shared types for IBSI radiomics: preprocessing output consumed by every feature family. */

export type Vec3 = [number, number, number];

/** A processed image and its masks on one grid, x fastest (index i + nx*(j + ny*k)); not cropped. */
export interface RoiVolume {
  dims: Vec3; // voxels along x, y, z
  spacingMm: Vec3;
  intensity: Float64Array; // processed intensities (after resampling / rounding)
  morphMask: Uint8Array; // 1 = in the morphological mask
  intensityMask: Uint8Array; // 1 = in the intensity mask (after re-segmentation)
}

/** Discretised grey levels: 1..nLevels inside intensityMask, 0 outside. */
export interface Discretised {
  levels: Int32Array;
  nLevels: number;
}

/** IBSI tag (exactly as the `ibsi_tag` column of the reference CSV, aggregation suffix included) -> value. */
export type Features = Map<string, number>;
