/** The pipeline's stages, in the order they run (contract). */
export const STAGES = ['organize', 'segmentation', 'dvh', 'radiomics', 'robustness', 'qc'] as const;
export type StageName = (typeof STAGES)[number];

/** The stages this version can run; the others come with later versions and are refused by name. */
export const AVAILABLE_STAGES: readonly StageName[] = ['organize', 'segmentation', 'dvh', 'radiomics', 'robustness'];

export function isStageName(s: string): s is StageName {
  return (STAGES as readonly string[]).includes(s);
}
