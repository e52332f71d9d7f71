/**
 * When is a study complete? Pure: the facts the node gathered (arrivals, associations, slice
 * geometry, count hints, storage commitment, the sender's learned quiet time) in, a verdict out,
 * with the reason kept on the study and in its timeline.
 *
 * Strongest first:
 * 1. storage commitment: the sender asked us to commit every instance of the study;
 * 2. an open association still storing into the study: never complete;
 * 3. an incomplete image series (a hole in a CT's slice positions, a count hint not reached) holds
 *    the study until the maximum quiet time (then 'max_quiet', with the hole named);
 * 4. after the minimum quiet time: every image series has a count hint and reached it ('count_hint');
 *    the last association released normally ('association_released');
 * 5. the sender's quiet time (adaptive, or node.stable_seconds) without a new instance ('quiet').
 */
import { describeGeometry, type GeometryVerdict } from './geometry.js';

export type CompletionReason = 'storage_commitment' | 'association_released' | 'count_hint' | 'quiet' | 'max_quiet';

/** Modalities whose series are image stacks (a count hint or a geometry check is about them). */
const IMAGE_MODALITIES = new Set(['CT', 'MR', 'PT', 'NM']);

export interface SeriesFacts {
  seriesUid: string;
  modality: string;
  instances: number;
  /** Expected instances from the headers: ImagesInAcquisition, or NumberOfSlices for PT/NM; null if none. */
  countHint: number | null;
  /** Slice-geometry continuity (CT series); null when not checked. */
  geometry: GeometryVerdict | null;
}

/** How long this study's sender may pause before the study counts as quiet. */
export interface SenderQuiet {
  seconds: number;
  source: 'adaptive' | 'fixed';
  detail: string;
}

export interface StudyFacts {
  now: number;
  lastReceivedAt: number;
  /** An association (or upload, or watched-folder batch) is still storing into the study. */
  busy: boolean;
  /** When the last association that stored into the study released normally; null if none did (or it aborted). */
  releasedAt: number | null;
  /** Every instance of the study is covered by a storage commitment request. */
  committed: { transactionUid: string } | null;
  quiet: SenderQuiet;
  series: SeriesFacts[];
}

export interface EvidenceSettings {
  minQuietSeconds: number;
  /** How long an incomplete series may hold the study. */
  maxQuietSeconds: number;
  /** Hold on a CT geometry gap or a count hint not reached. */
  requireGeometry: boolean;
}

export interface Verdict {
  complete: boolean;
  reason: CompletionReason | null;
  detail: string;
  /** When the verdict may change without a new fact (ms epoch); null = only on a new event. */
  recheckAt: number | null;
}

export function decideCompletion(f: StudyFacts, s: EvidenceSettings): Verdict {
  if (f.committed) return done('storage_commitment', `storage commitment ${f.committed.transactionUid} covers all instances`);
  if (f.busy) return { complete: false, reason: null, detail: 'an association is still storing into the study', recheckAt: null };
  const quietMs = f.now - f.lastReceivedAt;
  const images = f.series.filter((x) => IMAGE_MODALITIES.has(x.modality));
  const holds = s.requireGeometry ? incompleteSeries(images) : [];
  if (holds.length > 0) {
    const maxMs = s.maxQuietSeconds * 1000;
    if (quietMs >= maxMs) return done('max_quiet', `waited ${s.maxQuietSeconds} s for ${holds.join('; ')}`);
    return { complete: false, reason: null, detail: `held: ${holds.join('; ')}`, recheckAt: f.lastReceivedAt + maxMs };
  }
  const minMs = s.minQuietSeconds * 1000;
  if (quietMs < minMs) return { complete: false, reason: null, detail: `within the minimum quiet time (${s.minQuietSeconds} s)`, recheckAt: f.lastReceivedAt + minMs };
  const hinted = images.filter((x) => x.countHint !== null);
  if (images.length > 0 && hinted.length === images.length) {
    return done('count_hint', hinted.map((x) => `${x.modality} ${x.seriesUid}: ${x.instances}/${x.countHint}`).join('; '));
  }
  if (f.releasedAt !== null && f.releasedAt >= f.lastReceivedAt) {
    const ct = images.filter((x) => x.geometry?.status === 'continuous').map((x) => `${x.modality} ${describeGeometry(x.geometry!)}`);
    return done('association_released', ['the last association released normally', ...ct].join('; '));
  }
  const quietLimitMs = f.quiet.seconds * 1000;
  if (quietMs >= quietLimitMs) return done('quiet', `${Math.round(quietMs / 100) / 10} s without a new instance; ${f.quiet.detail}`);
  return { complete: false, reason: null, detail: `waiting for ${f.quiet.seconds} s of quiet (${f.quiet.detail})`, recheckAt: f.lastReceivedAt + quietLimitMs };
}

/** Image series that say they are not all there yet. */
function incompleteSeries(images: readonly SeriesFacts[]): string[] {
  const out: string[] = [];
  for (const x of images) {
    if (x.geometry?.status === 'gap') out.push(`${x.modality} series ${x.seriesUid} ${describeGeometry(x.geometry)}`);
    if (x.countHint !== null && x.instances < x.countHint) out.push(`${x.modality} series ${x.seriesUid} has ${x.instances} of ${x.countHint} instances (count hint)`);
  }
  return out;
}

function done(reason: CompletionReason, detail: string): Verdict {
  return { complete: true, reason, detail, recheckAt: null };
}

export interface QuietSettings {
  adaptive: boolean;
  gapFactor: number;
  /** The quiet time without adaptation, or for a sender with too little history (node.stable_seconds). */
  stableSeconds: number;
  minQuietSeconds: number;
  maxQuietSeconds: number;
  /** Gaps needed before the learned value is trusted. */
  minHistory: number;
}

/**
 * The quiet time of a sender: gap_factor × the 95th percentile of its observed inter-arrival gaps,
 * clamped to [min, max]; node.stable_seconds when adaptation is off or the sender has little history.
 */
export function senderQuiet(aet: string | null, gapsMs: readonly number[], s: QuietSettings): SenderQuiet {
  if (!s.adaptive) return { seconds: s.stableSeconds, source: 'fixed', detail: `fixed quiet time ${s.stableSeconds} s (node.completion.adaptive is off)` };
  if (aet === null || gapsMs.length < s.minHistory) {
    return { seconds: s.stableSeconds, source: 'fixed', detail: `fixed quiet time ${s.stableSeconds} s (${aet ?? 'no calling AE'}: ${gapsMs.length} gaps observed, ${s.minHistory} needed to adapt)` };
  }
  const p95 = percentile(gapsMs, 0.95);
  const raw = (s.gapFactor * p95) / 1000;
  const seconds = Math.round(Math.min(s.maxQuietSeconds, Math.max(s.minQuietSeconds, raw)) * 1000) / 1000;
  return { seconds, source: 'adaptive', detail: `adaptive quiet time ${seconds} s for ${aet} (${s.gapFactor} × p95 gap ${Math.round(p95)} ms over ${gapsMs.length} gaps, within ${s.minQuietSeconds}..${s.maxQuietSeconds} s)` };
}

/** Nearest-rank percentile (q in 0..1) of a non-empty list. */
export function percentile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
