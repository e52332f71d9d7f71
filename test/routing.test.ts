// Return routing, pure: the rule schema, matching (first match wins), input constraints with their
// reasons, the delivery plan (dry runs, test destination), branding of the RTSTRUCT.
import { describe, it, expect } from 'vitest';
import { routingSchema, configSchema } from '../src/config/schema.js';
import { constraintFailure, deliveryPlan, inCidr, isOwnResultDescription, matchRoute, type RoutingRules, type SeriesFacts } from '../src/routing/rules.js';
import { validateRouting } from '../src/routing/routing-table.js';
import { buildRtStruct, readRtStruct } from '../src/rt/rtstruct.js';
import { brandingFromConfig } from '../src/rt/branding.js';
import type { Route } from '../src/routing/schema.js';
import { RoutingTable } from '../src/routing/routing-table.js';
import type { AuditEvent } from '../src/audit/audit-log.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';

const routes = (raw: unknown[]): Route[] => routingSchema.routes.parse(raw);
const PACS_A = { aet: 'PACS_A', host: '10.0.0.1', port: 104 };
const PACS_B = { aet: 'PACS_B', host: '10.0.0.2', port: 11112, tls: true };
const FIXED = [{ aet: 'FIXED', host: '10.0.0.9', port: 104, tls: false }];

describe('routing rules schema', () => {
  it('fills the defaults and accepts the documented shape', () => {
    const [r] = routes([{ name: 'ct-sim', match: { calling_aet: ['CTSIM1'] }, return_to: PACS_A }]);
    expect(r).toMatchObject({ name: 'ct-sim', dry_run: false, return_to: { ...PACS_A, tls: false }, match: { calling_aet: ['CTSIM1'] } });
    const [any] = routes([{ name: 'all' }]);
    expect(any.match).toEqual({});
    expect(any.return_to).toBeNull();
  });

  it('names the path of every bad field', () => {
    const bad = [
      [{ routes: [{ name: 'x', return_to: { aet: 'A', host: 'h', port: 70000 } }] }, 'routes.0.return_to.port'],
      [{ routes: [{ name: 'x', match: { peer: ['10.0.0.0/33'] } }] }, 'routes.0.match.peer.0'],
      [{ routes: [{ name: 'x', dry_run: 'test_destination' }] }, 'routes.0.test_destination'],
      [{ routes: [{ name: 'x', branding: { structure_set_label: 'NOT FOR CLINICAL USE' } }] }, 'routes.0.branding.structure_set_label'],
      [{ routes: [{ name: 'x', constraints: { min_images: 50, max_images: 10 } }] }, 'routes.0.constraints.min_images'],
      [{ routes: [{ name: 'x', colour: 'red' }] }, 'routes.0'],
      [{ routes: [{ name: 'a' }, { name: 'a' }] }, 'routes.1.name'],
      [{ rules: [] }, '(root)'],
    ] as const;
    for (const [body, path] of bad) {
      const v = validateRouting(body);
      expect(v.ok, JSON.stringify(body)).toBe(false);
      if (!v.ok) expect(v.issues.map((i) => i.path), JSON.stringify(body)).toContain(path);
    }
    const label = validateRouting({ routes: [{ name: 'x', branding: { structure_set_label: 'NOT FOR CLINICAL USE' } }] });
    expect(!label.ok && label.error).toMatch(/StructureSetLabel \(SH\) allows at most 16 characters/);
  });

  it('is part of the config file schema (node.routes, node.result_branding)', () => {
    const c = configSchema.parse({ node: { routes: [{ name: 'r1', match: { called_aet: ['RTP_TEST'] }, dry_run: 'no_send' }], result_branding: { structure_set_label: 'NOT FOR CLIN USE' } } });
    expect(c.node.routes[0].dry_run).toBe('no_send');
    expect(c.node.result_branding).toEqual({ structure_set_label: 'NOT FOR CLIN USE' });
    expect(configSchema.parse({}).node.routes).toEqual([]);
    expect(configSchema.parse({}).node.result_branding).toBeNull();
    expect(configSchema.safeParse({ node: { routes: [{ name: 'r', return_map: {} }] } }).success).toBe(false);
  });
});

describe('matching', () => {
  const table = routes([
    { name: 'sim1', match: { calling_aet: ['CTSIM1'] }, return_to: PACS_A },
    { name: 'sim2-lan', match: { calling_aet: ['CTSIM2'], peer: ['192.168.10.0/24', 'fd00::/8'] }, return_to: PACS_B },
    { name: 'test-ae', match: { called_aet: ['RTP_TEST'] }, dry_run: 'no_send' },
  ]);
  const origin = (callingAet: string | null, peer: string | null, calledAet: string | null = 'RTPIPELINE') => ({ callingAet, peer, calledAet });

  it('takes the first route whose every given field matches', () => {
    expect(matchRoute(table, origin('CTSIM1', '10.1.1.1'))?.name).toBe('sim1');
    expect(matchRoute(table, origin('CTSIM2', '192.168.10.77'))?.name).toBe('sim2-lan');
    expect(matchRoute(table, origin('CTSIM2', '::ffff:192.168.10.77'))?.name).toBe('sim2-lan');
    expect(matchRoute(table, origin('CTSIM2', 'fd12::5'))?.name).toBe('sim2-lan');
    // Right AE, wrong network: not this route, and no other matches.
    expect(matchRoute(table, origin('CTSIM2', '192.168.11.1'))).toBeUndefined();
    expect(matchRoute(table, origin('OTHER', '10.1.1.1', 'RTP_TEST'))?.name).toBe('test-ae');
    // First match wins: CTSIM1 calling RTP_TEST still takes sim1.
    expect(matchRoute(table, origin('CTSIM1', '10.1.1.1', 'RTP_TEST'))?.name).toBe('sim1');
    // An upload has no AE: only a route without AE conditions can take it.
    expect(matchRoute(table, origin(null, null, null))).toBeUndefined();
    expect(matchRoute(routes([{ name: 'all' }]), origin(null, null, null))?.name).toBe('all');
  });

  it('compares CIDR blocks bit by bit', () => {
    expect(inCidr('10.1.2.3', '10.0.0.0/8')).toBe(true);
    expect(inCidr('11.1.2.3', '10.0.0.0/8')).toBe(false);
    expect(inCidr('10.1.2.3', '10.1.2.3')).toBe(true);
    expect(inCidr('10.1.2.4', '10.1.2.3')).toBe(false);
    expect(inCidr('172.31.255.255', '172.16.0.0/12')).toBe(true);
    expect(inCidr('172.32.0.0', '172.16.0.0/12')).toBe(false);
    expect(inCidr('1.2.3.4', '0.0.0.0/0')).toBe(true);
    expect(inCidr('2001:db8::1', '2001:db8::/32')).toBe(true);
    expect(inCidr('2001:db9::1', '2001:db8::/32')).toBe(false);
    expect(inCidr('::1', '::1')).toBe(true);
    expect(inCidr('10.0.0.1', '::ffff:10.0.0.0/104')).toBe(true);
    expect(inCidr('10.0.0.1', 'fd00::/8')).toBe(false);
    expect(inCidr('not-an-ip', '10.0.0.0/8')).toBe(false);
  });
});

describe('input constraints', () => {
  const ct = (images: number, uid = '1.2.3'): SeriesFacts => ({ seriesUid: uid, modality: 'CT', images });
  const c = (raw: unknown) => routes([{ name: 'ct-sim', constraints: raw }])[0].constraints;

  it('says which constraint failed, with the value, the limit and the route', () => {
    expect(constraintFailure(c({ min_images: 50 }), [ct(42)], undefined, 'ct-sim')).toBe('42 images < min_images 50 (route ct-sim)');
    expect(constraintFailure(c({ max_images: 40 }), [ct(42)], undefined, 'ct-sim')).toBe('42 images > max_images 40 (route ct-sim)');
    expect(constraintFailure(c({ min_images: 40, max_images: 50 }), [ct(42)], undefined, 'ct-sim')).toBeNull();
    // The largest CT series is the one checked (the one the pipeline segments).
    expect(constraintFailure(c({ min_images: 50 }), [ct(2, 'scout'), ct(120, 'main')], undefined, 'ct-sim')).toBeNull();
    expect(constraintFailure(c({ modalities: ['CT'] }), [{ seriesUid: '1', modality: 'MR', images: 40 }], undefined, 'mr')).toBe('no CT series in the study (it has MR) (route mr)');
    expect(constraintFailure(c({ modalities: ['mr'], min_images: 10 }), [{ seriesUid: '1', modality: 'MR', images: 40 }], undefined, 'mr')).toBeNull();
  });

  it('checks body part (case-insensitive) and slice thickness of every image', () => {
    const details = (bodyParts: string[], sliceThicknessMm: (number | null)[]) => ({ bodyParts, sliceThicknessMm });
    const series = [ct(3)];
    expect(constraintFailure(c({ body_parts: ['chest', 'thorax'] }), series, details(['CHEST', 'CHEST', 'Chest'], [3, 3, 3]), 'r')).toBeNull();
    expect(constraintFailure(c({ body_parts: ['CHEST'] }), series, details(['CHEST', 'HEAD', 'CHEST'], [3, 3, 3]), 'r')).toBe('BodyPartExamined HEAD not in body_parts [CHEST] (route r)');
    expect(constraintFailure(c({ body_parts: ['CHEST'] }), series, details(['', '', ''], [3, 3, 3]), 'r')).toMatch(/^BodyPartExamined missing in CT series 1\.2\.3/);
    expect(constraintFailure(c({ slice_thickness_mm: { min: 1, max: 3 } }), series, details(['', '', ''], [2, 3, 2]), 'r')).toBeNull();
    expect(constraintFailure(c({ slice_thickness_mm: { max: 3 } }), series, details(['', '', ''], [2, 5, 2]), 'r')).toBe('SliceThickness 5 mm > slice_thickness_mm.max 3 (route r)');
    expect(constraintFailure(c({ slice_thickness_mm: { min: 2 } }), series, details(['', '', ''], [1.25, 3, 3]), 'r')).toBe('SliceThickness 1.25 mm < slice_thickness_mm.min 2 (route r)');
    expect(constraintFailure(c({ slice_thickness_mm: { min: 2 } }), series, details(['', '', ''], [3, null, 3]), 'r')).toMatch(/^SliceThickness missing/);
    expect(constraintFailure(c({ min_images: 1 }), [], undefined, 'r')).toBe('no CT series in the study to check the constraints on (route r)');
  });
});

describe('delivery plan', () => {
  const rules: RoutingRules = {
    routes: routes([
      { name: 'sim1', match: { calling_aet: ['CTSIM1'] }, return_to: PACS_A, branding: null },
      { name: 'fixed', match: { calling_aet: ['CTSIM3'] } },
      { name: 'dry', match: { calling_aet: ['DRY'] }, dry_run: 'no_send', return_to: PACS_A },
      { name: 'test', match: { calling_aet: ['TEST'] }, dry_run: 'test_destination', test_destination: PACS_B, branding: { series_description: 'TEST ONLY' } },
    ]),
    resultBranding: { structure_set_label: 'NOT FOR CLIN USE' },
  };
  const plan = (aet: string) => deliveryPlan(matchRoute(rules.routes, { callingAet: aet, calledAet: null, peer: null }), rules, FIXED);

  it('sends to the route, the fixed destinations, a test destination, or nowhere with a reason', () => {
    expect(plan('CTSIM1')).toEqual({ route: 'sim1', destinations: [{ ...PACS_A, tls: false }], held: null, testDestination: false, branding: null });
    expect(plan('CTSIM3')).toMatchObject({ route: 'fixed', destinations: FIXED, branding: rules.resultBranding });
    expect(plan('NOBODY')).toMatchObject({ route: null, destinations: FIXED, held: null, branding: rules.resultBranding });
    expect(plan('DRY')).toMatchObject({ route: 'dry', destinations: [], held: 'dry run (route dry)' });
    expect(plan('TEST')).toMatchObject({ route: 'test', destinations: [PACS_B], testDestination: true, branding: { series_description: 'TEST ONLY' } });
  });

  it('recognises our results coming back, branded or not', () => {
    expect(isOwnResultDescription('rtpipeline auto-segmentation (builtin)', undefined)).toBe(true);
    expect(isOwnResultDescription('TEST ONLY', rules)).toBe(true);
    expect(isOwnResultDescription('Planning structures', rules)).toBe(false);
  });
});

describe('RTSTRUCT branding', () => {
  const input = {
    ct: {
      studyInstanceUid: '1.2.3', seriesInstanceUid: '1.2.3.4', frameOfReferenceUid: '1.2.3.5', patientId: 'P', patientName: 'P^Q',
      slices: [{ sopInstanceUid: '1.2.3.4.1', sopClassUid: '1.2.840.10008.5.1.4.1.1.2', zMm: 0 }],
    },
    rois: [{ number: 1, name: 'BODY', color: [1, 2, 3] as [number, number, number], interpretedType: 'EXTERNAL' as const, algorithm: 'AUTOMATIC' as const, contours: [] }],
    seriesDescription: 'rtpipeline auto-segmentation (builtin)',
    structureSetLabel: 'RS_auto',
    deterministic: { seed: 's' },
  };

  it('sets label, name, description and the ROI name prefix, and changes the UIDs', () => {
    const plain = readRtStruct(buildRtStruct(input));
    const branding = brandingFromConfig({ structure_set_label: 'NOT FOR CLIN USE', structure_set_name: 'NOT FOR CLINICAL USE', roi_name_prefix: 'TEST_' });
    const bytes = buildRtStruct({ ...input, branding });
    const branded = readRtStruct(bytes);
    expect(plain.structureSetLabel).toBe('RS_auto');
    expect(branded.structureSetLabel).toBe('NOT FOR CLIN USE');
    expect(bytes.includes(Buffer.from('NOT FOR CLINICAL USE'))).toBe(true);
    expect(bytes.includes(Buffer.from('rtpipeline auto-segmentation (builtin)'))).toBe(true);
    expect(branded.rois.map((r) => r.name)).toEqual(['TEST_BODY']);
    expect(branded.sopInstanceUid).not.toBe(plain.sopInstanceUid);
    expect(brandingFromConfig(null)).toBeUndefined();
    expect(brandingFromConfig({})).toBeUndefined();
  });
});

describe('routing table', () => {
  const node = configSchema.parse({ node: { routes: [{ name: 'from-config' }] } }).node;
  const log = pino({ level: 'silent' });

  it('applies edits one at a time, file first, keeps earlier snapshots intact, and audits both outcomes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rtp-routing-'));
    const events: AuditEvent[] = [];
    const table = await RoutingTable.load(dir, node, { record: (e) => events.push(e) }, log);
    const first = table.current();
    expect(first).toMatchObject({ source: 'config', routes: [{ name: 'from-config' }] });
    const [a, b, bad] = await Promise.all([
      table.replace({ routes: [{ name: 'a' }] }, '10.0.0.1'),
      table.replace({ routes: [{ name: 'b' }], result_branding: { roi_name_prefix: 'T_' } }, '10.0.0.2'),
      table.replace({ routes: [{ name: 'c', return_to: { aet: 'X' } }] }, '10.0.0.3'),
    ]);
    expect([a.ok, b.ok, bad.ok]).toEqual([true, true, false]);
    // The last good edit is in force, in memory and on disk; a job holding `first` still sees its rules.
    expect(table.current()).toMatchObject({ source: 'file', routes: [{ name: 'b' }], resultBranding: { roi_name_prefix: 'T_' } });
    expect(JSON.parse(readFileSync(path.join(dir, 'routing.json'), 'utf8')).routes[0].name).toBe('b');
    expect(first.routes.map((r) => r.name)).toEqual(['from-config']);
    expect(events.map((e) => [e.type, e.outcome, e.remote])).toEqual([
      ['routing.changed', 'success', '10.0.0.1'],
      ['routing.changed', 'success', '10.0.0.2'],
      ['routing.changed', 'failure', '10.0.0.3'],
    ]);
    expect(events[1].before).toBe(events[0].after);
    // The next start takes the file over the config.
    const reloaded = await RoutingTable.load(dir, node, { record: () => undefined }, log);
    expect(reloaded.current()).toMatchObject({ source: 'file', hash: table.current().hash });
  });

  it('refuses to start on a broken routing.json, naming the file and the field', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rtp-routing-'));
    writeFileSync(path.join(dir, 'routing.json'), JSON.stringify({ routes: [{ name: 'x', dry_run: 'sometimes' }] }));
    await expect(RoutingTable.load(dir, node, { record: () => undefined }, log)).rejects.toThrow(/routing\.json: invalid routing rules: routes\.0\.dry_run/);
    writeFileSync(path.join(dir, 'routing.json'), '{"routes": [');
    await expect(RoutingTable.load(dir, node, { record: () => undefined }, log)).rejects.toThrow(/routing\.json is not valid JSON/);
  });
});
