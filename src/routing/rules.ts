/**
 * Return routing decisions, pure: which route a study takes (first match wins), whether its input
 * passes the route's constraints, and where (and whether) its result goes, branded how.
 */
import type { Destination } from '../config/schema.js';
import { parseCidr, type ResultBranding, type Route, type RouteConstraints } from './schema.js';

/** Who sent the study, as recorded at receive time (null when unknown, e.g. an upload). */
export interface StudyOrigin {
  callingAet: string | null;
  calledAet: string | null;
  /** The sender's IP address (IPv4-mapped IPv6 addresses are compared as IPv4). */
  peer: string | null;
}

/** The rules in force: a snapshot; a job keeps the one it started with. */
export interface RoutingRules {
  routes: readonly Route[];
  /** Branding for studies whose route does not set one (and for studies no route matches). */
  resultBranding: ResultBranding | null;
}

/** What the job does with its result. */
export interface DeliveryPlan {
  /** The matched route's name; null = no route matched (the defaults). */
  route: string | null;
  /** Where RS_auto goes; empty when held or when there is nowhere to send. */
  destinations: Destination[];
  /** Why nothing is sent although destinations exist (dry run no_send), else null. */
  held: string | null;
  /** The result goes to a route's test destination (dry run test_destination). */
  testDestination: boolean;
  branding: ResultBranding | null;
}

export function matchRoute(routes: readonly Route[], origin: StudyOrigin): Route | undefined {
  return routes.find((r) => routeMatches(r, origin));
}

export function routeMatches(route: Route, origin: StudyOrigin): boolean {
  const m = route.match;
  // AE titles compare as the standard does: significant characters, case-sensitive.
  if (m.calling_aet && !(origin.callingAet !== null && m.calling_aet.includes(origin.callingAet.trim()))) return false;
  if (m.called_aet && !(origin.calledAet !== null && m.called_aet.includes(origin.calledAet.trim()))) return false;
  if (m.peer && !(origin.peer !== null && m.peer.some((c) => inCidr(origin.peer!, c)))) return false;
  return true;
}

/** Whether `address` lies in `cidr` (an address or a block); false for anything unparsable. */
export function inCidr(address: string, cidr: string): boolean {
  const block = parseCidr(cidr);
  const a = ipBytes(unmapIpv4(address));
  if (!block || !a) return false;
  const b = ipBytes(unmapIpv4(block.address));
  if (!b || a.length !== b.length) return false;
  // A block written as ::ffff:a.b.c.d/n covers IPv4 addresses: its prefix counts the mapped bits.
  const prefix = block.family === 6 && b.length === 4 ? Math.max(0, block.prefix - 96) : block.prefix;
  for (let bit = 0; bit < prefix; bit++) {
    const mask = 0x80 >> bit % 8;
    if ((a[bit >> 3] & mask) !== (b[bit >> 3] & mask)) return false;
  }
  return true;
}

function unmapIpv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address.trim());
  return m ? m[1] : address.trim();
}

/** 4 or 16 bytes of an IP address text; undefined when it is not one. */
export function ipBytes(text: string): number[] | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    return bytes.every((b) => b <= 255) ? bytes : undefined;
  }
  if (!text.includes(':')) return undefined;
  let t = text.replace(/%.*$/, '');
  // An embedded IPv4 tail (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) becomes two hex groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (tail) {
    const b = ipBytes(tail[1]);
    if (!b) return undefined;
    t = t.slice(0, -tail[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const halves = t.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return all.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

// --- input constraints -----------------------------------------------------------------------

/** A series of the study as the index knows it. */
export interface SeriesFacts {
  seriesUid: string;
  modality: string;
  images: number;
}

/** The header values of the checked series' images that the constraints read. */
export interface SeriesDetails {
  /** BodyPartExamined of each image ('' when absent). */
  bodyParts: string[];
  /** SliceThickness of each image (null when absent). */
  sliceThicknessMm: (number | null)[];
}

/** The series the constraints are checked on: the largest of the wanted modalities (CT by default,
 *  the series the pipeline segments). */
export function checkedSeries(series: readonly SeriesFacts[], c: RouteConstraints | undefined): SeriesFacts | undefined {
  const wanted = c?.modalities ?? ['CT'];
  return series.filter((s) => wanted.includes(s.modality.toUpperCase())).sort((a, b) => b.images - a.images)[0];
}

/** Whether checking `c` needs the images' headers (body part, slice thickness). */
export function needsDetails(c: RouteConstraints | undefined): boolean {
  return !!c && (c.body_parts !== undefined || c.slice_thickness_mm !== undefined);
}

/**
 * The first constraint the study fails, as a sentence that names the value, the limit and the
 * route ("42 images < min_images 50 (route ct-sim)"); null when it passes them all.
 */
export function constraintFailure(
  c: RouteConstraints | undefined,
  series: readonly SeriesFacts[],
  details: SeriesDetails | undefined,
  routeName: string,
): string | null {
  if (!c) return null;
  const where = `(route ${routeName})`;
  const target = checkedSeries(series, c);
  if (c.modalities && !target) {
    const present = [...new Set(series.map((s) => s.modality))].join(', ') || 'nothing';
    return `no ${c.modalities.join('/')} series in the study (it has ${present}) ${where}`;
  }
  const needsSeries = c.min_images !== undefined || c.max_images !== undefined || needsDetails(c);
  if (!target) return needsSeries ? `no CT series in the study to check the constraints on ${where}` : null;
  const label = `${target.modality} series ${target.seriesUid}`;
  if (c.min_images !== undefined && target.images < c.min_images) return `${target.images} images < min_images ${c.min_images} ${where}`;
  if (c.max_images !== undefined && target.images > c.max_images) return `${target.images} images > max_images ${c.max_images} ${where}`;
  if (c.body_parts) {
    const allowed = c.body_parts.map((b) => b.trim().toUpperCase());
    const seen = [...new Set((details?.bodyParts ?? []).map((b) => b.trim().toUpperCase()))];
    if (seen.length === 0 || seen.includes('')) return `BodyPartExamined missing in ${label}; body_parts needs one of ${allowed.join(', ')} ${where}`;
    const bad = seen.filter((b) => !allowed.includes(b));
    if (bad.length > 0) return `BodyPartExamined ${bad.join(', ')} not in body_parts [${allowed.join(', ')}] ${where}`;
  }
  const t = c.slice_thickness_mm;
  if (t) {
    const values = details?.sliceThicknessMm ?? [];
    if (values.length === 0 || values.some((v) => v === null)) return `SliceThickness missing in ${label}; slice_thickness_mm needs it ${where}`;
    const nums = values as number[];
    const thin = Math.min(...nums);
    const thick = Math.max(...nums);
    if (t.min !== undefined && thin < t.min) return `SliceThickness ${thin} mm < slice_thickness_mm.min ${t.min} ${where}`;
    if (t.max !== undefined && thick > t.max) return `SliceThickness ${thick} mm > slice_thickness_mm.max ${t.max} ${where}`;
  }
  return null;
}

// --- delivery --------------------------------------------------------------------------------

/** Where the result of a study on `route` goes (undefined route = no match: the defaults). */
export function deliveryPlan(route: Route | undefined, rules: RoutingRules, fixed: readonly Destination[]): DeliveryPlan {
  const branding = route && route.branding !== undefined ? route.branding : rules.resultBranding;
  if (!route) return { route: null, destinations: [...fixed], held: null, testDestination: false, branding };
  if (route.dry_run === 'no_send') return { route: route.name, destinations: [], held: `dry run (route ${route.name})`, testDestination: false, branding };
  if (route.dry_run === 'test_destination') return { route: route.name, destinations: [route.test_destination!], held: null, testDestination: true, branding };
  return { route: route.name, destinations: route.return_to ? [route.return_to] : [...fixed], held: null, testDestination: false, branding };
}

/** Whether a series description is one of our results coming back: the default description, or a
 *  branded one of any rule in force (so a branded RTSTRUCT the PACS returns is not taken for a
 *  planning structure set). */
export function isOwnResultDescription(description: string | null, rules: RoutingRules | undefined): boolean {
  const d = (description ?? '').trim();
  if (d.startsWith('rtpipeline')) return true;
  if (!rules || d === '') return false;
  const branded = [rules.resultBranding, ...rules.routes.map((r) => r.branding)].map((b) => b?.series_description).filter((x): x is string => !!x);
  return branded.includes(d);
}
