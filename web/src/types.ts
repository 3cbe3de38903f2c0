/** Shapes the app works with. `api.ts` normalises what the gateway sends into these. */

/** A statistic a metric window serves (shared crate `Stat`). */
export type Stat = 'count' | 'sum' | 'min' | 'max' | 'avg' | 'p50' | 'p90' | 'p95' | 'p99' | 'unique';

export const STATS: readonly Stat[] = ['count', 'sum', 'min', 'max', 'avg', 'p50', 'p90', 'p95', 'p99', 'unique'];

/** How a widget draws its data. */
export type VizType = 'line_chart' | 'area_chart' | 'bar_chart' | 'counter' | 'gauge' | 'table';

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
];

/** Dimension filter: dimension name -> required value. */
export type Dimensions = Record<string, string>;

/** A widget: a query definition resolved at read time. */
export interface Widget {
  id: string;
  metric_name: string;
  dimensions: Dimensions;
  stat: Stat;
  /** `last_15m`, `last_1h`, ... */
  time_window: string;
  /** Aggregation window (`1m`, `5m`); absent: the metric's own window. */
  window?: string;
  viz_type: VizType;
  /** Optional display title. */
  title?: string;
}

/** What the editor produces (a widget without its id). */
export type WidgetDraft = Omit<Widget, 'id'>;

export interface Dashboard {
  id: string;
  tenant_id: string;
  name: string;
  description?: string;
  widgets: Widget[];
  created_at?: number;
  updated_at?: number;
}

/** A metric as `GET /v1/metrics` lists it. */
export interface MetricInfo {
  name: string;
  /** `tenant`, `global` or `builtin`. */
  scope: string;
  window_secs: number;
  dimensions: string[];
  /** Dimension sets actually kept (exact for every stat). */
  dimension_sets: string[][];
  /** Stats the metric has. */
  stats: Stat[];
  /** Numeric field, when the metric has one (for units). */
  field?: string;
  description?: string;
}

export type Condition = 'gt' | 'lt' | 'gte' | 'lte' | 'eq';

export type AlertState = 'ok' | 'pending' | 'firing' | 'resolved';

export interface AlertRule {
  id: string;
  metric_name: string;
  dimensions: Dimensions;
  stat: Stat;
  condition: Condition;
  threshold: number;
  for_windows: number;
  evaluate_on: 'final' | 'provisional';
  /** State as reported by the gateway, when it reports one. */
  state?: AlertState;
}

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
