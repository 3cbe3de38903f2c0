/** Number, time and duration formatting. Pure functions. */

import type { MetricInfo, Stat } from './types';

const UNITS: readonly [number, string][] = [
  [1e12, 'T'],
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/** Up to `digits` significant digits, without trailing zeros (12.3, 0.123, 7). */
function significant(value: number, digits: number): string {
  if (value === 0) return '0';
  const text = Number(value.toPrecision(digits)).toString();
  // toPrecision may produce exponent notation for tiny numbers; keep it readable.
  return text.includes('e') ? value.toExponential(1) : text;
}

/**
 * Compact number: 999, 1.2k, 12k, 3.4M, 0.0123. Scaled values keep two significant digits
 * below 10 and none after the point above, like dashboards usually show them.
 */
export function formatCompact(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  if (abs < 1000) {
    if (Number.isInteger(abs)) return sign + abs.toString();
    return sign + significant(abs, abs < 1 ? 3 : abs < 100 ? 3 : 4);
  }
  for (let i = 0; i < UNITS.length; i++) {
    const [size, suffix] = UNITS[i]!;
    if (abs < size) continue;
    const scaled = abs / size;
    let text =
      scaled < 10 ? (Math.round(scaled * 10) / 10).toString() : Math.round(scaled).toString();
    // 999.96k rounds to "1000k": promote to the next unit.
    if (Number(text) >= 1000 && i > 0) {
      const [biggerSize, biggerSuffix] = UNITS[i - 1]!;
      text = (Math.round((abs / biggerSize) * 10) / 10).toString();
      return sign + text + biggerSuffix;
    }
    return sign + text + suffix;
  }
  return sign + abs.toString();
}

/** A value with its unit: `ms` values become `123 ms` or `1.23 s`. */
export function formatValue(value: number | null | undefined, unit: Unit = ''): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (unit === 'ms') {
    const abs = Math.abs(value);
    if (abs >= 60_000) return formatCompact(value / 60_000) + ' min';
    if (abs >= 1000) return significant(value / 1000, 3) + ' s';
    return (abs >= 100 ? Math.round(value).toString() : significant(value, 3)) + ' ms';
  }
  return formatCompact(value);
}

/** Units the app knows how to show. */
export type Unit = '' | 'ms';

/** `ms` for latency-like stats (a numeric field named like a duration), else none. */
export function unitFor(metric: MetricInfo | undefined, stat: Stat): Unit {
  const field = metric?.definition.field;
  if (!field || stat === 'count' || stat === 'unique') return '';
  return /(^|_)(ms|millis|latency|duration)(_|$)|_ms$|latency|duration/i.test(field) ? 'ms' : '';
}

/** Relative change, `+12%` / `-3.4%` / `±0%`; null when it cannot be computed. */
export function formatChange(current: number | null, previous: number | null): string | null {
  if (
    current === null ||
    previous === null ||
    !Number.isFinite(current) ||
    !Number.isFinite(previous)
  )
    return null;
  if (previous === 0) return current === 0 ? '±0%' : null;
  const pct = ((current - previous) / Math.abs(previous)) * 100;
  if (Math.abs(pct) < 0.05) return '±0%';
  const abs = Math.abs(pct);
  const text = abs >= 10 ? Math.round(abs).toString() : (Math.round(abs * 10) / 10).toString();
  return (pct > 0 ? '+' : '-') + text + '%';
}

/** `45s`, `3m 05s`, `2h 10m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A short latency: `180 ms`, `1.2 s`, `3m 05s`. */
export function formatLatency(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${significant(ms / 1000, 2)} s`;
  return formatDuration(ms);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const two = (n: number) => String(n).padStart(2, '0');

/** The time zone times are shown in: UTC, or the browser's own. */
export type DisplayZone = 'utc' | 'local';

let zone: DisplayZone = 'local';

/** Shows every later formatted time (clocks, dates, axis ticks) in `z`. */
export function setDisplayZone(z: DisplayZone): void {
  zone = z;
}

export function displayZone(): DisplayZone {
  return zone;
}

/** The calendar and clock fields of `ms` in the display zone. */
function fields(ms: number) {
  const d = new Date(ms);
  return zone === 'utc'
    ? {
        year: d.getUTCFullYear(),
        month: d.getUTCMonth(),
        day: d.getUTCDate(),
        hours: d.getUTCHours(),
        minutes: d.getUTCMinutes(),
        seconds: d.getUTCSeconds(),
        millis: d.getUTCMilliseconds(),
      }
    : {
        year: d.getFullYear(),
        month: d.getMonth(),
        day: d.getDate(),
        hours: d.getHours(),
        minutes: d.getMinutes(),
        seconds: d.getSeconds(),
        millis: d.getMilliseconds(),
      };
}

/** `HH:MM` in the display zone (with `:SS` when the time is not on a minute). */
export function formatClock(ms: number): string {
  const f = fields(ms);
  const base = `${two(f.hours)}:${two(f.minutes)}`;
  return f.seconds === 0 && f.millis === 0 ? base : `${base}:${two(f.seconds)}`;
}

/** A full date and time in the display zone, in the browser's locale format; `UTC` follows
 * when the zone is UTC. */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return zone === 'utc'
    ? `${d.toLocaleString(undefined, { timeZone: 'UTC' })} UTC`
    : d.toLocaleString();
}

/** `Dec 6` in the display zone. */
export function formatDate(ms: number): string {
  const f = fields(ms);
  return `${MONTHS[f.month]} ${f.day}`;
}

/** `Dec 6 14:00`: the date and clock in the display zone. */
export function formatDateTime(ms: number): string {
  return `${formatDate(ms)} ${formatClock(ms)}`;
}

/** `YYYY-MM-DDTHH:MM` in the display zone, the value format of `<input type="datetime-local">`. */
export function toLocalInput(ms: number): string {
  const f = fields(ms);
  return `${f.year}-${two(f.month + 1)}-${two(f.day)}T${two(f.hours)}:${two(f.minutes)}`;
}

/** Parses `<input type="datetime-local">` values (in the display zone); null when empty or
 * invalid. */
export function fromLocalInput(text: string): number | null {
  if (!text) return null;
  const ms = new Date(zone === 'utc' ? `${text}Z` : text).getTime();
  return Number.isFinite(ms) ? ms : null;
}

/** `14:05–14:06` for a window; with `dated`, `Dec 6 14:05–14:06` (for multi-day ranges). */
export function formatWindow(start: number, end: number, dated = false): string {
  return `${dated ? `${formatDate(start)} ` : ''}${formatClock(start)}–${formatClock(end)}`;
}

/** Whether times over `spanMs` need their date: ranges of a day or more. */
export function spansDays(spanMs: number): boolean {
  return spanMs >= 86_400_000;
}

/** Parses a duration like `15m`, `1h`, `last_6h`, `90s`, `1d` into milliseconds. */
export function parseDuration(text: string): number | null {
  const m = /^(?:last_)?(\d+)\s*(ms|s|m|h|d)$/i.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  const scale =
    unit === 'ms' ? 1 : unit === 's' ? 1e3 : unit === 'm' ? 60e3 : unit === 'h' ? 3600e3 : 86400e3;
  return n * scale;
}

/** A window length as the gateway writes it: the largest whole unit (`60000` -> `1m`,
 * `5400000` -> `90m`). */
export function formatWindowLength(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A time-axis label for a chart spanning `spanMs`, in the display zone: the clock within a
 * day, else the date (`Dec 6`), with the clock when not at midnight (`Dec 6 14:00`). */
export function formatTick(ms: number, spanMs: number): string {
  if (!spansDays(spanMs)) return formatClock(ms);
  const f = fields(ms);
  return f.hours === 0 && f.minutes === 0 ? formatDate(ms) : formatDateTime(ms);
}

/** A point in time for a tooltip over `spanMs`: the clock within a day, else date and clock. */
export function formatInstant(ms: number, spanMs: number): string {
  return spansDays(spanMs) ? formatDateTime(ms) : formatClock(ms);
}
