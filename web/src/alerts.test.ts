import { describe, expect, it } from 'vitest';
import { ruleState, rulesForWidget, sameDimensions } from './alerts';
import type { AlertRule, Widget, WindowPoint } from './types';

const rule = (over: Partial<AlertRule> = {}): AlertRule => ({
  alert_id: 'r1',
  tenant_id: 't',
  name: '',
  description: '',
  metric_name: 'latency',
  dimensions: { region: 'eu' },
  stat: 'p99',
  condition: 'gt',
  threshold: 100,
  notify_channel: 'http://hooks.invalid/x',
  for_windows: 1,
  evaluate_on: 'final',
  labels: {},
  annotations: {},
  created_at: '2024-01-15T14:00:00Z',
  updated_at: '2024-01-15T14:00:00Z',
  revision: 1,
  ...over,
});
const widget: Widget = {
  widget_id: 'w',
  metric_name: 'latency',
  dimensions: { region: 'eu' },
  stat: 'p99',
  time_window: 'last_1h',
  viz_type: 'line_chart',
};
const pts = (values: number[], lastFinal = true): WindowPoint[] =>
  values.map((v, i) => ({
    start: i * 60_000,
    end: (i + 1) * 60_000,
    value: v,
    revision: 0,
    final: i < values.length - 1 || lastFinal,
    lateCount: 0,
    updatedAt: 0,
  }));

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

describe('ruleState', () => {
  it('fires when the last closed window breaches', () => {
    expect(ruleState(rule(), pts([50, 150]))).toBe('firing');
    expect(ruleState(rule(), pts([150, 50]))).toBe('ok');
  });
  it('ignores the open window unless the rule evaluates provisional values', () => {
    expect(ruleState(rule(), pts([50, 150], false))).toBe('ok');
    expect(ruleState(rule({ evaluate_on: 'provisional' }), pts([50, 150], false))).toBe('firing');
  });
  it('is pending until for_windows windows breach', () => {
    expect(ruleState(rule({ for_windows: 3 }), pts([50, 150, 150]))).toBe('pending');
    expect(ruleState(rule({ for_windows: 3 }), pts([150, 150, 150]))).toBe('firing');
  });
});
