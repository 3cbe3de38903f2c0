/**
 * Split widgets (`group_by`): a multi-series line or area chart with a legend and hover values
 * (uPlot), or the top groups as bars or as a table with a row per group (the stat over the
 * range, as the gateway ranked them, and the newest window's value).
 */

import uPlot from 'uplot';
import { h, replace } from '../dom';
import { displayZone, formatInstant, formatTick, formatValue } from '../format';
import { chartDate } from '../timezone';
import type { GroupView, Viz, VizContext } from './viz';

/** Series colours, cycled; `other` is grey. */
const COLOURS = [
  '#5aa9ff',
  '#f5a524',
  '#17c964',
  '#f31260',
  '#9353d3',
  '#06b7db',
  '#ff4ecd',
  '#a3a300',
  '#7e868c',
  '#c20e4d',
];
const OTHER = '#8a8f98';

export function groupColour(g: GroupView, index: number): string {
  return g.other ? OTHER : COLOURS[index % COLOURS.length]!;
}

/** Window starts of every group, and each group's values at them (null where it has none). */
export function groupColumns(
  groups: readonly GroupView[],
  from: number,
  to: number,
): { xs: number[]; ys: (number | null)[][] } {
  const starts = new Set<number>();
  for (const g of groups)
    for (const p of g.points) if (p.end > from && p.start < to) starts.add(p.start);
  const xs = [...starts].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = groups.map((g) => {
    const col: (number | null)[] = xs.map(() => null);
    for (const p of g.points) {
      const i = index.get(p.start);
      if (i !== undefined) col[i] = p.value;
    }
    return col;
  });
  return { xs: xs.map((x) => x / 1000), ys };
}

export class GroupChart implements Viz {
  private plot: uPlot | null = null;
  private shape = '';
  private width = 300;
  private height = 150;
  private last: VizContext | null = null;

  constructor(
    private readonly host: HTMLElement,
    private readonly area: boolean,
  ) {}

  render(ctx: VizContext): void {
    this.last = ctx;
    const groups = ctx.groups ?? [];
    const { xs, ys } = groupColumns(groups, ctx.from, ctx.to);
    const data: uPlot.AlignedData = [xs, ...ys];
    const shape = `${groups.map((g) => g.key).join('|')}|${ctx.palette.text}|${displayZone()}`;
    if (!this.plot || shape !== this.shape) {
      this.shape = shape;
      this.plot?.destroy();
      this.plot = new uPlot(this.options(ctx, groups), data, this.host);
    } else {
      this.plot.setData(data);
    }
  }

  private options(ctx: VizContext, groups: readonly GroupView[]): uPlot.Options {
    const p = ctx.palette;
    const fmt = (v: number | null | undefined) => formatValue(v, ctx.unit);
    const axis = (a: uPlot.Axis): uPlot.Axis => ({
      stroke: p.muted,
      grid: { stroke: p.grid, width: 1 },
      ticks: { stroke: p.grid, width: 1 },
      font: '11px system-ui, sans-serif',
      ...a,
    });
    return {
      width: this.width,
      height: this.height,
      legend: { show: true, live: true },
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
            return splits.map((s) => formatTick(s * 1000, span));
          },
        }),
        axis({
          space: 28,
          values: (_u, splits) => splits.map((s) => fmt(s)),
          size: (_u, values) =>
            14 + 6.5 * Math.max(2, ...(values ?? []).map((v) => String(v).length)),
        }),
      ],
      series: [
        {
          value: (u, v) =>
            v === null || v === undefined
              ? ''
              : formatInstant(v * 1000, ((u.scales.x?.max ?? 0) - (u.scales.x?.min ?? 0)) * 1000),
        },
        ...groups.map((g, i): uPlot.Series => {
          const colour = groupColour(g, i);
          return {
            label: g.label,
            stroke: colour,
            width: 2,
            fill: this.area ? `${colour}22` : undefined,
            dash: g.other ? [5, 4] : undefined,
            points: { show: false },
            spanGaps: false,
            value: (_u, v) => fmt(v),
          };
        }),
      ],
    };
  }

  resize(width: number, height: number): void {
    this.width = Math.max(50, Math.floor(width));
    // Room for the legend below the plot.
    this.height = Math.max(40, Math.floor(height) - 28);
    this.plot?.setSize({ width: this.width, height: this.height });
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}

/** The top groups: bars (`bars`) or a table, a row per group, ranked as the gateway did. */
export class GroupList implements Viz {
  private readonly body = h('tbody');

  constructor(
    host: HTMLElement,
    private readonly bars: boolean,
  ) {
    host.append(
      h(
        'div',
        { class: 'table-wrap', tabindex: '0', 'aria-label': 'Groups' },
        h(
          'table',
          { class: 'data-table group-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Group'),
              h('th', { scope: 'col', class: 'num' }, 'Over the range'),
              h('th', { scope: 'col', class: 'num' }, 'Latest window'),
            ),
          ),
          this.body,
        ),
      ),
    );
  }

  render(ctx: VizContext): void {
    const groups = ctx.groups ?? [];
    if (groups.length === 0) {
      replace(
        this.body,
        h('tr', {}, h('td', { colspan: '3', class: 'muted' }, 'No data in this range')),
      );
      return;
    }
    const top = Math.max(0, ...groups.map((g) => g.total ?? 0));
    replace(
      this.body,
      groups.map((g, i) => {
        const inRange = g.points.filter((p) => p.end > ctx.from && p.start < ctx.to);
        const latest = inRange[inRange.length - 1];
        const colour = groupColour(g, i);
        const share = top > 0 && g.total !== null ? Math.max(0, g.total / top) : 0;
        return h(
          'tr',
          { 'data-testid': 'group-row', 'data-group': g.label, class: g.other ? 'muted' : '' },
          h(
            'td',
            {},
            h('span', { class: 'group-swatch', style: `background:${colour}` }),
            g.label,
            this.bars
              ? h(
                  'div',
                  { class: 'group-bar' },
                  h('span', {
                    style: `width:${(share * 100).toFixed(1)}%;background:${colour}`,
                  }),
                )
              : null,
          ),
          h('td', { class: 'num' }, formatValue(g.total, ctx.unit)),
          h(
            'td',
            {
              class: 'num',
              title: latest ? formatInstant(latest.start, ctx.to - ctx.from) : '',
            },
            latest ? formatValue(latest.value, ctx.unit) : '–',
          ),
        );
      }),
    );
  }

  resize(): void {
    // The table flows with its panel.
  }

  destroy(): void {
    // Nothing beyond the DOM, which the panel removes.
  }
}
