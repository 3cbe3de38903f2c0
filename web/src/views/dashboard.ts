/**
 * A dashboard being viewed: snapshot and live updates over the stream, or historical queries
 * for a custom range. Updates are merged into each widget's series as they arrive and drawn
 * at most once per animation frame; badges and ages are refreshed once a second.
 */

import {
  ApiError,
  getDashboard,
  listAlertRules,
  listDimensionValues,
  listMetrics,
  queryMetric,
} from '../api';
import { rulesForWidget } from '../alerts';
import { listAlertStates } from '../alerts-api';
import { h, replace, toast } from '../dom';
import { formatWindowLength, parseDuration, unitFor } from '../format';
import { WindowSeries, zeroWhenEmpty } from '../series';
import { staleness } from '../staleness';
import { DashboardStream, toGroups } from '../stream';
import type { ConnectionState, Group } from '../stream';
import { palette } from '../theme';
import { WindowProgress } from '../trend';
import type {
  AlertRule,
  AlertState,
  Dashboard,
  MetricInfo,
  StatusView,
  TimeRange,
  Widget,
} from '../types';
import type { RuleView, VizContext } from '../viz/viz';
import { Panel } from './panel';
import type { PanelActions } from './panel';

/** How often the gateway confirms freshness (a `status` event at least every 5 s): a widget
 * is stale when nothing confirmed its data for twice this. */
export const REFRESH_MS = 5000;

interface GroupState {
  label: string;
  other: boolean;
  total: number | null;
  series: WindowSeries;
}

interface Model {
  widget: Widget;
  panel: Panel;
  series: WindowSeries;
  /** The open windows' values as they filled (single-value widgets compare with them). */
  progress: WindowProgress | null;
  windowMs: number;
  /** The window the gateway served last (`1h`, with `auto` when it chose it), shown. */
  resolution: string | null;
  /** Split widgets: the groups by key, in the gateway's ranking (then `other`). */
  groups: Map<string, GroupState> | null;
  /** Local time of the last snapshot or update for this widget. */
  lastDataAt: number | null;
  updates: number;
  delayMs: number | null;
  error: string | null;
  /** Data is known (loaded) from this time on; missing windows after it are real zeros. */
  coveredFrom: number | null;
  /** Range (ms) of the history already fetched for live presets. */
  historyMs: number;
  loading: boolean;
  dirty: boolean;
}

export interface DashboardCallbacks extends PanelActions {
  connection(state: ConnectionState | 'historical', detail: string): void;
  /** The dashboard was deleted elsewhere. */
  gone(): void;
  /** The dashboard (its name) was loaded or reloaded. */
  loaded(d: Dashboard): void;
}

/** How often the rules' states are read again. */
const ALERT_STATES_EVERY_MS = 5000;

export class DashboardView {
  readonly grid = h('div', { class: 'grid', 'data-testid': 'widget-grid' });
  private dashboard: Dashboard | null = null;
  private models = new Map<string, Model>();
  private metrics: MetricInfo[] = [];
  private rules: AlertRule[] = [];
  /** The rules' states as the gateway serves them (`GET /v1/alert-states`). */
  private ruleStates = new Map<string, AlertState>();
  private statesReadAt = 0;
  private statesReading = false;
  private stream: DashboardStream | null = null;
  private pipeline: StatusView | null = null;
  private lastStatusOkAt: number | null = null;
  private streamOpenedAt = Date.now();
  private tickTimer: number | undefined;
  private frame = 0;
  private lastSlide = 0;
  private disposed = false;
  private abort = new AbortController();
  private reloading: Promise<void> | null = null;

  constructor(
    private readonly tenant: string,
    private readonly dashboardId: string,
    private range: TimeRange,
    private readonly cb: DashboardCallbacks,
  ) {}

  get current(): Dashboard | null {
    return this.dashboard;
  }

  get metricList(): MetricInfo[] {
    return this.metrics;
  }

  async load(): Promise<void> {
    const signal = this.abort.signal;
    const [dashboard, metrics, rules] = await Promise.all([
      getDashboard(this.tenant, this.dashboardId, signal),
      listMetrics(this.tenant, signal).catch(() => [] as MetricInfo[]),
      listAlertRules(this.tenant, signal).catch(() => [] as AlertRule[]),
    ]);
    if (this.disposed) return;
    this.metrics = metrics;
    this.rules = rules;
    this.setDashboard(dashboard);
    void this.readStates();
    this.tickTimer = window.setInterval(() => this.tick(), 1000);
  }

  /** Re-reads the dashboard (after an edit here or a `reload` event) and restarts the stream.
   * Concurrent calls (an edit here also makes the gateway send `reload`) share one reload. */
  reload(): Promise<void> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    this.stream?.close();
    this.stream = null;
    try {
      const [dashboard, rules, metrics] = await Promise.all([
        getDashboard(this.tenant, this.dashboardId, this.abort.signal),
        listAlertRules(this.tenant, this.abort.signal).catch(() => this.rules),
        listMetrics(this.tenant, this.abort.signal).catch(() => this.metrics),
      ]);
      if (this.disposed) return;
      this.rules = rules;
      this.metrics = metrics;
      this.setDashboard(dashboard);
    } catch (err) {
      if (this.disposed) return;
      if (err instanceof ApiError && err.status === 404) return this.cb.gone();
      toast(
        `Could not reload the dashboard: ${err instanceof Error ? err.message : String(err)}`,
        'error',
      );
      this.startData();
    }
  }

  setRange(range: TimeRange): void {
    // A custom range may be served at another resolution than the live one: start afresh
    // when entering or leaving it.
    const resolutionMayChange = range.kind === 'custom' || this.range.kind === 'custom';
    this.range = range;
    for (const m of this.models.values()) {
      m.historyMs = 0;
      if (resolutionMayChange) {
        m.series.clear();
        m.coveredFrom = null;
      }
    }
    this.startData();
  }

  dispose(): void {
    this.disposed = true;
    this.abort.abort();
    this.stream?.close();
    window.clearInterval(this.tickTimer);
    cancelAnimationFrame(this.frame);
    for (const m of this.models.values()) m.panel.destroy();
    this.models.clear();
  }

  /** Theme changed: rebuild charts with the new colours. */
  repaint(): void {
    for (const m of this.models.values()) m.dirty = true;
    this.schedule();
  }

  private setDashboard(d: Dashboard): void {
    this.dashboard = d;
    this.cb.loaded(d);
    const keep = new Map<string, Model>();
    for (const w of d.widgets) {
      const old = this.models.get(w.widget_id);
      if (old && JSON.stringify(old.widget) === JSON.stringify(w)) {
        keep.set(w.widget_id, old);
        this.models.delete(w.widget_id);
      } else {
        keep.set(w.widget_id, this.newModel(w));
      }
    }
    for (const m of this.models.values()) m.panel.destroy();
    this.models = keep;
    replace(
      this.grid,
      [...keep.values()].map((m) => m.panel.root),
      keep.size === 0
        ? h(
            'div',
            { class: 'empty', 'data-testid': 'empty-dashboard' },
            h('p', {}, 'This dashboard has no widgets yet.'),
            h('p', { class: 'muted' }, 'Use “Add widget” to chart a metric.'),
          )
        : null,
    );
    this.startData();
  }

  private newModel(w: Widget): Model {
    const info = this.metrics.find((m) => m.name === w.metric_name);
    const windowMs =
      (w.window ? parseDuration(w.window) : null) ?? (info ? info.window_secs * 1000 : 60_000);
    return {
      widget: w,
      panel: new Panel(w, this.cb, (widget, from, to) =>
        listDimensionValues(this.tenant, widget.metric_name, from, to, this.abort.signal),
      ),
      series: new WindowSeries(),
      progress: null,
      windowMs,
      resolution: null,
      groups: w.group_by?.length ? new Map() : null,
      lastDataAt: null,
      updates: 0,
      delayMs: null,
      error: null,
      coveredFrom: null,
      historyMs: 0,
      loading: false,
      dirty: true,
    };
  }

  private live(): boolean {
    return this.range.kind !== 'custom';
  }

  /** The displayed range of a widget right now. */
  private rangeOf(m: Model, now: number): { from: number; to: number } {
    if (this.range.kind === 'custom') return { from: this.range.from, to: this.range.to };
    const span =
      this.range.kind === 'preset'
        ? this.range.ms
        : (parseDuration(m.widget.time_window) ?? 3_600_000);
    const to = Math.floor(now / m.windowMs) * m.windowMs + m.windowMs;
    return { from: to - span, to };
  }

  /** (Re)starts data for the current range: the stream for live ranges, queries for others. */
  private startData(): void {
    if (this.disposed) return;
    if (this.live()) {
      if (!this.stream) {
        this.streamOpenedAt = Date.now();
        this.stream = new DashboardStream(this.tenant, this.dashboardId, {
          snapshot: (s) => {
            const m = this.models.get(s.widgetId);
            if (!m) return;
            const now = Date.now();
            m.error = s.error ? s.error.message : null;
            this.served(m, s.window, s.windowAuto);
            if (m.groups && s.groups) this.setGroups(m, s.groups);
            m.series.merge(s.windows);
            const span = parseDuration(m.widget.time_window) ?? 3_600_000;
            const from = Math.floor((now - span) / m.windowMs) * m.windowMs;
            if (!m.groups && !m.error) {
              // A snapshot follows a gap (a new or resumed connection): trace afresh from it.
              m.progress = new WindowProgress(from + m.windowMs);
              for (const p of s.windows) m.progress.record(p, true);
            }
            m.coveredFrom = m.coveredFrom === null ? from : Math.min(m.coveredFrom, from);
            m.lastDataAt = now;
            this.markDirty(m);
          },
          update: (u) => {
            const m = this.models.get(u.widgetId);
            if (!m) return;
            m.lastDataAt = Date.now();
            m.delayMs = u.delayMs;
            // Live data is being served (a failed snapshot only lost the history).
            if (m.error !== null) {
              m.error = null;
              this.markDirty(m);
            }
            const series = m.groups && u.group ? this.groupOf(m, u.group) : m.series;
            if (!m.groups) m.progress?.record(u.point);
            if (series.upsert(u.point)) {
              m.updates++;
              this.markDirty(m);
            }
          },
          status: (s) => {
            this.pipeline = s;
            if (s.state === 'ok') this.lastStatusOkAt = Date.now();
            this.tick();
          },
          reload: (reason) => {
            if (reason === 'deleted') {
              this.stream = null;
              return this.cb.gone();
            }
            void this.reload();
          },
          connection: () => this.tick(),
        });
        this.stream.open();
      }
      this.loadHistory();
    } else {
      this.stream?.close();
      this.stream = null;
      this.loadHistory();
    }
    for (const m of this.models.values()) m.dirty = true;
    this.schedule();
    this.tick();
  }

  /**
   * Historical queries: the whole range for a custom range; for a live preset wider than a
   * widget's own time window (which its snapshot covers), the part the snapshot lacks.
   */
  private loadHistory(): void {
    const now = Date.now();
    for (const m of this.models.values()) {
      const { from, to } = this.rangeOf(m, now);
      let qTo = to;
      if (this.live()) {
        const own = parseDuration(m.widget.time_window) ?? 3_600_000;
        const span = to - from;
        // Split widgets show their own range's snapshot (its ranking is the gateway's).
        if (span <= own || m.historyMs >= span || m.groups) continue;
        m.historyMs = span;
        qTo = to - own + m.windowMs;
      }
      m.loading = true;
      m.dirty = true;
      const range = this.range;
      const own = m.widget.window && m.widget.window !== 'auto' ? m.widget.window : null;
      queryMetric(
        this.tenant,
        m.widget.metric_name,
        {
          dimensions: m.widget.dimensions,
          from,
          to: qTo,
          // A custom range picks its resolution (unless the widget fixes one); the history
          // of a live preset extends the snapshot at the snapshot's window.
          window: own ?? (this.live() ? formatWindowLength(m.windowMs) : 'auto'),
          stat: m.widget.stat,
          groupBy: m.widget.group_by ?? [],
          limit: m.widget.limit ?? null,
        },
        this.abort.signal,
      )
        .then((answer) => {
          if (this.disposed || range !== this.range || this.models.get(m.widget.widget_id) !== m)
            return;
          if (!this.live()) this.served(m, answer.window, answer.windowAuto);
          if (m.groups && answer.series) this.setGroups(m, toGroups(answer.series));
          m.series.merge(answer.points);
          m.coveredFrom = m.coveredFrom === null ? from : Math.min(m.coveredFrom, from);
          if (!this.live()) m.lastDataAt = Date.now();
          m.error = null;
        })
        .catch((err: unknown) => {
          if (this.disposed || (err instanceof DOMException && err.name === 'AbortError')) return;
          m.historyMs = 0;
          m.error = err instanceof Error ? err.message : String(err);
        })
        .finally(() => {
          m.loading = false;
          this.markDirty(m);
        });
    }
  }

  /** Replaces a split widget's groups with a snapshot's or a query's. */
  private setGroups(m: Model, groups: Group[]): void {
    m.groups = new Map();
    for (const g of groups) {
      const series = new WindowSeries();
      series.merge(g.points);
      m.groups.set(g.key, { label: g.label, other: g.other, total: g.total, series });
    }
  }

  /** The series of a split widget's group (a new one, unranked, last). */
  private groupOf(m: Model, g: { key: string; label: string; other: boolean }): WindowSeries {
    let state = m.groups!.get(g.key);
    if (!state) {
      state = { label: g.label, other: g.other, total: null, series: new WindowSeries() };
      m.groups!.set(g.key, state);
    }
    return state.series;
  }

  /** Notes the window the gateway served for `m`. */
  private served(m: Model, window: string | null, auto: boolean): void {
    if (!window) return;
    m.windowMs = parseDuration(window) ?? m.windowMs;
    m.resolution = auto ? `${window} · auto` : window;
  }

  private markDirty(m: Model): void {
    m.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.frame || this.disposed) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.flush();
    });
  }

  /** Draws every widget whose data changed since the last frame. */
  private flush(): void {
    const now = Date.now();
    const pal = palette();
    for (const m of this.models.values()) {
      if (!m.dirty) continue;
      m.dirty = false;
      m.panel.render(this.context(m, now, pal), this.info(m, now));
    }
  }

  private context(m: Model, now: number, pal = palette()): VizContext {
    const { from, to } = this.rangeOf(m, now);
    // Drop what can no longer be shown (long-open pages stay small).
    if (this.live()) {
      m.series.prune(from - m.windowMs);
      for (const g of m.groups?.values() ?? []) g.series.prune(from - m.windowMs);
    }
    const info = this.metrics.find((x) => x.name === m.widget.metric_name);
    const rules: RuleView[] = rulesForWidget(m.widget, this.rules, this.ruleStates);
    let fill: { from: number; to: number } | null = null;
    if (zeroWhenEmpty(m.widget.stat) && m.coveredFrom !== null && !m.error) {
      const upTo = this.live()
        ? this.stream?.state === 'open'
          ? now
          : (this.stream?.downSince ?? m.lastDataAt ?? now)
        : to;
      fill = { from: m.coveredFrom, to: Math.min(upTo, to) };
    }
    return {
      points: m.series.all(),
      from,
      to,
      windowMs: m.windowMs,
      fill,
      stat: m.widget.stat,
      unit: unitFor(info, m.widget.stat),
      progress: this.live() ? (m.progress ?? undefined) : undefined,
      rules,
      palette: pal,
      groups: m.groups
        ? [...m.groups].map(([key, g]) => ({
            key,
            label: g.label,
            other: g.other,
            total: g.total,
            points: g.series.all(),
          }))
        : undefined,
    };
  }

  private info(m: Model, now: number) {
    const streamUp = this.stream?.state === 'open';
    const confirmed = Math.max(m.lastDataAt ?? 0, this.lastStatusOkAt ?? 0) || null;
    return {
      staleness: staleness({
        now,
        live: this.live(),
        streamUp,
        streamDownSince: this.stream?.downSince ?? null,
        pipelineBehind: this.pipeline?.stale ?? false,
        pipelineLagMs: this.pipeline?.watermark_delay_ms ?? null,
        lastUpdateAt: confirmed,
        waitingSince: this.streamOpenedAt,
        refreshMs: REFRESH_MS,
      }),
      historical: !this.live(),
      resolution: m.resolution,
      loading: m.loading,
      error: m.error,
      lastDataAt: m.lastDataAt,
      delayMs: m.delayMs,
      now,
      version:
        m.series.version +
        [...(m.groups?.values() ?? [])].reduce((n, g) => n + g.series.version, 0),
      updates: m.updates,
    };
  }

  /** Reads the rules' served states (at most one read at a time); a failed read leaves
   * every state unknown rather than stale. */
  private async readStates(): Promise<void> {
    if (this.rules.length === 0 || this.statesReading) return;
    this.statesReading = true;
    this.statesReadAt = Date.now();
    try {
      const states = await listAlertStates(this.tenant, this.abort.signal);
      this.ruleStates = new Map(states.map((s) => [s.alert_id, s.state]));
    } catch {
      this.ruleStates = new Map();
    } finally {
      this.statesReading = false;
    }
  }

  /** Once a second: staleness badges, ages, connection pill; slides live charts every 5 s. */
  private tick(): void {
    if (this.disposed) return;
    const now = Date.now();
    if (now - this.statesReadAt >= ALERT_STATES_EVERY_MS) void this.readStates();
    const slide = this.live() && now - this.lastSlide >= 5000;
    if (slide) this.lastSlide = now;
    for (const m of this.models.values()) {
      if (slide) m.dirty = true;
      else m.panel.renderChrome(m.dirty ? null : this.context(m, now), this.info(m, now));
    }
    if (slide) this.schedule();
    if (!this.live()) {
      this.cb.connection('historical', 'Historical range: live updates paused');
    } else if (this.stream) {
      const st = this.stream.state;
      const p = this.pipeline;
      const detail =
        st === 'open'
          ? p
            ? `Live · pipeline ${p.state}${p.watermark_delay_ms != null ? `, watermark ${Math.round(p.watermark_delay_ms / 100) / 10}s behind` : ''}`
            : 'Live'
          : st === 'connecting'
            ? 'Connecting…'
            : 'Disconnected, reconnecting…';
      this.cb.connection(st, detail);
    }
  }
}
