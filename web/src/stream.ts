/**
 * The dashboard's live stream: `GET /v1/dashboards/{id}/stream?tenant_id=` over EventSource
 * (docs/api.md "Live stream"). The gateway sends four events (gateway/src/live/sse.rs):
 * `snapshot` (one per widget), `update` (a window's new value), `status` (pipeline freshness,
 * at least every 5 s) and `reload` (the dashboard changed or was deleted; the server ends the
 * stream). EventSource reconnects by itself and resumes with `Last-Event-ID`; when it gives up
 * (an HTTP error such as 503), this class reopens it with backoff, and the gateway answers
 * with fresh snapshots.
 */

import { linkAccessToken, toPoint, url } from './api';
import type { ErrorDetail, Stat, StatusView, WindowOut, WindowPoint } from './types';
import type { components } from './api-types';

// The events' data. The OpenAPI document does not describe event payloads, so these are
// written here after the gateway's `SnapshotData` and `UpdateData`, with the document's types
// for the parts they share with the REST answers (`status` data is the document's StatusView).

/** `snapshot`: a widget's windows, or why it cannot be served. */
interface SnapshotData {
  widget_id: string;
  metric_name: string;
  stat: Stat;
  /** The aggregation window served (the one `auto` chose); null when the widget cannot be
   * served. */
  window: string | null;
  /** Whether `auto` chose `window`. */
  window_auto?: boolean;
  /** The stored resolution read (the metric's window or a rollup tier). */
  source_window?: string;
  dimensions: Record<string, string>;
  time_window: string;
  windows: WindowOut[];
  /** Grouped widgets: one series per group, then `other`. */
  series?: SeriesOut[];
  error: ErrorDetail | null;
}

/** One series of a grouped answer (REST and snapshots). */
export type SeriesOut = components['schemas']['SeriesOut'];

/** `update`: a new version of one window of a widget. */
type UpdateData = WindowOut & {
  widget_id: string;
  metric_name: string;
  stat: Stat;
  /** How long ago the aggregator produced this version (gateway clock), ms. */
  delay_ms: number;
  /** The pipeline was behind when the gateway sent it. */
  stale: boolean;
  /** Grouped widgets: the series the value is for. */
  series?: { dimensions: Record<string, string | null>; other: boolean };
};

/** `reload`: the dashboard changed; the stream ends after it. */
interface ReloadData {
  dashboard_id: string;
  reason: 'updated' | 'deleted';
}

export interface Snapshot {
  widgetId: string;
  windows: WindowPoint[];
  error: ErrorDetail | null;
  /** The window served (null when the widget cannot be served) and whether `auto` chose it. */
  window: string | null;
  windowAuto: boolean;
  /** Grouped widgets: the groups, ranked, with their windows. */
  groups: Group[] | null;
}

/** One group of a grouped widget: its key, its label, its stat over the range, its windows. */
export interface Group {
  key: string;
  label: string;
  other: boolean;
  total: number | null;
  points: WindowPoint[];
}

/** The key and label of a group (`other`: the merge of the groups beyond the limit). */
export function groupKey(dimensions: Record<string, string | null>, other: boolean) {
  if (other) return { key: '__other__', label: 'other' };
  const entries = Object.entries(dimensions).sort(([a], [b]) => a.localeCompare(b));
  return {
    key: JSON.stringify(entries),
    label: entries.map(([, v]) => v ?? '(none)').join(' · ') || '(all)',
  };
}

/** The groups of a grouped answer. */
export function toGroups(series: SeriesOut[]): Group[] {
  return series.map((s) => ({
    ...groupKey(s.dimensions, s.other),
    other: s.other,
    total: s.value ?? null,
    points: s.windows.map(toPoint),
  }));
}

export interface Update {
  widgetId: string;
  point: WindowPoint;
  /** Grouped widgets: the group the point is for. */
  group: { key: string; label: string; other: boolean } | null;
  /** How long ago the aggregator produced this version (gateway clock). */
  delayMs: number;
}

export type ConnectionState = 'connecting' | 'open' | 'down';

export interface StreamHandlers {
  snapshot(s: Snapshot): void;
  update(u: Update): void;
  status(s: StatusView): void;
  reload(reason: ReloadData['reason']): void;
  connection(state: ConnectionState): void;
}

/** An event's JSON object, or null if the data is not one. */
function parse<T extends object>(data: string): T | null {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === 'object' && value !== null ? (value as T) : null;
  } catch {
    return null;
  }
}

export function parseSnapshot(data: string): Snapshot | null {
  const s = parse<SnapshotData>(data);
  if (typeof s?.widget_id !== 'string') return null;
  return {
    widgetId: s.widget_id,
    windows: s.windows.map(toPoint),
    error: s.error,
    window: s.window,
    windowAuto: s.window_auto ?? false,
    groups: s.series ? toGroups(s.series) : null,
  };
}

export function parseUpdate(data: string): Update | null {
  const u = parse<UpdateData>(data);
  if (typeof u?.widget_id !== 'string') return null;
  return {
    widgetId: u.widget_id,
    point: toPoint(u),
    delayMs: u.delay_ms,
    group: u.series
      ? { ...groupKey(u.series.dimensions, u.series.other), other: u.series.other }
      : null,
  };
}

export function parseStatus(data: string): StatusView | null {
  return parse<StatusView>(data);
}

export function parseReload(data: string): ReloadData | null {
  return parse<ReloadData>(data);
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
    const es = new EventSource(
      url(`/v1/dashboards/${encodeURIComponent(this.dashboardId)}/stream`, {
        tenant_id: this.tenant,
        access_token: linkAccessToken(),
      }),
    );
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
    on('status', (d) => {
      const s = parseStatus(d);
      if (s) this.handlers.status(s);
    });
    on('reload', (d) => {
      // The server ends the stream after this; stop EventSource from resuming an old cursor.
      es.close();
      this.source = null;
      this.handlers.reload(parseReload(d)?.reason ?? 'updated');
    });
  }
}
