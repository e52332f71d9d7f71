/** The structure sets of a course folder and the name each gets in the tables' Segmentation_Source. */
import path from 'node:path';
import { existsSync, promises as fsp } from 'node:fs';

export interface StructureSource {
  source: 'Manual' | 'RS_auto' | 'RS_custom';
  file: string;
}

export async function structureSources(courseDir: string): Promise<StructureSource[]> {
  const out: StructureSource[] = [];
  const manualDir = path.join(courseDir, 'DICOM', 'RTSTRUCT');
  if (existsSync(manualDir)) {
    for (const f of (await fsp.readdir(manualDir)).filter((n) => n.endsWith('.dcm')).sort()) out.push({ source: 'Manual', file: path.join(manualDir, f) });
  }
  for (const source of ['RS_auto', 'RS_custom'] as const) {
    const file = path.join(courseDir, `${source}.dcm`);
    if (existsSync(file)) out.push({ source, file });
  }
  return out;
}
