/** Matching alert rules to widgets, and their state. Pure. */

import type { AlertRule, AlertState, Condition, Dimensions, WindowPoint, Widget } from './types';

/** Same keys and values (order-insensitive); empty values count as absent. */
export function sameDimensions(a: Dimensions, b: Dimensions): boolean {
  const clean = (d: Dimensions) => Object.entries(d).filter(([, v]) => v !== '');
  const ea = clean(a);
  const eb = clean(b);
  if (ea.length !== eb.length) return false;
  return ea.every(([k, v]) => b[k] === v);
}

/** The rules watching exactly what the widget shows: metric, dimensions and stat. */
export function rulesForWidget(widget: Widget, rules: readonly AlertRule[]): AlertRule[] {
  return rules.filter(
    (r) =>
      r.metric_name === widget.metric_name &&
      r.stat === widget.stat &&
      sameDimensions(r.dimensions, widget.dimensions),
  );
}

export function breached(condition: Condition, value: number, threshold: number): boolean {
  switch (condition) {
    case 'gt':
      return value > threshold;
    case 'lt':
      return value < threshold;
    case 'gte':
      return value >= threshold;
    case 'lte':
      return value <= threshold;
    case 'eq':
      return value === threshold;
  }
}

export const CONDITION_SYMBOL: Record<Condition, string> = {
  gt: '>',
  lt: '<',
  gte: '≥',
  lte: '≤',
  eq: '=',
};

/**
 * A rule's state, evaluated on the windows shown like the aggregator does (the API does not
 * report rule state): the last `for_windows` windows it looks at (final ones, or provisional
 * too when `evaluate_on` is provisional) all breach -> firing; the newest breaches but fewer
 * than that -> pending.
 */
export function ruleState(rule: AlertRule, points: readonly WindowPoint[]): AlertState {
  const considered = points.filter(
    (p) => p.value !== null && (p.final || rule.evaluate_on === 'provisional'),
  );
  const need = Math.max(1, rule.for_windows);
  let run = 0;
  for (let i = considered.length - 1; i >= 0; i--) {
    const p = considered[i]!;
    if (p.value !== null && breached(rule.condition, p.value, rule.threshold)) run++;
    else break;
  }
  if (run >= need) return 'firing';
  if (run > 0) return 'pending';
  return 'ok';
}
