/**
 * One widget on the dashboard: title, honesty badges (stale, provisional, revised, alert
 * state, historical), the visualisation, and a footer with the data's age.
 */

import { CONDITION_SYMBOL } from '../alerts';
import { h, infoTip, replace } from '../dom';
import { formatDuration, formatInstant, formatLatency, formatValue } from '../format';
import { hasValue, isRevised } from '../series';
import type { Staleness } from '../staleness';
import type { Widget } from '../types';
import { CounterViz } from '../viz/counter';
import { GroupChart, GroupList } from '../viz/groups';
import { TableViz } from '../viz/table';
import { TimeSeriesChart } from '../viz/timeseries';
import type { Viz, VizContext } from '../viz/viz';
import { EmptyState } from './empty-state';
import type { DimensionValues } from './empty-state';

export interface PanelInfo {
  staleness: Staleness;
  /** Historical (custom) range: no live updates. */
  historical: boolean;
  /** The window the gateway served (`1h · auto`), once known. */
  resolution: string | null;
  loading: boolean;
  error: string | null;
  lastDataAt: number | null;
  delayMs: number | null;
  now: number;
  /** Data version, exposed for tests and debugging. */
  version: number;
  updates: number;
}

export interface PanelActions {
  edit(widget: Widget): void;
  remove(widget: Widget): void;
}

function describe(w: Widget): string {
  const dims = Object.entries(w.dimensions).map(([k, v]) => `${k}=${v}`);
  const split = w.group_by?.length ? [`by ${w.group_by.join(', ')}`] : [];
  return [w.metric_name, w.stat, ...dims, ...split].join(' · ');
}

/** Whether the range has a window with a value (a split widget: any group has). */
function hasRows(ctx: VizContext): boolean {
  const inRange = (p: { start: number; end: number }) => p.end > ctx.from && p.start < ctx.to;
  if (ctx.groups) return ctx.groups.some((g) => g.points.some((p) => inRange(p) && hasValue(p)));
  return ctx.points.some((p) => inRange(p) && hasValue(p));
}

export class Panel {
  readonly root: HTMLElement;
  private readonly badges = h('div', { class: 'panel-badges' });
  private readonly hover = h('div', { class: 'panel-hover', 'aria-hidden': 'true' });
  private readonly body = h('div', { class: 'panel-body' });
  private readonly vizHost = h('div', { class: 'viz-host' });
  private readonly message = h('div', { class: 'panel-message', hidden: true });
  private readonly empty: EmptyState;
  private readonly footer = h('div', { class: 'panel-footer' });
  private readonly resolution = h('span', {
    class: 'panel-resolution',
    title: 'Aggregation window served (auto: chosen for the range)',
    'data-testid': 'widget-resolution',
  });
  private readonly legend: HTMLElement | null;
  private viz: Viz;
  private badgeKey = '';
  private readonly observer: ResizeObserver;

  constructor(
    readonly widget: Widget,
    actions: PanelActions,
    dimensionValues: DimensionValues | null = null,
  ) {
    this.empty = new EmptyState(widget, dimensionValues);
    const titleId = `w-${widget.widget_id}-title`;
    const grouped = (widget.group_by?.length ?? 0) > 0;
    const chart =
      !grouped &&
      (widget.viz_type === 'line_chart' ||
        widget.viz_type === 'area_chart' ||
        widget.viz_type === 'bar_chart');
    this.legend = chart
      ? h(
          'div',
          { class: 'panel-legend', 'aria-hidden': 'true' },
          h('span', { class: 'lg lg-final' }, 'closed'),
          h('span', { class: 'lg lg-provisional' }, 'open (provisional)'),
          h('span', { class: 'lg lg-revised' }, 'revised'),
        )
      : null;
    this.root = h(
      'article',
      {
        class: `panel panel-${widget.viz_type}`,
        'data-testid': 'widget',
        'data-widget-id': widget.widget_id,
        'data-viz': widget.viz_type,
        'aria-labelledby': titleId,
      },
      h(
        'header',
        { class: 'panel-head' },
        h(
          'div',
          { class: 'panel-titles' },
          h('h3', { class: 'panel-title', id: titleId }, widget.title || widget.metric_name),
          h('div', { class: 'panel-sub' }, describe(widget), ' · ', this.resolution),
        ),
        this.hover,
        h(
          'div',
          { class: 'panel-actions edit-only' },
          h(
            'button',
            {
              class: 'icon-btn',
              type: 'button',
              title: 'Edit widget',
              'aria-label': `Edit widget ${widget.title || widget.metric_name}`,
              'data-testid': 'edit-widget',
              onclick: () => actions.edit(this.widget),
            },
            '✎',
          ),
          h(
            'button',
            {
              class: 'icon-btn',
              type: 'button',
              title: 'Remove widget',
              'aria-label': `Remove widget ${widget.title || widget.metric_name}`,
              'data-testid': 'remove-widget',
              onclick: () => actions.remove(this.widget),
            },
            '✕',
          ),
        ),
      ),
      this.badges,
      this.body,
      this.legend,
      this.footer,
    );
    this.body.append(this.vizHost, this.message, this.empty.root);
    const onHover = (text: string | null) => {
      this.hover.textContent = text ?? '';
    };
    switch (grouped ? `split_${widget.viz_type}` : widget.viz_type) {
      case 'split_line_chart':
        this.viz = new GroupChart(this.vizHost, false);
        break;
      case 'split_area_chart':
        this.viz = new GroupChart(this.vizHost, true);
        break;
      case 'split_bar_chart':
        this.viz = new GroupList(this.vizHost, true);
        break;
      case 'split_table':
      case 'split_counter':
      case 'split_gauge':
        this.viz = new GroupList(this.vizHost, false);
        break;
      case 'bar_chart':
        this.viz = new TimeSeriesChart(this.vizHost, 'bar', onHover);
        break;
      case 'area_chart':
        this.viz = new TimeSeriesChart(this.vizHost, 'area', onHover);
        break;
      case 'counter':
      case 'gauge':
        this.viz = new CounterViz(this.vizHost);
        break;
      case 'table':
        this.viz = new TableViz(this.vizHost);
        break;
      default:
        this.viz = new TimeSeriesChart(this.vizHost, 'line', onHover);
    }
    this.observer = new ResizeObserver((entries) => {
      const box = entries[0]?.contentRect;
      if (box) this.viz.resize(box.width, box.height);
    });
    this.observer.observe(this.vizHost);
  }

  render(ctx: VizContext | null, info: PanelInfo): void {
    this.renderChrome(ctx, info);
    const shown = ctx?.groups ? (ctx.groups[0]?.points ?? []) : ctx?.points;
    const latest = shown?.[shown.length - 1];
    this.root.dataset.version = String(info.version);
    this.root.dataset.updates = String(info.updates);
    this.root.dataset.loaded = info.lastDataAt !== null ? '1' : '';
    this.root.dataset.latest =
      latest?.value === null || latest === undefined ? '' : String(latest.value);
    if (info.error) {
      this.message.textContent = info.error;
      this.message.hidden = false;
      this.vizHost.hidden = true;
      this.empty.show(false, 0, 0);
      return;
    }
    this.message.hidden = true;
    // Once the data is loaded, a range without rows says "No data" rather than drawing an
    // empty or zero-filled chart.
    const empty = ctx !== null && info.lastDataAt !== null && !info.loading && !hasRows(ctx);
    this.root.dataset.empty = empty ? '1' : '';
    this.vizHost.hidden = empty;
    this.empty.show(empty, ctx?.from ?? 0, ctx?.to ?? 0);
    if (ctx) this.viz.render(ctx);
  }

  /** Badges and footer only (the once-a-second tick). */
  renderChrome(ctx: VizContext | null, info: PanelInfo): void {
    const badges: HTMLElement[] = [];
    const s = info.staleness;
    this.root.classList.toggle('is-stale', s.stale);
    this.root.dataset.stale = s.stale ? (s.reason ?? 'yes') : '';
    if (s.stale)
      badges.push(
        h(
          'span',
          {
            class: `badge badge-stale badge-stale-${s.reason}`,
            title: s.detail,
            'data-testid': 'badge-stale',
          },
          s.label,
        ),
      );
    if (info.historical)
      badges.push(
        h(
          'span',
          { class: 'badge badge-historical', title: 'Fixed historical range: no live updates' },
          'historical',
        ),
      );
    if (info.loading) badges.push(h('span', { class: 'badge badge-loading' }, 'loading…'));
    if (ctx) {
      const inRange = ctx.points.filter((p) => p.end > ctx.from && p.start < ctx.to);
      const revised = inRange.filter(isRevised);
      if (revised.length > 0) {
        const span = ctx.to - ctx.from;
        const detail = revised
          .slice(-8)
          .map(
            (p) =>
              `${formatInstant(p.start, span)} r${p.revision}${p.lateCount ? ` (+${p.lateCount} late)` : ''}`,
          )
          .join(', ');
        badges.push(
          infoTip(
            `revised ×${revised.length}`,
            `Windows corrected by late data after they were final (their values changed): ${detail}. Normal when events arrive late; the chart marks them.`,
            {
              class: 'revised-mark',
              'aria-label': `${revised.length} revised window${revised.length === 1 ? '' : 's'}`,
              'data-testid': 'badge-revised',
            },
          ),
        );
      }
      const open = inRange.some((p) => !p.final);
      if (open && this.legend === null && this.widget.viz_type === 'table') {
        badges.push(
          h(
            'span',
            {
              class: 'badge badge-provisional',
              title: 'The newest window is still open: its value will change',
            },
            'provisional',
          ),
        );
      }
      this.root.classList.remove('is-firing', 'is-pending');
      for (const r of ctx.rules) {
        const st = r.state;
        if (st === 'firing') this.root.classList.add('is-firing');
        if (st === 'pending') this.root.classList.add('is-pending');
        const name = r.rule.name || r.rule.alert_id;
        const what = `${r.rule.stat} ${CONDITION_SYMBOL[r.rule.condition]} ${r.sameQuery ? formatValue(r.rule.threshold, ctx.unit) : r.rule.threshold}`;
        badges.push(
          h(
            'span',
            {
              class: `badge badge-alert badge-alert-${st}`,
              title:
                st === 'unknown'
                  ? `Alert rule ${name} (${what}): its state could not be read`
                  : `Alert rule ${name} (${what}): ${st}, as the aggregators evaluate it`,
              'data-testid': 'badge-alert',
              'data-state': st,
              'data-alert': r.rule.alert_id,
            },
            st === 'firing'
              ? `FIRING ${r.rule.name || `${CONDITION_SYMBOL[r.rule.condition]} ${formatValue(r.rule.threshold, ctx.unit)}`}`
              : st === 'unknown'
                ? 'alert ?'
                : `alert ${st}`,
          ),
        );
      }
    }
    // Only touch the DOM when something changed (keeps tooltips open across the 1 s tick).
    const key = badges.map((b) => `${b.className}|${b.textContent}|${b.title}`).join('\n');
    if (key !== this.badgeKey) {
      this.badgeKey = key;
      replace(this.badges, ...badges);
    }
    const resolution = info.resolution ?? '';
    if (this.resolution.textContent !== resolution) this.resolution.textContent = resolution;
    const parts: string[] = [];
    if (info.lastDataAt !== null)
      parts.push(
        `${info.historical ? 'queried' : 'updated'} ${formatDuration(info.now - info.lastDataAt)} ago`,
      );
    else if (!info.loading && !info.error) parts.push('no data yet');
    if (info.delayMs !== null && !info.historical)
      parts.push(`delay ${formatLatency(info.delayMs)}`);
    const footer = parts.join(' · ');
    if (this.footer.textContent !== footer) this.footer.textContent = footer;
  }

  destroy(): void {
    this.observer.disconnect();
    this.viz.destroy();
    this.root.remove();
  }
}
