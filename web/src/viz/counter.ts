/**
 * Single value with trend: the newest window's value (marked provisional while its window is
 * open), the change between the last two closed windows, and a sparkline (uPlot).
 */

import uPlot from 'uplot';
import { CONDITION_SYMBOL } from '../alerts';
import { formatChange, formatValue, formatWindow } from '../format';
import { toColumns } from '../series';
import { h, replace } from '../dom';
import type { Viz, VizContext } from './viz';

export class CounterViz implements Viz {
  private readonly valueEl = h('div', { class: 'counter-value', 'data-testid': 'counter-value' });
  private readonly metaEl = h('div', { class: 'counter-meta' });
  private readonly trendEl = h('div', { class: 'counter-trend' });
  private readonly sparkHost = h('div', { class: 'counter-spark', 'aria-hidden': 'true' });
  private spark: uPlot | null = null;
  private sparkKey = '';
  private width = 200;
  private height = 120;

  constructor(host: HTMLElement) {
    host.append(
      h('div', { class: 'counter' }, this.valueEl, this.trendEl, this.metaEl),
      this.sparkHost,
    );
  }

  render(ctx: VizContext): void {
    // The newest column: with zero-filling (additive stats) the current window exists, as 0,
    // even before its first event; otherwise it is the newest window with data.
    const cols = toColumns(ctx.points, {
      from: ctx.from,
      to: ctx.to,
      windowMs: ctx.windowMs,
      fill: ctx.fill,
    });
    const i = cols.xs.length - 1;
    const start = i >= 0 ? cols.xs[i]! * 1000 : null;
    const value = i >= 0 ? (cols.final[i] ?? cols.provisional[i] ?? null) : null;
    const provisional = i >= 0 && cols.final[i] === null && cols.provisional[i] !== null;
    const point = start === null ? undefined : ctx.points.find((p) => p.start === start);
    const windowText =
      start === null ? '' : formatWindow(start, point?.end ?? start + ctx.windowMs);
    const latest = point;
    const firing = ctx.rules.some((r) => r.state === 'firing');
    this.valueEl.textContent = formatValue(value, ctx.unit);
    this.valueEl.dataset.value = value === null ? '' : String(value);
    this.valueEl.classList.toggle('is-provisional', provisional);
    this.valueEl.classList.toggle('is-firing', firing);
    const meta: (string | HTMLElement)[] = [];
    if (windowText) meta.push(`${ctx.stat} · window ${windowText}`);
    if (provisional)
      meta.push(
        h(
          'span',
          {
            class: 'badge badge-provisional',
            title: 'This window is still open: its value will change',
          },
          'provisional',
        ),
      );
    if (latest && latest.revision > 0 && !provisional)
      meta.push(h('span', { class: 'badge badge-revised' }, `revised r${latest.revision}`));
    for (const r of ctx.rules.filter((x) => x.sameQuery))
      meta.push(
        h(
          'span',
          { class: 'counter-threshold' },
          `threshold ${CONDITION_SYMBOL[r.rule.condition]} ${formatValue(r.rule.threshold, ctx.unit)}`,
        ),
      );
    replace(this.metaEl, ...meta);

    // Trend: the last two closed windows (comparing a partial window would mislead).
    const closed = cols.xs
      .map((x, i) => ({ x, v: cols.final[i] ?? null }))
      .filter((p) => p.v !== null);
    const cur = closed[closed.length - 1]?.v ?? null;
    const prev = closed[closed.length - 2]?.v ?? null;
    const change = formatChange(cur, prev);
    if (change) {
      const up = change.startsWith('+');
      const down = change.startsWith('-');
      replace(
        this.trendEl,
        h(
          'span',
          { class: `trend ${up ? 'trend-up' : down ? 'trend-down' : 'trend-flat'}` },
          `${up ? '▲' : down ? '▼' : '■'} ${change}`,
        ),
        h(
          'span',
          { class: 'muted', title: 'The last closed window against the one before it' },
          ` vs previous window (${formatValue(prev, ctx.unit)} → ${formatValue(cur, ctx.unit)})`,
        ),
      );
    } else {
      replace(
        this.trendEl,
        h('span', { class: 'muted' }, closed.length < 2 ? 'trend after two closed windows' : ''),
      );
    }
    this.renderSpark(ctx, cols.xs, cols.final, cols.provisional);
  }

  private renderSpark(
    ctx: VizContext,
    xs: number[],
    final: (number | null)[],
    provisional: (number | null)[],
  ): void {
    const data: uPlot.AlignedData = [xs, final, provisional];
    const key = `${ctx.palette.series}|${ctx.palette.panel}`;
    if (!this.spark || key !== this.sparkKey) {
      this.spark?.destroy();
      this.sparkKey = key;
      const p = ctx.palette;
      this.spark = new uPlot(
        {
          width: this.width,
          height: this.sparkHeight(),
          legend: { show: false },
          cursor: { show: false },
          padding: [4, 0, 3, 0],
          axes: [{ show: false }, { show: false }],
          scales: {
            x: { time: true, range: () => [ctx.from / 1000, ctx.to / 1000] },
            y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, max ?? 1) * 1.1] },
          },
          series: [
            {},
            { stroke: p.series, width: 1.5, fill: p.seriesFill, points: { show: false } },
            { stroke: p.series, width: 1.5, dash: [4, 3], points: { show: false } },
          ],
        },
        data,
        this.sparkHost,
      );
    } else {
      this.spark.setData(data);
    }
  }

  private sparkHeight(): number {
    return Math.max(24, Math.min(80, Math.floor(this.height * 0.3)));
  }

  resize(width: number, height: number): void {
    this.width = Math.max(80, Math.floor(width));
    this.height = Math.max(60, Math.floor(height));
    this.spark?.setSize({ width: this.width, height: this.sparkHeight() });
  }

  destroy(): void {
    this.spark?.destroy();
    this.spark = null;
  }
}
