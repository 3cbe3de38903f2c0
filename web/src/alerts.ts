/**
 * Matching alert rules to widgets, with the state the gateway serves for each rule
 * (`GET /v1/alert-states`: the aggregators' own state, never guessed from the windows on
 * screen). Pure.
 */

import type { AlertRule, AlertState, Condition, Dimensions, Widget } from './types';

/** A rule's served state; `unknown` while the states could not be read. */
export type ServedState = AlertState | 'unknown';

/** Same keys and values (order-insensitive); empty values count as absent. */
export function sameDimensions(a: Dimensions, b: Dimensions): boolean {
  const clean = (d: Dimensions) => Object.entries(d).filter(([, v]) => v !== '');
  const ea = clean(a);
  const eb = clean(b);
  if (ea.length !== eb.length) return false;
  return ea.every(([k, v]) => b[k] === v);
}

/** A rule on a widget: its state, and whether its threshold can be drawn on the widget's
 * values (the rule compares the same stat of the same series). */
export interface WidgetRule {
  rule: AlertRule;
  state: ServedState;
  sameQuery: boolean;
}

/** The rules watching the widget's metric, with their served states (worst first). */
export function rulesForWidget(
  widget: Widget,
  rules: readonly AlertRule[],
  states: ReadonlyMap<string, AlertState>,
): WidgetRule[] {
  const rank: Record<ServedState, number> = {
    firing: 0,
    pending: 1,
    unknown: 2,
    resolved: 3,
    ok: 4,
  };
  return rules
    .filter((r) => r.metric_name === widget.metric_name)
    .map((rule) => ({
      rule,
      state: states.get(rule.alert_id) ?? ('unknown' as const),
      sameQuery: rule.stat === widget.stat && sameDimensions(rule.dimensions, widget.dimensions),
    }))
    .sort((a, b) => rank[a.state] - rank[b.state]);
}

export const CONDITION_SYMBOL: Record<Condition, string> = {
  gt: '>',
  lt: '<',
  gte: '≥',
  lte: '≤',
  eq: '=',
};
