/**
 * pyradiomics parameter files (YAML or JSON), read verbatim: `imageType`, `featureClass`, `setting`,
 * `voxelSetting`, with `key:` and no value meaning None, as pyradiomics' own schema
 * (radiomics/schemas/paramSchema.yaml) allows. Unknown keys, classes and feature names are errors
 * naming the file and line, as pykwalify rejects them too. Defaults are pyradiomics' defaults.
 */
import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { ConfigError, parseYamlDocument } from '../config/load.js';

/** pyradiomics feature names per class; † (deprecated) ones are enabled only when named. */
export const FEATURE_CLASSES = {
  firstorder: {
    active: ['Energy', 'TotalEnergy', 'Entropy', 'Minimum', '10Percentile', '90Percentile', 'Maximum', 'Mean', 'Median', 'InterquartileRange', 'Range', 'MeanAbsoluteDeviation', 'RobustMeanAbsoluteDeviation', 'RootMeanSquared', 'Skewness', 'Kurtosis', 'Variance', 'Uniformity'],
    deprecated: ['StandardDeviation'],
  },
  shape: {
    active: ['MeshVolume', 'VoxelVolume', 'SurfaceArea', 'SurfaceVolumeRatio', 'Sphericity', 'Maximum3DDiameter', 'Maximum2DDiameterSlice', 'Maximum2DDiameterColumn', 'Maximum2DDiameterRow', 'MajorAxisLength', 'MinorAxisLength', 'LeastAxisLength', 'Elongation', 'Flatness'],
    deprecated: ['Compactness1', 'Compactness2', 'SphericalDisproportion'],
  },
  shape2D: {
    active: ['MeshSurface', 'PixelSurface', 'Perimeter', 'PerimeterSurfaceRatio', 'Sphericity', 'MaximumDiameter', 'MajorAxisLength', 'MinorAxisLength', 'Elongation'],
    deprecated: ['SphericalDisproportion'],
  },
  glcm: {
    active: ['Autocorrelation', 'JointAverage', 'ClusterProminence', 'ClusterShade', 'ClusterTendency', 'Contrast', 'Correlation', 'DifferenceAverage', 'DifferenceEntropy', 'DifferenceVariance', 'JointEnergy', 'JointEntropy', 'Imc1', 'Imc2', 'Idm', 'MCC', 'Idmn', 'Id', 'Idn', 'InverseVariance', 'MaximumProbability', 'SumAverage', 'SumEntropy', 'SumSquares'],
    deprecated: ['Dissimilarity', 'Homogeneity1', 'Homogeneity2', 'SumVariance'],
  },
  glrlm: {
    active: ['ShortRunEmphasis', 'LongRunEmphasis', 'GrayLevelNonUniformity', 'GrayLevelNonUniformityNormalized', 'RunLengthNonUniformity', 'RunLengthNonUniformityNormalized', 'RunPercentage', 'GrayLevelVariance', 'RunVariance', 'RunEntropy', 'LowGrayLevelRunEmphasis', 'HighGrayLevelRunEmphasis', 'ShortRunLowGrayLevelEmphasis', 'ShortRunHighGrayLevelEmphasis', 'LongRunLowGrayLevelEmphasis', 'LongRunHighGrayLevelEmphasis'],
    deprecated: [],
  },
  glszm: {
    active: ['SmallAreaEmphasis', 'LargeAreaEmphasis', 'GrayLevelNonUniformity', 'GrayLevelNonUniformityNormalized', 'SizeZoneNonUniformity', 'SizeZoneNonUniformityNormalized', 'ZonePercentage', 'GrayLevelVariance', 'ZoneVariance', 'ZoneEntropy', 'LowGrayLevelZoneEmphasis', 'HighGrayLevelZoneEmphasis', 'SmallAreaLowGrayLevelEmphasis', 'SmallAreaHighGrayLevelEmphasis', 'LargeAreaLowGrayLevelEmphasis', 'LargeAreaHighGrayLevelEmphasis'],
    deprecated: [],
  },
  gldm: {
    active: ['SmallDependenceEmphasis', 'LargeDependenceEmphasis', 'GrayLevelNonUniformity', 'DependenceNonUniformity', 'DependenceNonUniformityNormalized', 'GrayLevelVariance', 'DependenceVariance', 'DependenceEntropy', 'LowGrayLevelEmphasis', 'HighGrayLevelEmphasis', 'SmallDependenceLowGrayLevelEmphasis', 'SmallDependenceHighGrayLevelEmphasis', 'LargeDependenceLowGrayLevelEmphasis', 'LargeDependenceHighGrayLevelEmphasis'],
    deprecated: ['GrayLevelNonUniformityNormalized', 'DependencePercentage'],
  },
  ngtdm: {
    active: ['Coarseness', 'Contrast', 'Busyness', 'Complexity', 'Strength'],
    deprecated: [],
  },
} as const;

export type FeatureClassName = keyof typeof FEATURE_CLASSES;
export const FEATURE_CLASS_NAMES = Object.keys(FEATURE_CLASSES) as FeatureClassName[];
export const IMAGE_TYPES = ['Original', 'LoG', 'Wavelet', 'Square', 'SquareRoot', 'Logarithm', 'Exponential', 'Gradient', 'LBP2D', 'LBP3D'] as const;
export type ImageTypeName = (typeof IMAGE_TYPES)[number];

/** SimpleITK interpolators by name, in their enum order (a file may give the number 1..10). */
export const INTERPOLATORS = ['sitkNearestNeighbor', 'sitkLinear', 'sitkBSpline', 'sitkGaussian', 'sitkLabelGaussian', 'sitkHammingWindowedSinc', 'sitkCosineWindowedSinc', 'sitkWelchWindowedSinc', 'sitkLanczosWindowedSinc', 'sitkBlackmanWindowedSinc'] as const;
export type InterpolatorName = (typeof INTERPOLATORS)[number];

const positive = z.number().gt(0);
const positiveInt = z.number().int().gt(0);
const nonNegInt = z.number().int().min(0);
// `key:` with no value is None in pyradiomics: every setting accepts null, meaning "use the default".
const opt = <T extends z.ZodType>(t: T) => t.nullable().optional();

/** The `setting` keys of paramSchema.yaml (also allowed under each image type, overriding `setting`). */
const settingShape = {
  minimumROIDimensions: opt(z.number().int().min(1).max(3)),
  minimumROISize: opt(positiveInt),
  geometryTolerance: opt(positive),
  correctMask: opt(z.boolean()),
  additionalInfo: opt(z.boolean()),
  label: opt(positiveInt),
  label_channel: opt(nonNegInt),
  binWidth: opt(positive),
  binCount: opt(positiveInt),
  normalize: opt(z.boolean()),
  normalizeScale: opt(positive),
  removeOutliers: opt(positive),
  resampledPixelSpacing: opt(z.array(z.number().min(0)).length(3, 'resampledPixelSpacing needs 3 values (x, y, z in mm; 0 keeps an axis)')),
  interpolator: opt(
    z.union([z.enum(INTERPOLATORS), z.number().int().min(1).max(10)], {
      error: `interpolator must be one of ${INTERPOLATORS.join(', ')} or their number 1..10`,
    }),
  ),
  padDistance: opt(nonNegInt),
  distances: opt(z.array(positiveInt).min(1)),
  force2D: opt(z.boolean()),
  force2Ddimension: opt(z.number().int().min(0).max(2)),
  resegmentRange: opt(z.array(z.number()).min(1).max(2)),
  resegmentMode: opt(z.enum(['absolute', 'relative', 'sigma'])),
  resegmentShape: opt(z.boolean()),
  preCrop: opt(z.boolean()),
  sigma: opt(z.array(positive).min(1)),
  start_level: opt(nonNegInt),
  level: opt(positiveInt),
  wavelet: opt(z.string().regex(/^(haar|db\d+|sym\d+|coif\d+|bior\d\.\d+|rbio\d\.\d+|dmey)$/, 'wavelet must be a PyWavelets discrete wavelet name such as coif1, db2, haar')),
  gradientUseSpacing: opt(z.boolean()),
  lbp2DRadius: opt(positive),
  lbp2DSamples: opt(z.number().int().min(1)),
  lbp2DMethod: opt(z.enum(['default', 'ror', 'uniform', 'var'])),
  lbp3DLevels: opt(z.number().int().min(1)),
  lbp3DIcosphereRadius: opt(positive),
  lbp3DIcosphereSubdivision: opt(nonNegInt),
  voxelArrayShift: opt(nonNegInt),
  symmetricalGLCM: opt(z.boolean()),
  weightingNorm: opt(z.enum(['manhattan', 'euclidean', 'infinity', 'no_weighting'])),
  gldm_a: opt(nonNegInt),
};
const settingSchema = z.strictObject(settingShape);
export type RawSetting = z.infer<typeof settingSchema>;

const voxelSettingSchema = z.strictObject({
  kernelRadius: opt(z.number().int().min(1)),
  maskedKernel: opt(z.boolean()),
  initValue: opt(z.number()),
  voxelBatch: opt(z.number().int()),
});

const featureListSchema = z.array(z.string()).nullable().optional();

const fileSchema = z
  .strictObject({
    imageType: opt(z.strictObject(Object.fromEntries(IMAGE_TYPES.map((t) => [t, opt(settingSchema)])) as Record<ImageTypeName, ReturnType<typeof opt<typeof settingSchema>>>)),
    featureClass: opt(z.strictObject(Object.fromEntries(FEATURE_CLASS_NAMES.map((c) => [c, featureListSchema])) as Record<FeatureClassName, typeof featureListSchema>)),
    setting: opt(settingSchema),
    voxelSetting: opt(voxelSettingSchema),
  })
  .nullable();

/** Settings after pyradiomics' defaults are applied (null where pyradiomics' default is None). */
export interface PyradiomicsSetting {
  minimumROIDimensions: number;
  minimumROISize: number | null;
  geometryTolerance: number | null;
  correctMask: boolean;
  additionalInfo: boolean;
  label: number;
  binWidth: number;
  binCount: number | null;
  normalize: boolean;
  normalizeScale: number;
  removeOutliers: number | null;
  resampledPixelSpacing: [number, number, number] | null;
  interpolator: InterpolatorName;
  padDistance: number;
  distances: number[];
  force2D: boolean;
  force2Ddimension: 0 | 1 | 2;
  resegmentRange: number[] | null;
  resegmentMode: 'absolute' | 'relative' | 'sigma';
  resegmentShape: boolean;
  preCrop: boolean;
  sigma: number[] | null;
  start_level: number;
  level: number;
  wavelet: string;
  gradientUseSpacing: boolean;
  voxelArrayShift: number;
  symmetricalGLCM: boolean;
  weightingNorm: 'manhattan' | 'euclidean' | 'infinity' | 'no_weighting' | null;
  gldm_a: number;
}

export const DEFAULT_SETTING: Readonly<PyradiomicsSetting> = {
  minimumROIDimensions: 2,
  minimumROISize: null,
  geometryTolerance: null,
  correctMask: false,
  additionalInfo: true,
  label: 1,
  binWidth: 25,
  binCount: null,
  normalize: false,
  normalizeScale: 1,
  removeOutliers: null,
  resampledPixelSpacing: null,
  interpolator: 'sitkBSpline',
  padDistance: 5,
  distances: [1],
  force2D: false,
  force2Ddimension: 0,
  resegmentRange: null,
  resegmentMode: 'absolute',
  resegmentShape: false,
  preCrop: false,
  sigma: null,
  start_level: 0,
  level: 1,
  wavelet: 'coif1',
  gradientUseSpacing: true,
  voxelArrayShift: 0,
  symmetricalGLCM: true,
  weightingNorm: null,
  gldm_a: 0,
};

export interface PyradiomicsParams {
  /** Enabled image types, each with its full settings (`setting` overridden by the type's own keys). */
  imageTypes: Map<ImageTypeName, PyradiomicsSetting>;
  /** Enabled classes and their enabled feature names. */
  featureClasses: Map<FeatureClassName, string[]>;
  setting: PyradiomicsSetting;
  voxelSetting: { kernelRadius: number; maskedKernel: boolean; initValue: number; voxelBatch: number };
}

/** Applies defaults to a raw setting map; null means "the default" (pyradiomics' None). */
function withDefaults(base: Readonly<PyradiomicsSetting>, raw: RawSetting | null | undefined): PyradiomicsSetting {
  const out: PyradiomicsSetting = { ...base };
  for (const [key, value] of Object.entries(raw ?? {})) {
    if (value === undefined) continue;
    // Keys whose pyradiomics default is None take an explicit None; the others keep their default.
    if (value === null) {
      if ((DEFAULT_SETTING as unknown as Record<string, unknown>)[key] === null) (out as unknown as Record<string, unknown>)[key] = null;
      continue;
    }
    if (key === 'interpolator') out.interpolator = typeof value === 'number' ? INTERPOLATORS[value - 1] : (value as InterpolatorName);
    else if (key === 'label_channel' || key.startsWith('lbp')) continue; // accepted, unused by our filters
    else (out as unknown as Record<string, unknown>)[key] = value;
  }
  return out;
}

/** Parses and validates pyradiomics parameters from text; `file` names the source in errors. */
export function parsePyradiomicsParams(text: string, file: string): PyradiomicsParams {
  const { doc, lineCounter } = parseYamlDocument(text, file);
  const lineOf = (path: PropertyKey[]): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n) as (string | number)[];
      let node: unknown = n === 0 ? doc.contents : doc.getIn(sub, true);
      if (node === undefined && n > 0) {
        // The key may be present with a null value; point at the key itself.
        const parent = n === 1 ? doc.contents : doc.getIn(sub.slice(0, -1), true);
        if (isMap(parent)) node = parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(sub[n - 1]))?.key;
      }
      const range = (node as YamlNode | undefined)?.range;
      if (range) return lineCounter.linePos(range[0]).line;
    }
    return undefined;
  };
  const fail = (path: PropertyKey[], message: string): never => {
    const line = lineOf(path);
    const where = path.length ? ` (${path.map(String).join('.')})` : '';
    throw new ConfigError(`${file}${line ? `: line ${line}` : ''}${where}: ${message}`);
  };
  const parsed = fileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const path = keys.length ? [...issue.path, keys[0]] : issue.path;
    const message = keys.length ? `unknown key "${keys[0]}"${unknownKeyHint(issue.path)}` : issue.message;
    return fail(path, message);
  }
  const raw = parsed.data ?? {};
  const setting = withDefaults(DEFAULT_SETTING, raw.setting);

  const imageTypes = new Map<ImageTypeName, PyradiomicsSetting>();
  const typeEntries = raw.imageType ? Object.entries(raw.imageType) : [['Original', {}]];
  for (const [name, own] of typeEntries as [ImageTypeName, RawSetting | null | undefined][]) {
    if (own === undefined) continue;
    const merged = withDefaults(setting, own);
    if (name === 'LoG' && !merged.sigma) fail(['imageType', 'LoG'], 'LoG needs `sigma: [...]` (mm), under imageType.LoG or setting');
    imageTypes.set(name, merged);
  }
  if (imageTypes.size === 0) fail(['imageType'], 'no image type is enabled; add `Original: {}`');

  const featureClasses = new Map<FeatureClassName, string[]>();
  const classEntries = raw.featureClass ? Object.entries(raw.featureClass) : FEATURE_CLASS_NAMES.filter((c) => c !== 'shape2D').map((c) => [c, null]);
  for (const [name, list] of classEntries as [FeatureClassName, string[] | null | undefined][]) {
    if (list === undefined) continue;
    const known = FEATURE_CLASSES[name];
    if (!list || list.length === 0) {
      featureClasses.set(name, [...known.active]);
      continue;
    }
    list.forEach((feature, i) => {
      if (!(known.active as readonly string[]).includes(feature) && !(known.deprecated as readonly string[]).includes(feature))
        fail(['featureClass', name, i], `"${feature}" is not a ${name} feature; known: ${[...known.active, ...known.deprecated].join(', ')}`);
    });
    featureClasses.set(name, [...new Set(list)]);
  }

  const vs = raw.voxelSetting ?? {};
  const voxelSetting = { kernelRadius: vs.kernelRadius ?? 1, maskedKernel: vs.maskedKernel ?? true, initValue: vs.initValue ?? 0, voxelBatch: vs.voxelBatch ?? -1 };
  return { imageTypes, featureClasses, setting, voxelSetting };
}

function unknownKeyHint(path: PropertyKey[]): string {
  if (path.length === 0) return '; the top-level keys are imageType, featureClass, setting, voxelSetting';
  if (path[0] === 'featureClass' && path.length === 1) return `; the classes are ${FEATURE_CLASS_NAMES.join(', ')}`;
  if (path[0] === 'imageType' && path.length === 1) return `; the image types are ${IMAGE_TYPES.join(', ')}`;
  return '';
}

/** Reads a pyradiomics parameter file (.yaml, .yml or .json). */
export function loadPyradiomicsParams(path: string): PyradiomicsParams {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read the radiomics parameter file: ${(e as Error).message}`);
  }
  return parsePyradiomicsParams(text, path);
}
