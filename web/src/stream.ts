/**
 * The dashboard's live stream: `GET /v1/dashboards/{id}/stream?tenant_id=` over EventSource
 * (docs/api.md "Live stream"). Events: `snapshot` (one per widget), `status` (pipeline
 * freshness, at least every 5 s), `update` (a window's new value), `reload` (the dashboard
 * changed; the server ends the stream). EventSource reconnects by itself and resumes with
 * `Last-Event-ID`; when it gives up (an HTTP error such as 503), this class reopens it with
 * backoff, and the gateway answers with fresh snapshots.
 */

import { alertState, normalizeWindow, url } from './api';
import { STATS } from './types';
import type { AlertState, Stat, WindowPoint } from './types';

export interface Snapshot {
  widgetId: string;
  stat: Stat;
  windows: WindowPoint[];
  error: { code: string; message: string } | null;
}

export interface Update {
  widgetId: string;
  stat: Stat;
  point: WindowPoint;
  /** How long ago the aggregator produced this version (gateway clock). */
  delayMs: number | null;
}

export interface PipelineStatus {
  /** `ok`, `behind`, `stale` or `unknown`. */
  state: string;
  stale: boolean;
  maxLagMessages: number | null;
  watermarkDelayMs: number | null;
}

export interface AlertEvent {
  ruleId: string;
  state: AlertState;
}

export type ConnectionState = 'connecting' | 'open' | 'down';

export interface StreamHandlers {
  snapshot(s: Snapshot): void;
  update(u: Update): void;
  status(s: PipelineStatus): void;
  reload(reason: string): void;
  connection(state: ConnectionState): void;
  /** Optional `alert` events (state of a rule), should the gateway send them. */
  alert?(a: AlertEvent): void;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const parse = (text: string): Json | null => {
  try {
    const v: unknown = JSON.parse(text);
    return isObj(v) ? v : null;
  } catch {
    return null;
  }
};
const statOf = (v: unknown, fallback: Stat): Stat => ((STATS as readonly unknown[]).includes(v) ? (v as Stat) : fallback);
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Window size in ms from a `1m` / `5m` style string, for windows without `window_end`. */
function windowMs(v: unknown): number {
  const m = typeof v === 'string' ? /^(\d+)(s|m|h|d)$/.exec(v) : null;
  if (!m) return 60_000;
  const scale = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * scale;
}

export function parseSnapshot(data: string, fallbackStat: Stat = 'count', now = Date.now()): Snapshot | null {
  const j = parse(data);
  const widgetId = j && typeof j.widget_id === 'string' ? j.widget_id : null;
  if (!j || !widgetId) return null;
  const stat = statOf(j.stat, fallbackStat);
  const size = windowMs(j.window);
  const windows = Array.isArray(j.windows) ? j.windows.map((w) => normalizeWindow(w, stat, size, now)).filter((w): w is WindowPoint => w !== null) : [];
  const e = isObj(j.error) ? j.error : null;
  return {
    widgetId,
    stat,
    windows,
    error: e ? { code: String(e.code ?? 'error'), message: String(e.message ?? 'widget cannot be served') } : null,
  };
}

export function parseUpdate(data: string, fallbackStat: Stat = 'count', now = Date.now()): Update | null {
  const j = parse(data);
  const widgetId = j && typeof j.widget_id === 'string' ? j.widget_id : null;
  if (!j || !widgetId) return null;
  const stat = statOf(j.stat, fallbackStat);
  const point = normalizeWindow(j, stat, windowMs(j.window), now);
  if (!point) return null;
  return { widgetId, stat, point, delayMs: numOrNull(j.delay_ms) };
}

export function parseStatus(data: string): PipelineStatus | null {
  const j = parse(data);
  if (!j) return null;
  const state = typeof j.state === 'string' ? j.state : 'unknown';
  return {
    state,
    stale: typeof j.stale === 'boolean' ? j.stale : state === 'behind' || state === 'stale',
    maxLagMessages: numOrNull(j.max_lag_messages),
    watermarkDelayMs: numOrNull(j.watermark_delay_ms),
  };
}

export function parseAlert(data: string): AlertEvent | null {
  const j = parse(data);
  const ruleId = j ? (typeof j.alert_id === 'string' ? j.alert_id : typeof j.rule_id === 'string' ? j.rule_id : null) : null;
  const state = j ? (alertState(j.state) ?? alertState(j.to)) : undefined;
  return ruleId && state ? { ruleId, state } : null;
}

export class DashboardStream {
  private source: EventSource | null = null;
  private retryTimer: number | undefined;
  private retryMs = 1000;
  private closed = false;
  state: ConnectionState = 'connecting';
  /** When the stream went down (local clock), while it is down. */
  downSince: number | null = null;

  constructor(
    private readonly tenant: string,
    private readonly dashboardId: string,
    private readonly handlers: StreamHandlers,
  ) {}

  open(): void {
    this.closed = false;
    this.connect();
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.retryTimer);
    this.source?.close();
    this.source = null;
  }

  private setState(state: ConnectionState): void {
    if (state === 'open') this.downSince = null;
    else if (state === 'down' && this.downSince === null) this.downSince = Date.now();
    if (state !== this.state) {
      this.state = state;
      this.handlers.connection(state);
    }
  }

  private connect(): void {
    if (this.closed) return;
    const es = new EventSource(url(`/v1/dashboards/${encodeURIComponent(this.dashboardId)}/stream`, { tenant_id: this.tenant }));
    this.source = es;
    this.setState(this.state === 'down' ? 'down' : 'connecting');
    es.onopen = () => {
      this.retryMs = 1000;
      this.setState('open');
    };
    es.onerror = () => {
      if (this.source !== es) return;
      this.setState('down');
      if (es.readyState === EventSource.CLOSED) {
        // EventSource gave up (HTTP error, wrong content type): reopen with backoff.
        es.close();
        this.source = null;
        window.clearTimeout(this.retryTimer);
        this.retryTimer = window.setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 30_000);
      }
    };
    const on = (name: string, fn: (data: string) => void) =>
      es.addEventListener(name, (ev) => {
        if (this.source !== es) return;
        if (this.state !== 'open') this.setState('open');
        fn((ev as MessageEvent<string>).data);
      });
    on('snapshot', (d) => {
      const s = parseSnapshot(d);
      if (s) this.handlers.snapshot(s);
    });
    on('update', (d) => {
      const u = parseUpdate(d);
      if (u) this.handlers.update(u);
    });
    // Unnamed events: treat like updates (a window with a widget_id), per the seed's shape.
    on('message', (d) => {
      const u = parseUpdate(d);
      if (u) this.handlers.update(u);
    });
    on('status', (d) => {
      const s = parseStatus(d);
      if (s) this.handlers.status(s);
    });
    on('alert', (d) => {
      const a = parseAlert(d);
      if (a) this.handlers.alert?.(a);
    });
    on('reload', (d) => {
      // The server ends the stream after this; stop EventSource from resuming an old cursor.
      es.close();
      this.source = null;
      const j = parse(d);
      this.handlers.reload(j && typeof j.reason === 'string' ? j.reason : 'updated');
    });
  }
}
