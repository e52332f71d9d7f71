/**
 * The dose a course's DVH is computed on: reads the RTDOSE files its recipe names and sums them
 * (dose-sum.ts). The edge between the recipe (pure) and the files.
 */
import { readRtDose, type RtDose } from '../dicom/rt-dose.js';
import type { DoseRecipe } from './dose-recipe.js';
import { sumDoses, type DoseSum } from './dose-sum.js';

export type ReadDose = (file: string) => Promise<Pick<RtDose, 'sopInstanceUid' | 'frameOfReferenceUid' | 'grid' | 'doseGy'>>;

/** The summed dose of a recipe. A skipped recipe is an error that carries its reason. */
export async function loadCourseDose(recipe: DoseRecipe, read: ReadDose = (f) => readRtDose(f)): Promise<DoseSum & { frameOfReferenceUid: string }> {
  if (recipe.kind === 'skipped') throw new Error(`the course has no usable dose: ${recipe.skipped}`);
  const doses = [];
  // One file at a time: a dose grid can be hundreds of MB, and they are summed in order anyway.
  for (const file of recipe.files) {
    const d = await read(file);
    if (d.frameOfReferenceUid !== recipe.frameOfReferenceUid) {
      throw new Error(`${file}: frame of reference ${d.frameOfReferenceUid} is not the recipe's ${recipe.frameOfReferenceUid} (the file changed since it was organised?)`);
    }
    doses.push({ grid: d.grid, doseGy: d.doseGy });
  }
  return { ...sumDoses(doses), frameOfReferenceUid: recipe.frameOfReferenceUid };
}
