/**
 * The gateway's REST API (same origin, `/v1/...`). Every call is scoped by `tenant_id`.
 * Responses are normalised here so the rest of the app sees one shape; see docs/api.md.
 */

import { STATS } from './types';
import type { AlertRule, AlertState, Condition, Dashboard, Dimensions, MetricInfo, Stat, VizType, Widget, WidgetDraft, WindowPoint } from './types';

/** An API error: the gateway's `{"error": {"code", "message"}}`, or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Query = Record<string, string | number | undefined>;
type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined);

/** Epoch milliseconds from an RFC 3339 string or a number (seconds or milliseconds). */
export function toMillis(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v < 1e11 ? v * 1000 : v;
  if (typeof v === 'string' && v !== '') {
    const n = Number(v);
    if (Number.isFinite(n)) return toMillis(n);
    const ms = Date.parse(v);
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function request(method: string, path: string, query: Query = {}, body?: unknown, signal?: AbortSignal): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url(path, query), {
      method,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      signal: signal ?? null,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'Gateway unreachable');
  }
  const text = await res.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!res.ok) {
    const e = isObj(json) && isObj(json.error) ? json.error : undefined;
    throw new ApiError(res.status, str(e?.code) ?? `http_${res.status}`, str(e?.message) ?? (text.slice(0, 200) || res.statusText));
  }
  return json;
}

/** The array in a list response: a bare array or `{<key>: [...]}` / `{items: [...]}`. */
function listOf(json: unknown, key: string): unknown[] {
  if (Array.isArray(json)) return json;
  if (isObj(json)) {
    for (const k of [key, 'items', 'data']) {
      const v = json[k];
      if (Array.isArray(v)) return v;
    }
  }
  return [];
}

function dims(v: unknown): Dimensions {
  const out: Dimensions = {};
  if (isObj(v)) for (const [k, val] of Object.entries(v)) if (val !== null && val !== undefined && val !== '') out[k] = String(val);
  return out;
}

const VIZ_ALIASES: Record<string, VizType> = {
  line_chart: 'line_chart',
  area_chart: 'area_chart',
  bar_chart: 'bar_chart',
  counter: 'counter',
  gauge: 'gauge',
  table: 'table',
  single_value: 'counter',
};

function stat(v: unknown): Stat {
  const s = str(v)?.toLowerCase();
  return (STATS as readonly string[]).includes(s ?? '') ? (s as Stat) : 'count';
}

/** A widget object (`widget_id`, docs/api.md "Widget object"). */
export function normalizeWidget(raw: unknown): Widget | null {
  if (!isObj(raw)) return null;
  const id = str(raw.widget_id) ?? str(raw.id);
  const metric = str(raw.metric_name);
  if (!id || !metric) return null;
  const widget: Widget = {
    id,
    metric_name: metric,
    dimensions: dims(raw.dimensions),
    stat: stat(raw.stat),
    time_window: str(raw.time_window) ?? 'last_1h',
    viz_type: VIZ_ALIASES[str(raw.viz_type) ?? ''] ?? 'line_chart',
  };
  const window = str(raw.window);
  if (window) widget.window = window;
  const title = str(raw.title);
  if (title) widget.title = title;
  return widget;
}

/** A dashboard object (`dashboard_id`, widgets inside). */
export function normalizeDashboard(raw: unknown, tenant: string): Dashboard | null {
  if (!isObj(raw)) return null;
  const id = str(raw.dashboard_id) ?? str(raw.id);
  if (!id) return null;
  const d: Dashboard = {
    id,
    tenant_id: str(raw.tenant_id) ?? tenant,
    name: str(raw.name) ?? '(unnamed)',
    widgets: listOf(raw.widgets, 'widgets').map(normalizeWidget).filter((w): w is Widget => w !== null),
  };
  const description = str(raw.description);
  if (description) d.description = description;
  const created = toMillis(raw.created_at);
  if (created !== undefined) d.created_at = created;
  const updated = toMillis(raw.updated_at);
  if (updated !== undefined) d.updated_at = updated;
  return d;
}

/** An entry of `GET /v1/metrics`. */
export function normalizeMetricInfo(raw: unknown): MetricInfo | null {
  if (!isObj(raw)) return null;
  const name = str(raw.name);
  if (!name) return null;
  const def = isObj(raw.definition) ? raw.definition : {};
  const dimensions = Array.isArray(raw.dimensions) ? raw.dimensions.map(String) : Array.isArray(def.dimensions) ? def.dimensions.map(String) : [];
  const stats = Array.isArray(raw.stats) ? raw.stats.map((s) => String(s).toLowerCase()).filter((s): s is Stat => (STATS as readonly string[]).includes(s)) : ['count' as Stat];
  const info: MetricInfo = {
    name,
    scope: str(raw.scope) ?? 'tenant',
    window_secs: num(raw.window_secs) ?? num(def.window_secs) ?? 60,
    dimensions,
    dimension_sets: Array.isArray(raw.dimension_sets) ? raw.dimension_sets.filter(Array.isArray).map((set: unknown[]) => set.map(String)) : [dimensions, []],
    stats: stats.length ? stats : ['count'],
  };
  const field = str(def.field) ?? str(raw.field);
  if (field) info.field = field;
  const description = str(def.description) ?? str(raw.description);
  if (description) info.description = description;
  return info;
}

const CONDITIONS: readonly Condition[] = ['gt', 'lt', 'gte', 'lte', 'eq'];
const ALERT_STATES: readonly AlertState[] = ['ok', 'pending', 'firing', 'resolved'];

export function alertState(v: unknown): AlertState | undefined {
  const s = str(v)?.toLowerCase();
  return (ALERT_STATES as readonly string[]).includes(s ?? '') ? (s as AlertState) : undefined;
}

export function normalizeAlertRule(raw: unknown): AlertRule | null {
  if (!isObj(raw)) return null;
  const id = str(raw.alert_id) ?? str(raw.id);
  const metric = str(raw.metric_name);
  const threshold = num(raw.threshold);
  const condition = str(raw.condition) as Condition | undefined;
  if (!id || !metric || threshold === undefined || !condition || !CONDITIONS.includes(condition)) return null;
  const rule: AlertRule = {
    id,
    metric_name: metric,
    dimensions: dims(raw.dimensions),
    stat: stat(raw.stat),
    condition,
    threshold,
    for_windows: num(raw.for_windows) ?? 1,
    evaluate_on: str(raw.evaluate_on) === 'provisional' ? 'provisional' : 'final',
  };
  // The state may be on the rule itself or in a `status` object; a per-series state map is
  // summarised as its worst state.
  const state = alertState(raw.state) ?? (isObj(raw.status) ? alertState(raw.status.state) : undefined) ?? worstState(raw.states);
  if (state) rule.state = state;
  return rule;
}

function worstState(v: unknown): AlertState | undefined {
  const values = Array.isArray(v) ? v.map((x) => (isObj(x) ? x.state : x)) : isObj(v) ? Object.values(v).map((x) => (isObj(x) ? x.state : x)) : [];
  const states = values.map(alertState).filter((s): s is AlertState => s !== undefined);
  for (const s of ['firing', 'pending', 'resolved', 'ok'] as const) if (states.includes(s)) return s;
  return undefined;
}

/**
 * One window from the query API or the stream: `{window_start, window_end, value, revision,
 * final, updated_at}`; `value` may instead be a `stats` object, from which `stat` is taken.
 */
export function normalizeWindow(raw: unknown, wantStat: Stat, fallbackWindowMs = 60_000, now = Date.now()): WindowPoint | null {
  if (!isObj(raw)) return null;
  const start = toMillis(raw.window_start) ?? toMillis(raw.start);
  if (start === undefined) return null;
  const end = toMillis(raw.window_end) ?? toMillis(raw.end) ?? start + fallbackWindowMs;
  let value: number | null | undefined = raw.value === null ? null : num(raw.value);
  if (value === undefined && isObj(raw.stats)) {
    const key = wantStat === 'unique' && raw.stats.unique === undefined ? 'uniq' : wantStat;
    value = raw.stats[key] === null ? null : num(raw.stats[key]);
  }
  if (value === undefined) value = num(raw[wantStat]) ?? null;
  const finalFlag = typeof raw.final === 'boolean' ? raw.final : typeof raw.is_final === 'boolean' ? raw.is_final : end < now;
  return {
    start,
    end,
    value,
    revision: num(raw.revision) ?? 0,
    final: finalFlag,
    lateCount: num(raw.late_count) ?? 0,
    updatedAt: toMillis(raw.updated_at) ?? 0,
  };
}

// ---- endpoints -------------------------------------------------------------------------------

export async function listDashboards(tenant: string, signal?: AbortSignal): Promise<Dashboard[]> {
  const json = await request('GET', '/v1/dashboards', { tenant_id: tenant }, undefined, signal);
  return listOf(json, 'dashboards')
    .map((d) => normalizeDashboard(d, tenant))
    .filter((d): d is Dashboard => d !== null);
}

export async function getDashboard(tenant: string, id: string, signal?: AbortSignal): Promise<Dashboard> {
  const json = await request('GET', `/v1/dashboards/${encodeURIComponent(id)}`, { tenant_id: tenant }, undefined, signal);
  const d = normalizeDashboard(isObj(json) && isObj(json.dashboard) ? json.dashboard : json, tenant);
  if (!d) throw new ApiError(500, 'bad_response', 'Unexpected dashboard response');
  return d;
}

export async function createDashboard(tenant: string, name: string): Promise<Dashboard> {
  const json = await request('POST', '/v1/dashboards', {}, { tenant_id: tenant, name });
  const d = normalizeDashboard(json, tenant);
  if (!d) throw new ApiError(500, 'bad_response', 'Create dashboard answered without a dashboard_id');
  return d;
}

/** Renames; the description is sent along because PUT replaces it. Widgets are untouched. */
export async function renameDashboard(tenant: string, d: Dashboard, name: string): Promise<void> {
  const body: Json = { tenant_id: tenant, name };
  if (d.description) body.description = d.description;
  await request('PUT', `/v1/dashboards/${encodeURIComponent(d.id)}`, { tenant_id: tenant }, body);
}

export async function deleteDashboard(tenant: string, id: string): Promise<void> {
  await request('DELETE', `/v1/dashboards/${encodeURIComponent(id)}`, { tenant_id: tenant });
}

function widgetBody(tenant: string, w: WidgetDraft): Json {
  const body: Json = {
    tenant_id: tenant,
    metric_name: w.metric_name,
    dimensions: w.dimensions,
    stat: w.stat,
    time_window: w.time_window,
    viz_type: w.viz_type,
  };
  if (w.window) body.window = w.window;
  if (w.title) body.title = w.title;
  return body;
}

export async function addWidget(tenant: string, dashboardId: string, w: WidgetDraft): Promise<Widget> {
  const json = await request('POST', `/v1/dashboards/${encodeURIComponent(dashboardId)}/widgets`, { tenant_id: tenant }, widgetBody(tenant, w));
  const widget = normalizeWidget(json);
  if (!widget) throw new ApiError(500, 'bad_response', 'Add widget answered without a widget_id');
  return widget;
}

export async function updateWidget(tenant: string, dashboardId: string, widgetId: string, w: WidgetDraft): Promise<void> {
  await request('PUT', `/v1/dashboards/${encodeURIComponent(dashboardId)}/widgets/${encodeURIComponent(widgetId)}`, { tenant_id: tenant }, widgetBody(tenant, w));
}

export async function deleteWidget(tenant: string, dashboardId: string, widgetId: string): Promise<void> {
  await request('DELETE', `/v1/dashboards/${encodeURIComponent(dashboardId)}/widgets/${encodeURIComponent(widgetId)}`, { tenant_id: tenant });
}

/** `GET /v1/metrics`: the tenant's metrics with their stats and kept dimension sets. */
export async function listMetrics(tenant: string, signal?: AbortSignal): Promise<MetricInfo[]> {
  const json = await request('GET', '/v1/metrics', { tenant_id: tenant }, undefined, signal);
  return listOf(json, 'metrics')
    .map(normalizeMetricInfo)
    .filter((m): m is MetricInfo => m !== null);
}

/** `GET /v1/metrics/{name}/series`: known values per dimension (for filter suggestions). */
export async function listDimensionValues(tenant: string, metric: string, from: number, to: number, signal?: AbortSignal): Promise<Record<string, string[]>> {
  const json = await request(
    'GET',
    `/v1/metrics/${encodeURIComponent(metric)}/series`,
    { tenant_id: tenant, from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit: 1000 },
    undefined,
    signal,
  );
  const out: Record<string, string[]> = {};
  if (isObj(json) && isObj(json.dimensions)) {
    for (const [k, v] of Object.entries(json.dimensions)) if (Array.isArray(v)) out[k] = v.filter((x) => x !== null).map(String);
  }
  return out;
}

export async function listAlertRules(tenant: string, signal?: AbortSignal): Promise<AlertRule[]> {
  const json = await request('GET', '/v1/alerts', { tenant_id: tenant }, undefined, signal);
  return listOf(json, 'alerts')
    .map(normalizeAlertRule)
    .filter((r): r is AlertRule => r !== null);
}

export interface MetricQuery {
  dimensions: Dimensions;
  from: number;
  to: number;
  /** `1m`, `5m`, ...; absent: the metric's window. */
  window?: string;
  stat: Stat;
}

/** `GET /v1/metrics/{name}`: the windows of one series over a range. */
export async function queryMetric(tenant: string, metric: string, q: MetricQuery, signal?: AbortSignal): Promise<WindowPoint[]> {
  const json = await request(
    'GET',
    `/v1/metrics/${encodeURIComponent(metric)}`,
    {
      tenant_id: tenant,
      dimensions: JSON.stringify(q.dimensions),
      from: new Date(q.from).toISOString(),
      to: new Date(q.to).toISOString(),
      window: q.window,
      stat: q.stat,
    },
    undefined,
    signal,
  );
  const now = Date.now();
  return listOf(json, 'windows')
    .map((w) => normalizeWindow(w, q.stat, 60_000, now))
    .filter((w): w is WindowPoint => w !== null);
}
