import { afterEach, describe, expect, it } from 'vitest';
import {
  formatChange,
  formatClock,
  formatCompact,
  formatDateTime,
  formatInstant,
  formatTimestamp,
  formatDuration,
  formatLatency,
  formatTick,
  formatValue,
  formatWindow,
  formatWindowLength,
  fromLocalInput,
  parseDuration,
  setDisplayZone,
  toLocalInput,
  unitFor,
} from './format';
import type { MetricInfo } from './types';

describe('formatCompact', () => {
  it.each([
    [0, '0'],
    [7, '7'],
    [999, '999'],
    [12.345, '12.3'],
    [0.01234, '0.0123'],
    [1000, '1k'],
    [1234, '1.2k'],
    [12_345, '12k'],
    [999_960, '1M'],
    [3_400_000, '3.4M'],
    [2.5e9, '2.5B'],
    [-1234, '-1.2k'],
  ])('%d -> %s', (v, text) => expect(formatCompact(v)).toBe(text));

  it('shows a dash for missing values', () => {
    expect(formatCompact(null)).toBe('—');
    expect(formatCompact(NaN)).toBe('—');
  });
});

describe('formatValue with ms', () => {
  it('keeps milliseconds below a second and switches to seconds above', () => {
    expect(formatValue(123.4, 'ms')).toBe('123 ms');
    expect(formatValue(12.34, 'ms')).toBe('12.3 ms');
    expect(formatValue(1530, 'ms')).toBe('1.53 s');
  });
});

describe('unitFor', () => {
  const m = (field?: string): MetricInfo => ({
    name: 'x',
    scope: 'tenant',
    window_secs: 60,
    dimensions: [],
    dimension_sets: [],
    stats: ['count'],
    definition: { name: 'x', event_type: 'e', field: field ?? null },
  });
  it('is ms for latency-like fields except count and unique', () => {
    expect(unitFor(m('latency_ms'), 'p99')).toBe('ms');
    expect(unitFor(m('duration'), 'avg')).toBe('ms');
    expect(unitFor(m('latency_ms'), 'count')).toBe('');
    expect(unitFor(m('amount_usd'), 'sum')).toBe('');
    expect(unitFor(m(), 'count')).toBe('');
  });
});

describe('formatChange', () => {
  it('gives a signed percentage', () => {
    expect(formatChange(110, 100)).toBe('+10%');
    expect(formatChange(95, 100)).toBe('-5%');
    expect(formatChange(100, 100)).toBe('±0%');
    expect(formatChange(5, 0)).toBeNull();
    expect(formatChange(null, 3)).toBeNull();
  });
});

describe('durations', () => {
  it('formats', () => {
    expect(formatDuration(4_400)).toBe('4s');
    expect(formatDuration(185_000)).toBe('3m 05s');
    expect(formatDuration(2 * 3_600_000 + 600_000)).toBe('2h 10m');
    expect(formatLatency(180)).toBe('180 ms');
    expect(formatLatency(1234)).toBe('1.2 s');
  });
  it('parses widget time windows and query windows', () => {
    expect(parseDuration('last_15m')).toBe(900_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('last_2d')).toBe(172_800_000);
    expect(parseDuration('soon')).toBeNull();
  });
});

describe('formatWindowLength', () => {
  it('writes the largest whole unit, as the gateway does', () => {
    expect(formatWindowLength(60_000)).toBe('1m');
    expect(formatWindowLength(5_400_000)).toBe('90m');
    expect(formatWindowLength(86_400_000 * 7)).toBe('7d');
    expect(formatWindowLength(30_000)).toBe('30s');
    expect(formatWindowLength(1500)).toBe('1500ms');
  });
});

describe('formatTick', () => {
  it('shows the clock within a day and the date on multi-day ranges', () => {
    const noon = new Date(2026, 11, 7, 12, 30).getTime();
    const midnight = new Date(2026, 11, 7).getTime();
    expect(formatTick(noon, 3_600_000)).toBe('12:30');
    expect(formatTick(noon, 23 * 3_600_000)).toBe('12:30');
    expect(formatTick(noon, 86_400_000)).toBe('Dec 7 12:30');
    expect(formatTick(midnight, 7 * 86_400_000)).toBe('Dec 7');
    expect(formatTick(noon, 7 * 86_400_000)).toBe('Dec 7 12:30');
  });
});

describe('display zone', () => {
  afterEach(() => setDisplayZone('local'));
  const at = Date.UTC(2026, 11, 6, 23, 45, 10); // Dec 6 23:45:10 UTC

  it('formats clocks, dates, windows and ticks in UTC when chosen', () => {
    setDisplayZone('utc');
    expect(formatClock(at)).toBe('23:45:10');
    expect(formatDateTime(Date.UTC(2026, 11, 6, 14))).toBe('Dec 6 14:00');
    expect(formatTick(Date.UTC(2026, 11, 7), 3 * 86_400_000)).toBe('Dec 7');
    expect(formatWindow(Date.UTC(2026, 11, 6, 14), Date.UTC(2026, 11, 6, 15), true)).toBe(
      'Dec 6 14:00–15:00',
    );
    expect(formatInstant(at, 3_600_000)).toBe('23:45:10');
    expect(formatInstant(at, 2 * 86_400_000)).toBe('Dec 6 23:45:10');
  });

  it('writes full timestamps in UTC with the zone named', () => {
    setDisplayZone('utc');
    const utc = new Date(at).toLocaleString(undefined, { timeZone: 'UTC' });
    expect(utc).toMatch(/(23|11):45:10/); // the locale's format, but UTC's clock
    expect(formatTimestamp(at)).toBe(`${utc} UTC`);
    setDisplayZone('local');
    expect(formatTimestamp(at)).toBe(new Date(at).toLocaleString());
  });

  it('round-trips the range inputs in the display zone', () => {
    setDisplayZone('utc');
    expect(toLocalInput(Date.UTC(2026, 0, 2, 3, 4))).toBe('2026-01-02T03:04');
    expect(fromLocalInput('2026-01-02T03:04')).toBe(Date.UTC(2026, 0, 2, 3, 4));
    setDisplayZone('local');
    const local = new Date(2026, 0, 2, 3, 4).getTime();
    expect(toLocalInput(local)).toBe('2026-01-02T03:04');
    expect(fromLocalInput('2026-01-02T03:04')).toBe(local);
  });
});
