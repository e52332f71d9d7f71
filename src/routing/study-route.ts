import type { Destination } from '../config/schema.js';
import type { InstanceRow, StudyRow } from '../store/index-db.js';
import { checkedSeries, constraintFailure, deliveryPlan, matchRoute, needsDetails, type DeliveryPlan, type SeriesFacts } from './rules.js';
import type { RoutingSnapshot } from './routing-table.js';
import { readSeriesDetails } from './study-facts.js';

/** The routing decision for one study job. */
export interface StudyRouting {
  plan: DeliveryPlan;
  /** Why the study is not processed (a failed input constraint), else null. */
  skipped: string | null;
  /** Hash of the rules the decision was made with (they may change while the job runs). */
  rulesHash: string | null;
}

/**
 * Routes a study with the rules in force when its job starts: the sender recorded at receive time
 * picks the route, the route's constraints are checked on the study's images, and the plan says
 * where the result goes. Without rules (no routing table) the fixed destinations take everything.
 */
export async function routeStudy(
  rules: RoutingSnapshot | undefined,
  study: Pick<StudyRow, 'calling_aet' | 'calling_host' | 'called_aet'>,
  series: readonly { series_uid: string; modality: string; instance_count: number }[],
  instances: readonly Pick<InstanceRow, 'series_uid' | 'path'>[],
  fixed: readonly Destination[],
): Promise<StudyRouting> {
  if (!rules) return { plan: deliveryPlan(undefined, { routes: [], resultBranding: null }, fixed), skipped: null, rulesHash: null };
  const route = matchRoute(rules.routes, { callingAet: study.calling_aet, calledAet: study.called_aet ?? null, peer: study.calling_host });
  const plan = deliveryPlan(route, rules, fixed);
  const c = route?.constraints;
  if (!route || !c) return { plan, skipped: null, rulesHash: rules.hash };
  const facts: SeriesFacts[] = series.map((s) => ({ seriesUid: s.series_uid, modality: s.modality, images: s.instance_count }));
  const target = checkedSeries(facts, c);
  const details = target && needsDetails(c) ? await readSeriesDetails(instances.filter((i) => i.series_uid === target.seriesUid).map((i) => i.path)) : undefined;
  return { plan, skipped: constraintFailure(c, facts, details, route.name), rulesHash: rules.hash };
}
