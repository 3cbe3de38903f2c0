import { describe, expect, it } from 'vitest';
import { normalizeDashboard, normalizeMetricInfo, normalizeWidget, normalizeWindow } from './api';
import { parseSnapshot, parseStatus, parseUpdate } from './stream';

// Shapes from docs/api.md.
describe('stream events', () => {
  it('parses a snapshot', () => {
    const s = parseSnapshot(
      JSON.stringify({
        widget_id: 'w1',
        metric_name: 'checkout_count',
        stat: 'count',
        window: '1m',
        dimensions: { region: 'us-east' },
        time_window: 'last_1h',
        windows: [{ window_start: '2024-01-15T14:05:00.000Z', window_end: '2024-01-15T14:06:00.000Z', value: 312, revision: 0, final: true, late_count: 0, updated_at: '2024-01-15T14:06:31.000Z' }],
        error: null,
      }),
    );
    expect(s?.widgetId).toBe('w1');
    expect(s?.error).toBeNull();
    expect(s?.windows[0]).toEqual({ start: Date.parse('2024-01-15T14:05:00Z'), end: Date.parse('2024-01-15T14:06:00Z'), value: 312, revision: 0, final: true, lateCount: 0, updatedAt: Date.parse('2024-01-15T14:06:31Z') });
  });
  it('parses a snapshot error', () => {
    const s = parseSnapshot(JSON.stringify({ widget_id: 'w1', windows: [], error: { code: 'invalid_request', message: 'metric deleted' } }));
    expect(s?.error).toEqual({ code: 'invalid_request', message: 'metric deleted' });
  });
  it('parses an update (a revision of a closed window)', () => {
    const u = parseUpdate(JSON.stringify({ widget_id: 'w1', stat: 'count', value: 342, window_start: '2024-01-15T14:05:00.000Z', window_end: '2024-01-15T14:06:00.000Z', updated_at: '2024-01-15T14:07:32.250Z', revision: 2, final: true, late_count: 3, delay_ms: 180, stale: false }));
    expect(u?.point).toMatchObject({ value: 342, revision: 2, final: true, lateCount: 3 });
    expect(u?.delayMs).toBe(180);
  });
  it('parses status', () => {
    expect(parseStatus('{"state":"behind","stale":true,"max_lag_messages":900,"watermark_delay_ms":42000}')).toEqual({ state: 'behind', stale: true, maxLagMessages: 900, watermarkDelayMs: 42000 });
    expect(parseStatus('{"state":"ok","stale":false}')?.stale).toBe(false);
  });
  it('rejects garbage', () => {
    expect(parseUpdate('not json')).toBeNull();
    expect(parseSnapshot('{"windows":[]}')).toBeNull();
  });
});

describe('REST normalisation', () => {
  it('reads dashboards and widgets (counter is the single value)', () => {
    const d = normalizeDashboard(
      { dashboard_id: 'd1', tenant_id: 'acme', name: 'P', widgets: [{ widget_id: 'w1', metric_name: 'm', viz_type: 'counter', stat: 'p99', window: '5m' }], created_at: '2024-01-15T14:05:32.000Z', revision: 3 },
      'acme',
    );
    expect(d?.widgets[0]).toEqual({ id: 'w1', metric_name: 'm', dimensions: {}, stat: 'p99', time_window: 'last_1h', viz_type: 'counter', window: '5m' });
    expect(normalizeWidget({ metric_name: 'm' })).toBeNull();
  });
  it('reads metrics with their stats and dimension sets', () => {
    const m = normalizeMetricInfo({ name: 'events', scope: 'builtin', window_secs: 60, dimensions: ['event_type', 'source'], dimension_sets: [['event_type', 'source'], []], stats: ['count'], definition: { name: 'events' } });
    expect(m).toMatchObject({ name: 'events', stats: ['count'], dimension_sets: [['event_type', 'source'], []] });
  });
  it('keeps a null value as no value', () => {
    expect(normalizeWindow({ window_start: '2024-01-15T14:05:00Z', value: null, final: true }, 'min')?.value).toBeNull();
  });
});
