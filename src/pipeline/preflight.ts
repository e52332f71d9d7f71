/**
 * Checks, before anything runs, the files and templates the segmentation settings point at: a
 * typo in a custom structures file or a command template must stop `serve` / `validate` with exit
 * 2 and a message naming the file and line, not fail every job hours later.
 */
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { totalSegmentatorTemplate } from '../segment/totalsegmentator.js';
import { loadCustomModel } from '../segment/custom-model.js';
import { loadCustomStructures } from '../rt/custom-structures.js';

export async function checkPipelineSettings(config: Config): Promise<string[]> {
  const notes: string[] = [];
  const seg = config.segmentation;
  if (seg.engine === 'totalsegmentator') totalSegmentatorTemplate(seg.command);
  else if (seg.command !== null) notes.push(`segmentation.command is set but the engine is "${seg.engine}": it is not used`);
  for (const file of seg.custom_models) {
    if (seg.engine === 'none') throw new ConfigError(`segmentation.custom_models lists ${file} but segmentation.engine is "none" (no segmentation runs)`);
    loadCustomModel(file);
  }
  if (config.custom_structures) {
    const defs = await loadCustomStructures(config.custom_structures);
    notes.push(`${defs.length} custom structure(s) from ${config.custom_structures}`);
  }
  return notes;
}
