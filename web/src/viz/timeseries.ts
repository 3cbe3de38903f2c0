/**
 * Line, area and bar charts with uPlot. Series, in order: closed windows (solid), still-open
 * windows (dashed line and hollow points, or faint dashed bars), windows revised by late data
 * (markers), then one dashed threshold line per matching alert rule.
 */

import uPlot from 'uplot';
import { CONDITION_SYMBOL } from '../alerts';
import { displayZone, formatInstant, formatTick, formatValue } from '../format';
import type { Unit } from '../format';
import { toColumns } from '../series';
import type { Palette } from '../theme';
import { chartDate } from '../timezone';
import type { RuleView, Viz, VizContext } from './viz';

export type ChartKind = 'line' | 'area' | 'bar';

function alpha(color: string, a: number): string {
  // Accepts #rgb / #rrggbb; anything else is returned unchanged.
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color.trim());
  if (!m) return color;
  let hex = m[1]!;
  if (hex.length === 3) hex = hex.replace(/./g, (c) => c + c);
  const n = parseInt(hex, 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

export class TimeSeriesChart implements Viz {
  private plot: uPlot | null = null;
  private shape = '';
  private width = 300;
  private height = 150;
  private last: VizContext | null = null;
  private provisionalIdx: number[] = [];
  private unit: Unit = '';

  constructor(
    private readonly host: HTMLElement,
    private readonly kind: ChartKind,
    private readonly onHover: (text: string | null) => void,
  ) {}

  render(ctx: VizContext): void {
    this.last = ctx;
    this.unit = ctx.unit;
    const cols = toColumns(ctx.points, {
      from: ctx.from,
      to: ctx.to,
      windowMs: ctx.windowMs,
      fill: ctx.fill,
    });
    const xs = cols.xs;
    this.provisionalIdx = [];
    cols.final.forEach((v, i) => {
      if (v === null && cols.provisional[i] !== null) this.provisionalIdx.push(i);
    });
    const drawn = ctx.rules.filter((r) => r.sameQuery);
    const thresholds = drawn.map((r) => xs.map(() => r.rule.threshold));
    const data: uPlot.AlignedData = [xs, cols.final, cols.provisional, cols.revised, ...thresholds];
    // Rebuild when the set of series or the theme changes; otherwise just swap data.
    const shape = `${drawn.map((r) => `${r.rule.alert_id}:${r.state}:${r.rule.threshold}`).join(',')}|${ctx.palette.series}|${ctx.palette.text}|${displayZone()}`;
    if (!this.plot || shape !== this.shape) {
      this.plot?.destroy();
      this.shape = shape;
      this.plot = new uPlot(this.options(ctx), data, this.host);
    } else {
      // Rescales both axes: x through the range function (the sliding live range), y to the data.
      this.plot.setData(data);
    }
  }

  resize(width: number, height: number): void {
    this.width = Math.max(100, Math.floor(width));
    this.height = Math.max(60, Math.floor(height));
    this.plot?.setSize({ width: this.width, height: this.height });
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }

  private options(ctx: VizContext): uPlot.Options {
    const p: Palette = ctx.palette;
    const bars =
      this.kind === 'bar' ? uPlot.paths.bars!({ align: 1, size: [0.8, 64, 1], gap: 1 }) : undefined;
    const fmt = (v: number | null) => formatValue(v, this.unit);
    const axis = (extra: Partial<uPlot.Axis>): uPlot.Axis => ({
      stroke: p.muted,
      font: p.font,
      grid: { stroke: p.grid, width: 1 },
      ticks: { stroke: p.grid, width: 1, size: 4 },
      ...extra,
    });
    const series: uPlot.Series[] = [
      {},
      {
        label: 'value',
        stroke: p.series,
        width: 2,
        fill:
          this.kind === 'area'
            ? p.seriesFill
            : this.kind === 'bar'
              ? alpha(p.series, 0.85)
              : undefined,
        paths: bars,
        points: { show: false },
        spanGaps: false,
      },
      {
        label: 'provisional',
        stroke: p.provisional,
        width: this.kind === 'bar' ? 1.5 : 2,
        dash: [5, 4],
        fill:
          this.kind === 'bar'
            ? alpha(p.series, 0.25)
            : this.kind === 'area'
              ? alpha(p.series, 0.08)
              : undefined,
        paths: bars,
        points:
          this.kind === 'bar'
            ? { show: false }
            : {
                show: true,
                size: 9,
                width: 2,
                stroke: p.provisional,
                fill: p.panel,
                filter: () => this.provisionalIdx,
              },
        spanGaps: false,
      },
      {
        label: 'revised',
        stroke: p.revised,
        width: 0,
        paths: () => null,
        points: { show: true, size: 8, width: 2, stroke: p.revised, fill: p.revised },
      },
      ...ctx.rules
        .filter((r) => r.sameQuery)
        .map((r: RuleView): uPlot.Series => ({
          label: `threshold ${CONDITION_SYMBOL[r.rule.condition]} ${fmt(r.rule.threshold)}`,
          stroke: r.state === 'firing' ? p.danger : p.warn,
          width: 1.5,
          dash: [8, 5],
          points: { show: false },
        })),
    ];
    return {
      width: this.width,
      height: this.height,
      legend: { show: false },
      tzDate: chartDate,
      padding: [8, 16, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: {
        x: { time: true, range: () => [this.last!.from / 1000, this.last!.to / 1000] },
        y: {
          range: (_u, min, max) => {
            const lo = Math.min(0, min ?? 0);
            const hi = max === null || max === undefined || max <= lo ? lo + 1 : max;
            return [lo, hi + (hi - lo) * 0.08];
          },
        },
      },
      axes: [
        axis({
          space: 60,
          size: 26,
          values: (u, splits) => {
            const span = ((u.scales.x?.max ?? 0) - (u.scales.x?.min ?? 0)) * 1000;
            const labels = splits.map((s) => formatTick(s * 1000, span));
            // The labels drawn on the canvas, readable from the page (assistive tech, tests).
            this.host.dataset.xTicks = labels.join('|');
            return labels;
          },
        }),
        axis({
          space: 28,
          values: (_u, splits) => splits.map((s) => fmt(s)),
          // Wide enough for the longest label (uPlot passes the rendered values).
          size: (_u, values) =>
            14 + 6.5 * Math.max(2, ...(values ?? []).map((v) => String(v).length)),
        }),
      ],
      series,
      hooks: {
        setCursor: [
          (u) => {
            const i = u.cursor.idx;
            if (i === null || i === undefined) return this.onHover(null);
            const x = u.data[0][i];
            const fin = u.data[1]?.[i];
            const prov = u.data[2]?.[i];
            const rev = u.data[3]?.[i];
            const v = fin ?? prov;
            if (x === undefined || v === null || v === undefined) return this.onHover(null);
            const state =
              fin !== null && fin !== undefined
                ? rev !== null && rev !== undefined
                  ? 'revised'
                  : 'final'
                : 'provisional';
            // The clock within a day; on multi-day ranges, the date and the clock.
            const span = ((u.scales.x?.max ?? 0) - (u.scales.x?.min ?? 0)) * 1000;
            const at = formatInstant(x * 1000, span);
            this.onHover(`${at} · ${fmt(v)} · ${state}`);
          },
        ],
      },
    };
  }
}
