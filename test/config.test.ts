import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { loadConfig, ConfigError } from '../src/config/load.js';
import { parseDestination } from '../src/config/destination.js';
import { tempDir, CLI } from './helpers/node.js';

const repo = fileURLToPath(new URL('..', import.meta.url));

function yamlFile(text: string): string {
  const f = path.join(tempDir(), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

describe('config', () => {
  it('has the contract defaults with no file', () => {
    const { config } = loadConfig({ env: {} });
    expect(config.node.aet).toBe('RTPIPELINE');
    expect(config.node.dicom_port).toBe(11112);
    expect(config.node.http_port).toBe(8080);
    expect(config.node.data_dir).toBe('./rtpipeline-data');
    expect(config.node.stable_seconds).toBe(30);
    expect(config.output_dir).toBe('./Data_Organized');
    expect(config.logs_dir).toBe('./Logs');
  });

  it('the shipped config files are valid and config/default.yaml equals the built-in defaults', () => {
    const builtIn = loadConfig({ env: {} }).config;
    expect(loadConfig({ file: path.join(repo, 'config/default.yaml'), env: {} }).config).toEqual(builtIn);
    expect(loadConfig({ file: path.join(repo, 'config/example-node.yaml'), env: {} }).config.node.destinations[0]).toEqual({ aet: 'PACS', host: '10.20.30.40', port: 104, tls: false });
  });

  it('applies flag > environment > file > default', () => {
    const file = yamlFile('node:\n  aet: FROMFILE\n  dicom_port: 1000\n  http_port: 2000\n  stable_seconds: 5\n');
    const env = { RTPIPELINE_DICOM_PORT: '3000', RTPIPELINE_HTTP_PORT: '4000' };
    const { config } = loadConfig({ file, env, flags: { 'http-port': '5000' } });
    expect(config.node.aet).toBe('FROMFILE'); // file over default
    expect(config.node.dicom_port).toBe(3000); // env over file
    expect(config.node.http_port).toBe(5000); // flag over env
    expect(config.node.stable_seconds).toBe(5);
    expect(config.node.max_associations).toBe(16); // default
  });

  it('reads RTPIPELINE_CONFIGFILE and list/destination variables', () => {
    const file = yamlFile('node:\n  aet: ENVFILE\n');
    const { config } = loadConfig({ env: { RTPIPELINE_CONFIGFILE: file, RTPIPELINE_ALLOW_CALLER: 'A,B', RTPIPELINE_DESTINATION: 'PACS@10.0.0.1:104', RTPIPELINE_WORKERS: '3' } });
    expect(config.node.aet).toBe('ENVFILE');
    expect(config.node.allowed_callers).toEqual(['A', 'B']);
    expect(config.node.destinations).toEqual([{ aet: 'PACS', host: '10.0.0.1', port: 104, tls: false }]);
    expect(config.max_workers).toBe(3);
  });

  it('names an unknown key with its line, a wrong type, and a bad port', () => {
    const file = yamlFile('output_dir: x\nnode:\n  aet: OK\n  dicom_prot: 104\n  http_port: 70000\n  stable_seconds: soon\n');
    let err: ConfigError | undefined;
    try {
      loadConfig({ file, env: {} });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toMatch(/line 4: unknown key "node.dicom_prot"/);
    expect(err!.message).toMatch(/line 5: node.http_port: a TCP port is 1..65535/);
    expect(err!.message).toMatch(/line 6: node.stable_seconds: .*number/);
  });

  it('blames the environment variable or flag that carried a bad value', () => {
    expect(() => loadConfig({ env: { RTPIPELINE_DICOM_PORT: 'abc' } })).toThrow(/environment variable RTPIPELINE_DICOM_PORT: "abc" is not a number/);
    expect(() => loadConfig({ env: {}, flags: { 'dicom-port': '0' } })).toThrow(/--dicom-port \(node.dicom_port\): a TCP port/);
    expect(() => loadConfig({ env: {}, flags: { aet: 'THIS_AE_TITLE_IS_TOO_LONG' } })).toThrow(/--aet .*16 characters/);
  });

  it('reports YAML syntax errors with a line', () => {
    expect(() => loadConfig({ file: yamlFile('node:\n  aet: [unclosed\n'), env: {} })).toThrow(/line \d+, column \d+: YAML syntax error/);
  });

  it('parses destinations', () => {
    expect(parseDestination('PACS@pacs.example.org:104')).toEqual({ aet: 'PACS', host: 'pacs.example.org', port: 104, tls: false });
    expect(parseDestination('P@[::1]:11112').host).toBe('::1');
    expect(() => parseDestination('PACS:104')).toThrow(/AE@HOST:PORT/);
    expect(() => parseDestination('PACS@h:99999')).toThrow(/port/);
  });

  it('`rtpipeline validate` exits 0 on a good file and 2 on a bad one', () => {
    const good = spawnSync(process.execPath, [CLI, 'validate', '--config', path.join(repo, 'config/default.yaml')], { encoding: 'utf8' });
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/valid/);
    const bad = spawnSync(process.execPath, [CLI, 'validate', '--config', yamlFile('nodes: {}\n')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/line 1: unknown key "nodes"/);
    const usage = spawnSync(process.execPath, [CLI, 'serve', '--no-such-flag'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
  });

  it('`validate` and `serve` check the files and templates the segmentation settings name (exit 2, file and line)', () => {
    const validate = (yaml: string) => spawnSync(process.execPath, [CLI, 'validate', '--config', yamlFile(yaml)], { encoding: 'utf8' });
    const template = validate('segmentation:\n  engine: totalsegmentator\n  command: "TotalSegmentator -i {inptu} -o {output}"\n');
    expect(template.status).toBe(2);
    expect(template.stderr).toMatch(/segmentation\.command: unknown placeholder \{inptu\}/);
    const structures = yamlFile('custom_structures:\n  - name: X\n    operation: unoin\n    source_structures: [A, B]\n');
    const custom = validate(`custom_structures: ${structures}\n`);
    expect(custom.status).toBe(2);
    expect(custom.stderr).toMatch(/line 3.*operation/);
    const missing = validate('segmentation:\n  custom_models: [/no/such/custom_model.yaml]\n');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/cannot read custom model file \/no\/such\/custom_model.yaml: ENOENT/);
    const ok = validate(`custom_structures: ${path.join(repo, 'config/custom_structures.example.yaml')}\nsegmentation:\n  custom_models: [${path.join(repo, 'config/custom_model.example.yaml')}]\n`);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/custom structure\(s\) from/);
    const serve = spawnSync(process.execPath, [CLI, 'serve', '--config', yamlFile(`custom_structures: ${structures}\n`), '--dicom-port', '0', '--http-port', '0'], { encoding: 'utf8', timeout: 10_000 });
    expect(serve.status).toBe(2);
  });
});
