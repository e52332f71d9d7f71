/**
 * IBSI feature-extraction settings: the image processing chain, discretisation and texture
 * parameters. The constants reproduce the IBSI 1 digital phantom and CT phantom configurations A–E
 * (reference manual, table "Configurations"; reference/ibsi/reference_values/ibsi1_ct_phantom_configurations.csv).
 */
import type { Discretisation, IvhDiscretisation, ProcessingSettings } from './preprocess.js';

export interface TextureSettings {
  /** Chebyshev distance of the GLCM neighbours. */
  glcmDistance: number;
  /** Chebyshev distance of the NGTDM neighbourhood. */
  ngtdmDistance: number;
  /** Chebyshev distance of the NGLDM neighbourhood. */
  ngldmDistance: number;
  /** NGLDM coarseness: neighbours within |Δlevel| <= alpha count as dependent. */
  ngldmAlpha: number;
}

export interface IbsiSettings {
  name: string;
  /** Which texture aggregations the configuration is meant for (all are computed regardless). */
  textureDimension: '2D' | '3D';
  processing: ProcessingSettings;
  /** Texture and intensity-histogram discretisation. */
  discretisation: Discretisation;
  /** Intensity-volume histogram discretisation. */
  ivh: IvhDiscretisation;
  texture: TextureSettings;
}

export type CtConfigName = 'A' | 'B' | 'C' | 'D' | 'E';

const TEXTURE: TextureSettings = { glcmDistance: 1, ngtdmDistance: 1, ngldmDistance: 1, ngldmAlpha: 0 };
/** Margin kept around the ROI when cropping: more than the 6.2 mm local-intensity sphere. */
const MARGIN_MM = 10;

/** The digital phantom: no processing; its grey levels 1..6 are used as they are (N_g = 6). */
export const DIGITAL_PHANTOM_SETTINGS: IbsiSettings = {
  name: 'digital_phantom',
  textureDimension: '3D',
  processing: { roundIntensities: false, resampling: null, resegmentRange: null, outlierSigma: null, marginMm: MARGIN_MM },
  discretisation: { method: 'none' },
  ivh: { method: 'none' },
  texture: TEXTURE,
};

const linear3d = { spacingMm: [2, 2, 2] as [number, number, number], image: 'linear' as const, mask: 'linear' as const, partialVolume: 0.5 };

export const CT_CONFIGS: Readonly<Record<CtConfigName, IbsiSettings>> = {
  A: {
    name: 'config_A',
    textureDimension: '2D',
    processing: { roundIntensities: true, resampling: null, resegmentRange: [-500, 400], outlierSigma: null, marginMm: MARGIN_MM },
    discretisation: { method: 'FBS', binWidth: 25 },
    ivh: { method: 'none' },
    texture: TEXTURE,
  },
  B: {
    name: 'config_B',
    textureDimension: '2D',
    processing: {
      roundIntensities: true,
      resampling: { spacingMm: [2, 2, null], image: 'linear', mask: 'linear', partialVolume: 0.5 },
      resegmentRange: [-500, 400],
      outlierSigma: null,
      marginMm: MARGIN_MM,
    },
    discretisation: { method: 'FBN', bins: 32 },
    ivh: { method: 'none' },
    texture: TEXTURE,
  },
  C: {
    name: 'config_C',
    textureDimension: '3D',
    processing: { roundIntensities: true, resampling: linear3d, resegmentRange: [-1000, 400], outlierSigma: null, marginMm: MARGIN_MM },
    discretisation: { method: 'FBS', binWidth: 25 },
    ivh: { method: 'FBS', binWidth: 2.5 },
    texture: TEXTURE,
  },
  D: {
    name: 'config_D',
    textureDimension: '3D',
    processing: { roundIntensities: true, resampling: linear3d, resegmentRange: null, outlierSigma: 3, marginMm: MARGIN_MM },
    discretisation: { method: 'FBN', bins: 32 },
    ivh: { method: 'none' },
    texture: TEXTURE,
  },
  E: {
    name: 'config_E',
    textureDimension: '3D',
    processing: {
      roundIntensities: true,
      resampling: { spacingMm: [2, 2, 2], image: 'cubic', mask: 'linear', partialVolume: 0.5 },
      resegmentRange: [-1000, 400],
      outlierSigma: 3,
      marginMm: MARGIN_MM,
    },
    discretisation: { method: 'FBN', bins: 32 },
    ivh: { method: 'FBN', bins: 1000 },
    texture: TEXTURE,
  },
};
