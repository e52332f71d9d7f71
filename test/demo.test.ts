import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, tempDir } from './helpers/node.js';
import { readRtStruct } from '../src/rt/rtstruct.js';

describe('rtpipeline demo', () => {
  it('runs a node, sends it a synthetic thorax CT and prints where RS_auto.dcm is', () => {
    const dataDir = path.join(tempDir(), 'demo');
    const r = spawnSync(process.execPath, [CLI, 'demo', '--data-dir', dataDir, '--size', '96', '--slices', '40'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json' } });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const rs = /RS_auto\.dcm\s+(\S+)/.exec(r.stdout)?.[1];
    expect(rs).toBeDefined();
    expect(existsSync(rs!)).toBe(true);
    expect(readRtStruct(readFileSync(rs!)).rois.map((x) => x.name).sort()).toEqual(['BODY', 'BONES', 'LUNG_L', 'LUNG_R']);
    expect(r.stdout).toMatch(/LUNG_L\s+\d+\.\d cm³/);
    expect(existsSync(path.join(path.dirname(rs!), 'NIFTI', 'ct.nii.gz'))).toBe(true);
  });
});
