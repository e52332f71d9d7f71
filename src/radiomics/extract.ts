/**
 * IBSI feature extraction for one ROI: the processing chain of the settings, then every feature
 * family on the processed volume. Tags are the IBSI tags of the reference tables (texture tags carry
 * their aggregation suffix).
 */
import { histogramFeatures } from './features/histogram.js';
import { ivhFeatures } from './features/ivh.js';
import { localIntensityFeatures } from './features/local-intensity.js';
import { statisticsFeatures } from './features/statistics.js';
import { morphologyFeatures } from './morphology.js';
import { glcmFeatures } from './texture/glcm.js';
import { gldzmFeatures } from './texture/gldzm.js';
import { glrlmFeatures } from './texture/glrlm.js';
import { glszmFeatures } from './texture/glszm.js';
import { ngldmFeatures } from './texture/ngldm.js';
import { ngtdmFeatures } from './texture/ngtdm.js';
import { discretise, ivhDiscretise, processImage, type ProcessedRoi, type RawVolume } from './preprocess.js';
import type { IbsiSettings } from './settings.js';
import type { Discretised, Features } from './types.js';

/** The processed ROI and its discretisation, for callers that want to inspect or reuse them. */
export interface PreparedRoi {
  roi: ProcessedRoi;
  levels: Discretised;
}

export function prepareRoi(image: RawVolume, mask: RawVolume, settings: IbsiSettings): PreparedRoi {
  const roi = processImage(image, mask, settings.processing);
  const levels = discretise(roi, settings.discretisation, settings.processing.resegmentRange);
  return { roi, levels };
}

/** Every family on an already processed ROI. */
export function featuresOfRoi(prepared: PreparedRoi, settings: IbsiSettings): Features {
  const { roi, levels } = prepared;
  const out: Features = new Map();
  const add = (f: Features) => {
    for (const [k, v] of f) out.set(k, v);
  };
  const t = settings.texture;
  add(morphologyFeatures(roi));
  add(localIntensityFeatures(roi));
  add(statisticsFeatures(roi));
  add(histogramFeatures(roi, levels));
  add(ivhFeatures(ivhDiscretise(roi, settings.ivh, settings.processing.resegmentRange)));
  add(glcmFeatures(roi, levels, { distance: t.glcmDistance }));
  add(glrlmFeatures(roi, levels));
  add(glszmFeatures(roi, levels));
  add(gldzmFeatures(roi, levels));
  add(ngtdmFeatures(roi, levels, { distance: t.ngtdmDistance }));
  add(ngldmFeatures(roi, levels, { distance: t.ngldmDistance, alpha: t.ngldmAlpha }));
  return out;
}

/** Runs preprocessing, then every family: IBSI tag -> value. */
export function computeIbsiFeatures(image: RawVolume, mask: RawVolume, settings: IbsiSettings): Features {
  return featuresOfRoi(prepareRoi(image, mask, settings), settings);
}
