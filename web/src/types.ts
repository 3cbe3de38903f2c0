/**
 * Shapes the app works with: the gateway's, named from the types generated from its OpenAPI
 * document (`api-types.ts`, `npm run gen:api`), and the app's own (windows in epoch
 * milliseconds, the time range).
 */

import type { components } from './api-types';
import { statValues } from './api-types';

type Schemas = components['schemas'];

/** A statistic a metric window serves. */
export type Stat = Schemas['Stat'];
export const STATS: readonly Stat[] = statValues;

/** How a widget draws its data. */
export type VizType = Schemas['VizType'];
export type Condition = Schemas['Condition'];
export type AlertState = Schemas['AlertState'];

/** A widget as answered: a query definition resolved at read time. */
export type Widget = Schemas['Widget'];
/** What the editor produces: a widget without its id. */
export type WidgetDraft = Omit<Widget, 'widget_id'>;
/** A dashboard as answered, with its store revision. */
export type Dashboard = Schemas['DashboardOut'];
/** A metric as `GET /v1/metrics` lists it. */
export type MetricInfo = Schemas['MetricInfo'];
/** An alert rule as `GET /v1/alerts` lists it. */
export type AlertRule = Schemas['AlertOut'];
/** The pipeline freshness summary (`GET /v1/status`, the stream's `status` events). */
export type StatusView = Schemas['StatusView'];
/** A served window (RFC 3339 times), as the query API and the stream send it. */
export type WindowOut = Schemas['WindowOut'];
/** The gateway's error detail (`{"error": {code, message}}`). */
export type ErrorDetail = Schemas['ErrorDetail'];

/** Dimension filter: dimension name -> required value. */
export type Dimensions = Record<string, string>;

/** The visualisations the editor offers (`gauge` from the API is drawn as a counter). */
export const VIZ_TYPES: readonly { value: VizType; label: string }[] = [
  { value: 'line_chart', label: 'Line chart' },
  { value: 'area_chart', label: 'Area chart' },
  { value: 'bar_chart', label: 'Bar chart' },
  { value: 'counter', label: 'Single value + trend' },
  { value: 'table', label: 'Table' },
];

/** Widget time windows (seed: `last_1h`). */
export const TIME_WINDOWS: readonly { value: string; label: string }[] = [
  { value: 'last_15m', label: 'Last 15 minutes' },
  { value: 'last_1h', label: 'Last 1 hour' },
  { value: 'last_6h', label: 'Last 6 hours' },
  { value: 'last_24h', label: 'Last 24 hours' },
  { value: 'last_7d', label: 'Last 7 days' },
  { value: 'last_30d', label: 'Last 30 days' },
];

/** One metric window of one widget's series. Times in epoch milliseconds. */
export interface WindowPoint {
  start: number;
  end: number;
  value: number | null;
  /** 0 until the window closes; each late correction adds one. */
  revision: number;
  /** The window has closed; its value is no longer provisional. */
  final: boolean;
  /** Events merged after the window closed. */
  lateCount: number;
  updatedAt: number;
}

/** The dashboard's time range: a sliding live preset, or a fixed historical range. */
export type TimeRange =
  | { kind: 'widget' }
  | { kind: 'preset'; ms: number; label: string }
  | { kind: 'custom'; from: number; to: number };
