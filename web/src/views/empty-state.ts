/**
 * A widget with nothing to draw says so: `No data` when its range has no rows, `No data for
 * region=US-East` when its dimension filter matches no series, with the closest values of that
 * dimension that do exist (from `GET /v1/metrics/{name}/series`).
 */

import { h, replace } from '../dom';
import { describeFilter, filterSuggestions } from '../nodata';
import type { Widget } from '../types';

/** Known values per dimension of a metric over [from, to) (`listDimensionValues`). */
export type DimensionValues = (
  widget: Widget,
  from: number,
  to: number,
) => Promise<Record<string, string[]>>;

/** How long the known values are reused before they are read again. */
const VALUES_TTL_MS = 60_000;
/** The values are read over at least this much history (a quiet range still has them). */
const VALUES_LOOKBACK_MS = 86_400_000;

export class EmptyState {
  readonly root = h('div', { class: 'panel-empty', 'data-testid': 'no-data', hidden: true });
  private known: Record<string, string[]> | null = null;
  private readAt = 0;
  private reading = false;
  private shown = false;

  constructor(
    private readonly widget: Widget,
    private readonly dimensionValues: DimensionValues | null,
  ) {}

  /** Shows the empty state for the range [from, to), or hides it. */
  show(empty: boolean, from: number, to: number): void {
    this.root.hidden = !empty;
    if (!empty) {
      this.shown = false;
      return;
    }
    const filtered = Object.keys(this.widget.dimensions).length > 0;
    if (!this.shown) {
      this.shown = true;
      this.paint();
    }
    if (
      filtered &&
      this.dimensionValues &&
      !this.reading &&
      Date.now() - this.readAt > VALUES_TTL_MS
    )
      void this.readValues(Math.min(from, to - VALUES_LOOKBACK_MS), to);
  }

  private async readValues(from: number, to: number): Promise<void> {
    this.reading = true;
    this.readAt = Date.now();
    try {
      this.known = await this.dimensionValues!(this.widget, from, to);
    } catch {
      this.known = null; // the suggestions are a help: without them the message still stands
    } finally {
      this.reading = false;
    }
    if (this.shown) this.paint();
  }

  private paint(): void {
    const dims = this.widget.dimensions;
    const filtered = Object.keys(dims).length > 0;
    const lines: HTMLElement[] = [
      h(
        'div',
        { class: 'panel-empty-title', 'data-testid': 'no-data-title' },
        filtered ? `No data for ${describeFilter(dims)}` : 'No data',
      ),
    ];
    if (!filtered) {
      lines.push(h('div', {}, 'No windows with data in this range.'));
    } else if (this.known) {
      const missing = filterSuggestions(dims, this.known);
      if (missing.length === 0)
        lines.push(h('div', {}, 'These values exist, but not in this range.'));
      for (const m of missing)
        lines.push(
          m.closest.length > 0
            ? h(
                'div',
                { class: 'panel-empty-suggest', 'data-testid': 'no-data-suggestions' },
                `No ${m.dimension} is “${m.wanted}”. Closest:`,
                ...m.closest.map((v) =>
                  h(
                    'code',
                    { 'data-testid': 'no-data-suggestion', 'data-dimension': m.dimension },
                    v,
                  ),
                ),
              )
            : h('div', {}, `No ${m.dimension} is “${m.wanted}”, nor anything close.`),
        );
    }
    replace(this.root, lines);
  }
}
