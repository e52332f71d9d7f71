/**
 * `rtpipeline radiomics IMAGE MASK`: the features of one ROI to CSV. `--ibsi` gives IBSI tags
 * (`ibsi_tag,value`) under one of the IBSI configurations; otherwise pyradiomics names and
 * semantics under a pyradiomics parameter file (`feature,value`).
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { toCsv } from '../io/csv.js';
import { computeIbsiFeatures } from './extract.js';
import { CT_CONFIGS, DIGITAL_PHANTOM_SETTINGS, type IbsiSettings } from './settings.js';
import { loadImage, loadMask, RadiomicsInputError } from './inputs.js';
import { loadPyradiomicsParams } from './params.js';
import { extractPyradiomics } from './pyradiomics.js';

export interface RadiomicsCommandOptions {
  image: string;
  mask: string;
  param?: string;
  label?: number;
  roi?: string;
  out?: string;
  ibsi: boolean;
}

/** IBSI mode settings: `phantom`, `A`..`E`, or the shipped `config/radiomics/ibsi-<name>.yaml`. */
export function ibsiSettingsFor(param: string | undefined): IbsiSettings {
  const name = param === undefined ? 'A' : (/^ibsi-(phantom|[A-E])\.ya?ml$/i.exec(path.basename(param))?.[1] ?? param);
  if (/^phantom$/i.test(name)) return DIGITAL_PHANTOM_SETTINGS;
  const key = name.toUpperCase() as keyof typeof CT_CONFIGS;
  if (key in CT_CONFIGS) return CT_CONFIGS[key];
  throw new RadiomicsInputError(`--ibsi takes an IBSI configuration: phantom, A, B, C, D, E (or config/radiomics/ibsi-<name>.yaml), not "${param}"`);
}

export async function radiomicsCommand(o: RadiomicsCommandOptions): Promise<{ rows: number; out: string | null; csv: string }> {
  const image = await loadImage(o.image);
  const mask = await loadMask(o.mask, image, { label: o.label, roi: o.roi });
  let csv: string;
  let rows: number;
  if (o.ibsi) {
    const features = computeIbsiFeatures(image, mask, ibsiSettingsFor(o.param));
    rows = features.size;
    csv = toCsv({ columns: ['ibsi_tag', 'value'], rows: [...features].map(([k, v]) => [k, v]) });
  } else {
    const params = await loadPyradiomicsParams(o.param ?? fileURLToPath(new URL('../../../config/radiomics/ct-default.yaml', import.meta.url)));
    const features = extractPyradiomics(image, mask, params, { label: 1 });
    rows = features.size;
    csv = toCsv({ columns: ['feature', 'value'], rows: [...features].map(([k, v]) => [k, v]) });
  }
  if (o.out) writeFileSync(o.out, csv);
  return { rows, out: o.out ?? null, csv };
}
