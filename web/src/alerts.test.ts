import { describe, expect, it } from 'vitest';
import { rulesForWidget, sameDimensions } from './alerts';
import type { AlertRule, AlertState, Widget } from './types';

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

describe('rulesForWidget', () => {
  it("takes the rules on the widget's metric, marking those comparing what it shows", () => {
    const states = new Map<string, AlertState>();
    const found = rulesForWidget(
      widget,
      [
        rule(),
        rule({ alert_id: 'r2', stat: 'p50' }),
        rule({ alert_id: 'r3', dimensions: {} }),
        rule({ alert_id: 'r4', metric_name: 'other' }),
      ],
      states,
    );
    expect(found.map((r) => [r.rule.alert_id, r.sameQuery])).toEqual([
      ['r1', true],
      ['r2', false],
      ['r3', false],
    ]);
  });
  it('shows the served state, unknown when not served, worst first', () => {
    const states = new Map<string, AlertState>([
      ['r1', 'ok'],
      ['r2', 'firing'],
    ]);
    const found = rulesForWidget(
      widget,
      [rule(), rule({ alert_id: 'r2' }), rule({ alert_id: 'r3' })],
      states,
    );
    expect(found.map((r) => [r.rule.alert_id, r.state])).toEqual([
      ['r2', 'firing'],
      ['r3', 'unknown'],
      ['r1', 'ok'],
    ]);
  });
  it('compares dimensions ignoring order and empty values', () => {
    expect(sameDimensions({ a: '1', b: '2' }, { b: '2', a: '1' })).toBe(true);
    expect(sameDimensions({ a: '1', b: '' }, { a: '1' })).toBe(true);
    expect(sameDimensions({ a: '1' }, { a: '2' })).toBe(false);
  });
});
