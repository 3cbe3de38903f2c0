/**
 * Single value with trend: the newest window's value (marked provisional while its window is
 * open), its change against a like window (`compareLatest`: the previous window at the same
 * point, or the last two closed windows, saying which), and a sparkline (uPlot).
 */

import uPlot from 'uplot';
import { CONDITION_SYMBOL } from '../alerts';
import { formatChange, formatValue, formatWindow, spansDays } from '../format';
import { isRevised, toColumns, zeroWhenEmpty } from '../series';
import { compareLatest } from '../trend';
import { h, infoTip, replace } from '../dom';
import type { Viz, VizContext } from './viz';

export class CounterViz implements Viz {
  private readonly valueEl = h('div', { class: 'counter-value', 'data-testid': 'counter-value' });
  private readonly metaEl = h('div', { class: 'counter-meta', 'data-testid': 'counter-meta' });
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
      start === null
        ? ''
        : formatWindow(start, point?.end ?? start + ctx.windowMs, spansDays(ctx.to - ctx.from));
    const latest = point;
    const firing = ctx.rules.some((r) => r.state === 'firing');
    this.valueEl.textContent = formatValue(value, ctx.unit);
    this.valueEl.dataset.value = value === null ? '' : String(value);
    this.valueEl.dataset.windowStart = start === null ? '' : String(start);
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
    if (latest && isRevised(latest))
      meta.push(
        infoTip(
          `revised r${latest.revision}`,
          `This window was corrected ${latest.revision} time(s) by late data after it was final (${latest.lateCount} late event(s)).`,
          { class: 'revised-mark' },
        ),
      );
    for (const r of ctx.rules.filter((x) => x.sameQuery))
      meta.push(
        h(
          'span',
          { class: 'counter-threshold' },
          `threshold ${CONDITION_SYMBOL[r.rule.condition]} ${formatValue(r.rule.threshold, ctx.unit)}`,
        ),
      );
    replace(this.metaEl, ...meta);

    // Trend: like with like (see compareLatest), saying which comparison it is.
    const c = compareLatest(cols, ctx.points, ctx.windowMs, ctx.progress, zeroWhenEmpty(ctx.stat));
    if (c) {
      const diff = c.current - c.previous;
      // From 0, a percentage means nothing: the difference itself.
      const change =
        formatChange(c.current, c.previous) ??
        `${diff > 0 ? '+' : ''}${formatValue(diff, ctx.unit)}`;
      const dir = diff > 0 ? 'up' : diff < 0 ? 'down' : 'flat';
      replace(
        this.trendEl,
        h(
          'span',
          { class: `trend trend-${dir}`, 'data-testid': 'counter-change' },
          `${dir === 'up' ? '▲' : dir === 'down' ? '▼' : '■'} ${change}`,
        ),
        h(
          'span',
          {
            class: 'muted',
            'data-testid': 'counter-comparison',
            'data-kind': c.kind,
            title:
              c.kind === 'same-point'
                ? 'The open window so far against the previous window as it stood at the same point'
                : 'The last closed window against the one before it',
          },
          ` ${c.label} (${formatValue(c.previous, ctx.unit)} → ${formatValue(c.current, ctx.unit)})`,
        ),
      );
    } else {
      replace(this.trendEl, h('span', { class: 'muted' }, 'trend after two closed windows'));
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
