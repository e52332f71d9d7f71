/** The pipeline's stages, in the order they run (contract). */
export const STAGES = ['organize', 'segmentation', 'dvh', 'radiomics', 'robustness', 'qc'] as const;
export type StageName = (typeof STAGES)[number];

export function isStageName(s: string): s is StageName {
  return (STAGES as readonly string[]).includes(s);
}
