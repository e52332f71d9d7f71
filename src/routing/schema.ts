import net from 'node:net';
import { z } from 'zod';
import type { aeTitle as AeTitleSchema, destinationSchema as DestinationSchema } from '../config/schema.js';

/**
 * The schemas of return routing (node.routes, node.result_branding, and the body of PUT /api/routing).
 *
 * Built from the config's AE title and destination schemas, which are passed in rather than
 * imported: config/schema.ts uses these schemas inside node{}, and a runtime import back would
 * be a module cycle. config/schema.ts builds them once (`routingSchemas`), so the config file and
 * the API validate with the very same objects.
 */

/** An IPv4/IPv6 address, or a CIDR block (10.1.0.0/16, fd00::/8). */
export function parseCidr(text: string): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const [address, prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const family = net.isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  const max = family === 4 ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: max, family };
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  return prefix <= max ? { address, prefix, family } : undefined;
}

/** DICOM text VRs: printable ASCII without backslash (the value separator). */
const dicomText = (max: number, vr: string) =>
  z
    .string()
    .min(1)
    .max(max, `${vr} allows at most ${max} characters`)
    .regex(/^[\x20-\x5b\x5d-\x7e]*$/, `${vr} takes printable ASCII without backslash`);

export function routingSchemas(aeTitle: typeof AeTitleSchema, destinationSchema: typeof DestinationSchema) {
  const branding = z
    .object({
      structure_set_label: dicomText(16, 'StructureSetLabel (SH)')
        .optional()
        .describe('StructureSetLabel (3006,0002) of RS_auto, e.g. "NOT FOR CLIN USE"; SH: 16 characters at most, longer text goes in structure_set_name'),
      structure_set_name: dicomText(64, 'StructureSetName (LO)').optional().describe('StructureSetName (3006,0004) of RS_auto, e.g. "NOT FOR CLINICAL USE"'),
      series_description: dicomText(64, 'SeriesDescription (LO)').optional().describe('SeriesDescription (0008,103E) of RS_auto'),
      roi_name_prefix: dicomText(32, 'an ROI name prefix').optional().describe('Put before every ROI name of RS_auto (the name is cut to 64 characters), e.g. "TEST_"'),
    })
    .strict();

  const constraints = z
    .object({
      modalities: z
        .array(z.string().min(1).max(16).transform((s) => s.trim().toUpperCase()))
        .min(1)
        .optional()
        .describe('The study must hold a series of one of these modalities; its largest such series is the one the other constraints check (default: its largest CT series)'),
      body_parts: z.array(z.string().min(1).max(16)).min(1).optional().describe('BodyPartExamined of that series must be one of these (case-insensitive)'),
      min_images: z.number().int().nonnegative().optional().describe('That series has at least this many images'),
      max_images: z.number().int().positive().optional().describe('That series has at most this many images'),
      slice_thickness_mm: z
        .object({
          min: z.number().positive().optional().describe('Thinnest SliceThickness accepted, mm'),
          max: z.number().positive().optional().describe('Thickest SliceThickness accepted, mm'),
        })
        .strict()
        .refine((t) => t.min === undefined || t.max === undefined || t.min <= t.max, { message: 'min is larger than max', path: ['min'] })
        .optional()
        .describe('SliceThickness of every image of that series within these bounds'),
    })
    .strict()
    .refine((c) => c.min_images === undefined || c.max_images === undefined || c.min_images <= c.max_images, { message: 'min_images is larger than max_images', path: ['min_images'] });

  const peer = z.string().refine((s) => parseCidr(s) !== undefined, { message: 'not an IP address or CIDR block (e.g. 10.1.2.3 or 10.1.0.0/16)' });

  const route = z
    .object({
      name: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a route name uses letters, digits, ".", "_" and "-"')
        .describe('Name of the route, shown in logs, job results and the timeline'),
      match: z
        .object({
          calling_aet: z.array(aeTitle).min(1).optional().describe('Calling AE titles of the sender (any of them)'),
          called_aet: z.array(aeTitle).min(1).optional().describe('AE titles the sender called us by (any of them)'),
          peer: z.array(peer).min(1).optional().describe('IP addresses or CIDR blocks of the sender (any of them)'),
        })
        .strict()
        .prefault({})
        .describe('What the study\'s sender must be; every given field must match, and {} matches every study'),
      return_to: destinationSchema.nullable().default(null).describe('Where RS_auto of the matched studies goes (the sender\'s listening AE, host, port); null = node.destinations'),
      constraints: constraints.optional().describe('Input constraints; a study failing one is skipped (job done, nothing sent) with the reason in its timeline'),
      dry_run: z
        .union([z.literal(false), z.enum(['no_send', 'test_destination'])])
        .default(false)
        .describe('Commissioning: false; no_send = process and keep the results, send nothing; test_destination = send to test_destination instead'),
      test_destination: destinationSchema.optional().describe('Where results go with dry_run: test_destination'),
      branding: branding.nullable().optional().describe('Result branding of this route; absent = node.result_branding, null = none'),
    })
    .strict()
    .superRefine((r, ctx) => {
      if (r.dry_run === 'test_destination' && !r.test_destination) {
        ctx.addIssue({ code: 'custom', path: ['test_destination'], message: 'dry_run: test_destination needs a test_destination {aet, host, port}' });
      }
    });

  const routes = z.array(route).superRefine((list, ctx) => {
    const seen = new Map<string, number>();
    list.forEach((r, i) => {
      const first = seen.get(r.name);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `route name "${r.name}" is already used by route ${first}` });
      else seen.set(r.name, i);
    });
  });

  /** The body of PUT /api/routing and the content of <data_dir>/routing.json. */
  const document = z
    .object({
      routes: routes.describe('The routing rules, first match wins'),
      result_branding: branding.nullable().optional().describe('Default branding; absent = node.result_branding of the config'),
    })
    .strict();

  return { branding, constraints, route, routes, document };
}

type Schemas = ReturnType<typeof routingSchemas>;
export type Route = z.output<Schemas['route']>;
export type RouteConstraints = z.output<Schemas['constraints']>;
export type ResultBranding = z.output<Schemas['branding']>;
export type RoutingDocument = z.output<Schemas['document']>;

/** Zod issues as "path: message" lines, the path in the dotted form of the config and API. */
export function describeIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
}
