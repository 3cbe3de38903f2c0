/**
 * The gateway's REST API (same origin, `/v1/...`). Every call is scoped by `tenant_id`. Bodies
 * and answers are the types generated from the gateway's OpenAPI document (`api-types.ts`);
 * see docs/api.md.
 */

import type { components, operations } from './api-types';
import type {
  AlertRule,
  Dashboard,
  MetricInfo,
  Stat,
  Widget,
  WidgetDraft,
  WindowOut,
  WindowPoint,
} from './types';

type Schemas = components['schemas'];

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

/** Dispatched on `window` when the gateway answers 401 (no valid session). */
export const SIGNED_OUT_EVENT = 'rtdash:signed-out';

/**
 * The dashboard-link token of an embedded dashboard (`/embed/<token>`), sent with every call
 * instead of a session cookie (`Authorization: Bearer`, and `access_token` on the live stream,
 * which EventSource cannot send headers for); null when signed in.
 */
let linkToken: string | null = null;

/** The dashboard-link token in the address (`/embed/rtl_...`), if this page is an embed. */
export function embedToken(): string | null {
  const m = /^\/embed\/(rtl_[A-Za-z0-9_-]+)$/.exec(location.pathname);
  return m?.[1] ?? null;
}

/** Sends `token` with every later call (embed mode). */
export function useLinkToken(token: string): void {
  linkToken = token;
}

/** The headers that authenticate a call: the link token's in embed mode, else none (the cookie). */
export function authHeaders(): Record<string, string> {
  return linkToken ? { authorization: `Bearer ${linkToken}` } : {};
}

/** The link token for a URL (the live stream), in embed mode. */
export function linkAccessToken(): string | undefined {
  return linkToken ?? undefined;
}

type Query = Record<string, string | number | undefined>;
/** The query parameters of an operation of the document. */
type QueryOf<Op extends keyof operations> = NonNullable<operations[Op]['parameters']['query']>;

/** Epoch milliseconds of an RFC 3339 time (the gateway's times), NaN if it is not one. */
export function toMillis(rfc3339: string): number {
  return Date.parse(rfc3339);
}

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

function isErrorBody(json: unknown): json is Schemas['ErrorBody'] {
  if (typeof json !== 'object' || json === null || !('error' in json)) return false;
  const { error } = json;
  return typeof error === 'object' && error !== null && 'code' in error && 'message' in error;
}

/** One call; the answer's JSON as `T` (`undefined` for an empty answer such as a `204`). */
export async function request<T>(
  method: string,
  path: string,
  query: Query = {},
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url(path, query), {
      method,
      headers:
        body === undefined
          ? { accept: 'application/json', ...authHeaders() }
          : { accept: 'application/json', 'content-type': 'application/json', ...authHeaders() },
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
    // The session ended (signed out elsewhere, expired, or its key revoked): sign in again.
    if (res.status === 401) window.dispatchEvent(new Event(SIGNED_OUT_EVENT));
    if (isErrorBody(json)) throw new ApiError(res.status, json.error.code, json.error.message);
    throw new ApiError(res.status, `http_${res.status}`, text.slice(0, 200) || res.statusText);
  }
  return json as T;
}

/** A window as the app keeps it (epoch milliseconds). */
export function toPoint(w: WindowOut): WindowPoint {
  return {
    start: toMillis(w.window_start),
    end: toMillis(w.window_end),
    value: w.value ?? null,
    revision: w.revision,
    final: w.final,
    lateCount: w.late_count,
    updatedAt: toMillis(w.updated_at),
  };
}

const path = (id: string) => encodeURIComponent(id);

// ---- endpoints -------------------------------------------------------------------------------

export async function listDashboards(tenant: string, signal?: AbortSignal): Promise<Dashboard[]> {
  const list = await request<Schemas['DashboardList']>(
    'GET',
    '/v1/dashboards',
    { tenant_id: tenant },
    undefined,
    signal,
  );
  return list.dashboards;
}

export function getDashboard(tenant: string, id: string, signal?: AbortSignal): Promise<Dashboard> {
  return request<Dashboard>(
    'GET',
    `/v1/dashboards/${path(id)}`,
    { tenant_id: tenant },
    undefined,
    signal,
  );
}

export function createDashboard(tenant: string, name: string): Promise<Dashboard> {
  const body: Schemas['DashboardInput'] = { tenant_id: tenant, name };
  return request<Dashboard>('POST', '/v1/dashboards', {}, body);
}

/** Renames; the description is sent along because PUT replaces it. Widgets are untouched. */
export async function renameDashboard(tenant: string, d: Dashboard, name: string): Promise<void> {
  const body: Schemas['DashboardInput'] = { tenant_id: tenant, name };
  if (d.description) body.description = d.description;
  await request('PUT', `/v1/dashboards/${path(d.dashboard_id)}`, { tenant_id: tenant }, body);
}

export async function deleteDashboard(tenant: string, id: string): Promise<void> {
  await request('DELETE', `/v1/dashboards/${path(id)}`, { tenant_id: tenant });
}

function widgetBody(tenant: string, w: WidgetDraft): Schemas['WidgetInput'] {
  return { tenant_id: tenant, ...w };
}

export function addWidget(tenant: string, dashboardId: string, w: WidgetDraft): Promise<Widget> {
  return request<Widget>(
    'POST',
    `/v1/dashboards/${path(dashboardId)}/widgets`,
    { tenant_id: tenant },
    widgetBody(tenant, w),
  );
}

export async function updateWidget(
  tenant: string,
  dashboardId: string,
  widgetId: string,
  w: WidgetDraft,
): Promise<void> {
  await request(
    'PUT',
    `/v1/dashboards/${path(dashboardId)}/widgets/${path(widgetId)}`,
    { tenant_id: tenant },
    widgetBody(tenant, w),
  );
}

export async function deleteWidget(
  tenant: string,
  dashboardId: string,
  widgetId: string,
): Promise<void> {
  await request('DELETE', `/v1/dashboards/${path(dashboardId)}/widgets/${path(widgetId)}`, {
    tenant_id: tenant,
  });
}

/** `GET /v1/metrics`: the tenant's metrics with their stats and kept dimension sets. */
export async function listMetrics(tenant: string, signal?: AbortSignal): Promise<MetricInfo[]> {
  // A dashboard link reads its dashboard and its widgets' metrics, not the tenant's lists.
  if (linkToken) return [];
  const list = await request<Schemas['MetricList']>(
    'GET',
    '/v1/metrics',
    { tenant_id: tenant },
    undefined,
    signal,
  );
  return list.metrics;
}

/** `GET /v1/metrics/{name}/series`: known values per dimension (for filter suggestions). */
export async function listDimensionValues(
  tenant: string,
  metric: string,
  from: number,
  to: number,
  signal?: AbortSignal,
): Promise<Record<string, string[]>> {
  if (linkToken) return {}; // a dashboard link reads its dashboard only
  const query: QueryOf<'list_metric_series'> = {
    tenant_id: tenant,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    limit: 1000,
  };
  const series = await request<Schemas['SeriesList']>(
    'GET',
    `/v1/metrics/${path(metric)}/series`,
    query,
    undefined,
    signal,
  );
  return series.dimensions;
}

export async function listAlertRules(tenant: string, signal?: AbortSignal): Promise<AlertRule[]> {
  if (linkToken) return [];
  const list = await request<Schemas['AlertList']>(
    'GET',
    '/v1/alerts',
    { tenant_id: tenant },
    undefined,
    signal,
  );
  return list.alerts;
}

export interface MetricQuery {
  dimensions: Record<string, string>;
  from: number;
  to: number;
  /** `1m`, `5m`, ... or `auto`; absent: the metric's window. */
  window?: string | null;
  stat: Stat;
  /** One series per value of these dimensions. */
  groupBy?: string[];
  limit?: number | null;
}

/** A query's windows and the window the gateway served (the one `auto` chose). */
export interface MetricAnswer {
  points: WindowPoint[];
  /** Grouped queries: the answer's series. */
  series: Schemas['SeriesOut'][] | null;
  window: string;
  windowAuto: boolean;
}

/** What a metric can answer (`GET /v1/metrics/{name}/capabilities`). */
export type MetricCapabilities = Schemas['MetricCapabilities'];

/** `GET /v1/metrics/{name}/capabilities?time_window=`: the windows a widget of that range may
 * use (the gateway's planner judges each) and what `auto` picks. */
export async function metricCapabilities(
  tenant: string,
  metric: string,
  timeWindow: string,
  signal?: AbortSignal,
): Promise<MetricCapabilities> {
  const query: QueryOf<'metric_capabilities'> = { tenant_id: tenant, time_window: timeWindow };
  return request<MetricCapabilities>(
    'GET',
    `/v1/metrics/${path(metric)}/capabilities`,
    query,
    undefined,
    signal,
  );
}

/** `GET /v1/metrics/{name}`: the windows of one series over a range. */
export async function queryMetric(
  tenant: string,
  metric: string,
  q: MetricQuery,
  signal?: AbortSignal,
): Promise<MetricAnswer> {
  const query: QueryOf<'query_metric'> = {
    tenant_id: tenant,
    dimensions: JSON.stringify(q.dimensions),
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    window: q.window ?? undefined,
    stat: q.stat,
    group_by: q.groupBy?.length ? q.groupBy.join(',') : undefined,
    limit: q.groupBy?.length ? (q.limit ?? undefined) : undefined,
  };
  const answer = await request<Schemas['MetricWindows']>(
    'GET',
    `/v1/metrics/${path(metric)}`,
    query,
    undefined,
    signal,
  );
  return {
    points: answer.windows.map(toPoint),
    series: answer.series ?? null,
    window: answer.window,
    windowAuto: answer.window_auto,
  };
}
