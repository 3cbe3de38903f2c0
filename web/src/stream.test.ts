import { describe, expect, it } from 'vitest';
import { toPoint } from './api';
import { parseReload, parseSnapshot, parseStatus, parseUpdate } from './stream';

// Event data as gateway/src/live/sse.rs writes it (docs/api.md "Live stream").
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
        windows: [
          {
            window_start: '2024-01-15T14:05:00.000Z',
            window_end: '2024-01-15T14:06:00.000Z',
            value: 312,
            revision: 0,
            final: true,
            late_count: 0,
            updated_at: '2024-01-15T14:06:31.000Z',
          },
        ],
        error: null,
      }),
    );
    expect(s?.widgetId).toBe('w1');
    expect(s?.error).toBeNull();
    expect(s?.windows[0]).toEqual({
      start: Date.parse('2024-01-15T14:05:00Z'),
      end: Date.parse('2024-01-15T14:06:00Z'),
      value: 312,
      revision: 0,
      final: true,
      lateCount: 0,
      updatedAt: Date.parse('2024-01-15T14:06:31Z'),
    });
  });
  it('parses a snapshot error', () => {
    const s = parseSnapshot(
      JSON.stringify({
        widget_id: 'w1',
        metric_name: 'gone',
        stat: 'count',
        window: null,
        dimensions: {},
        time_window: 'last_1h',
        windows: [],
        error: { code: 'unavailable', message: 'snapshot unavailable' },
      }),
    );
    expect(s?.error).toEqual({ code: 'unavailable', message: 'snapshot unavailable' });
  });
  it('parses an update (a revision of a closed window)', () => {
    const u = parseUpdate(
      JSON.stringify({
        widget_id: 'w1',
        metric_name: 'checkout_count',
        stat: 'count',
        value: 342,
        window_start: '2024-01-15T14:05:00.000Z',
        window_end: '2024-01-15T14:06:00.000Z',
        updated_at: '2024-01-15T14:07:32.250Z',
        revision: 2,
        final: true,
        late_count: 3,
        delay_ms: 180,
        stale: false,
      }),
    );
    expect(u?.point).toMatchObject({ value: 342, revision: 2, final: true, lateCount: 3 });
    expect(u?.delayMs).toBe(180);
  });
  it('parses status and reload', () => {
    const status = parseStatus(
      '{"state":"behind","stale":true,"max_lag_messages":900,"min_watermark":null,"watermark_delay_ms":42000,"partitions_reporting":8,"checked_at":"2024-01-15T14:07:32.250Z"}',
    );
    expect(status).toMatchObject({ state: 'behind', stale: true, watermark_delay_ms: 42000 });
    expect(parseReload('{"dashboard_id":"d1","reason":"deleted"}')?.reason).toBe('deleted');
  });
  it('rejects garbage', () => {
    expect(parseUpdate('not json')).toBeNull();
    expect(parseSnapshot('{"windows":[]}')).toBeNull();
    expect(parseStatus('null')).toBeNull();
  });
});

describe('windows', () => {
  it('keeps a null value as no value', () => {
    const p = toPoint({
      window_start: '2024-01-15T14:05:00Z',
      window_end: '2024-01-15T14:06:00Z',
      value: null,
      revision: 0,
      final: true,
      late_count: 0,
      updated_at: '2024-01-15T14:06:01Z',
    });
    expect(p.value).toBeNull();
    expect(p.end - p.start).toBe(60_000);
  });
});
