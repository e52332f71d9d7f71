// Kept apart from the segmentation stage so that the daemon's main thread can key its jobs without
// loading the segmentation engines.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Config } from '../config/schema.js';

/** What the segmentation output depends on besides the images: the settings, and the contents of the
 *  custom structures file and the custom model files (an edited file means a new segmentation). */
export async function segmentationSettingsKey(settings: Config['segmentation'], customStructures: string | null): Promise<string> {
  const h = createHash('sha256').update(JSON.stringify(settings));
  for (const f of [customStructures, ...settings.custom_models]) {
    if (f) h.update(await fsp.readFile(f).catch(() => Buffer.from(`missing:${f}`)));
  }
  return h.digest('hex').slice(0, 16);
}
