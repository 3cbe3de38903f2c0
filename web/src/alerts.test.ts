import { describe, expect, it } from 'vitest';
import { ruleStatus, rulesForWidget, sameDimensions } from './alerts';
import type { AlertRule, Widget, WindowPoint } from './types';

const rule = (over: Partial<AlertRule> = {}): AlertRule => ({ id: 'r1', metric_name: 'latency', dimensions: { region: 'eu' }, stat: 'p99', condition: 'gt', threshold: 100, for_windows: 1, evaluate_on: 'final', ...over });
const widget: Widget = { id: 'w', metric_name: 'latency', dimensions: { region: 'eu' }, stat: 'p99', time_window: 'last_1h', viz_type: 'line_chart' };
const pts = (values: number[], lastFinal = true): WindowPoint[] =>
  values.map((v, i) => ({ start: i * 60_000, end: (i + 1) * 60_000, value: v, revision: 0, final: i < values.length - 1 || lastFinal, lateCount: 0, updatedAt: 0 }));

describe('rulesForWidget', () => {
  it('matches metric, stat and dimensions exactly', () => {
    expect(rulesForWidget(widget, [rule()])).toHaveLength(1);
    expect(rulesForWidget(widget, [rule({ stat: 'p50' })])).toHaveLength(0);
    expect(rulesForWidget(widget, [rule({ dimensions: {} })])).toHaveLength(0);
    expect(rulesForWidget(widget, [rule({ metric_name: 'other' })])).toHaveLength(0);
  });
  it('compares dimensions ignoring order and empty values', () => {
    expect(sameDimensions({ a: '1', b: '2' }, { b: '2', a: '1' })).toBe(true);
    expect(sameDimensions({ a: '1', b: '' }, { a: '1' })).toBe(true);
    expect(sameDimensions({ a: '1' }, { a: '2' })).toBe(false);
  });
});

describe('ruleStatus', () => {
  it('fires when the last closed window breaches', () => {
    expect(ruleStatus(rule(), pts([50, 150])).state).toBe('firing');
    expect(ruleStatus(rule(), pts([150, 50])).state).toBe('ok');
  });
  it('ignores the open window unless the rule evaluates provisional values', () => {
    expect(ruleStatus(rule(), pts([50, 150], false)).state).toBe('ok');
    expect(ruleStatus(rule({ evaluate_on: 'provisional' }), pts([50, 150], false)).state).toBe('firing');
  });
  it('is pending until for_windows windows breach', () => {
    expect(ruleStatus(rule({ for_windows: 3 }), pts([50, 150, 150])).state).toBe('pending');
    expect(ruleStatus(rule({ for_windows: 3 }), pts([150, 150, 150])).state).toBe('firing');
  });
  it('takes the gateway state when there is one', () => {
    expect(ruleStatus(rule(), pts([50]), 'firing')).toEqual({ state: 'firing', source: 'gateway' });
  });
});
