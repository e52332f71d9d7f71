import type { RtStructInput } from './rtstruct.js';

/**
 * Result branding of an RTSTRUCT (commissioning safety): a label such as "NOT FOR CLIN USE" a
 * TPS shows on import, a series description, and a prefix on every ROI name. Limits follow the VRs:
 * StructureSetLabel SH (16), StructureSetName / SeriesDescription / ROIName LO (64).
 */
export interface RtStructBranding {
  structureSetLabel?: string;
  structureSetName?: string;
  seriesDescription?: string;
  roiNamePrefix?: string;
}

/** The input with its branding applied (the same object when there is none). */
export function applyBranding(input: RtStructInput): RtStructInput {
  const b = input.branding;
  if (!b) return input;
  const prefix = b.roiNamePrefix ?? '';
  return {
    ...input,
    structureSetLabel: b.structureSetLabel ?? input.structureSetLabel,
    structureSetName: b.structureSetName ?? input.structureSetName,
    seriesDescription: b.seriesDescription ?? input.seriesDescription,
    // An ROI name is LO: the prefix stays whole, the name is cut to fit.
    rois: prefix ? input.rois.map((r) => ({ ...r, name: (prefix + r.name).slice(0, 64) })) : input.rois,
    branding: undefined,
  };
}

/** The config's snake_case branding (node.result_branding, a route's branding) as the writer's. */
export function brandingFromConfig(b: { structure_set_label?: string; structure_set_name?: string; series_description?: string; roi_name_prefix?: string } | null | undefined): RtStructBranding | undefined {
  if (!b) return undefined;
  const out: RtStructBranding = {
    structureSetLabel: b.structure_set_label,
    structureSetName: b.structure_set_name,
    seriesDescription: b.series_description,
    roiNamePrefix: b.roi_name_prefix,
  };
  return Object.values(out).some((v) => v !== undefined) ? out : undefined;
}
