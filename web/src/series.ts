/**
 * One widget's windows, merged from the snapshot, live updates and historical queries.
 *
 * Updates may arrive out of order, twice (a reconnect resends), or as corrections of closed
 * windows. The rule: a higher revision wins; at equal revision a final value beats a
 * provisional one and a newer `updatedAt` beats an older one; anything else is ignored.
 */

import type { Stat, WindowPoint } from './types';

/** Whether `incoming` should replace `current`. */
export function supersedes(current: WindowPoint | undefined, incoming: WindowPoint): boolean {
  if (!current) return true;
  if (incoming.revision !== current.revision) return incoming.revision > current.revision;
  if (current.final !== incoming.final) return incoming.final;
  if (incoming.updatedAt !== current.updatedAt) return incoming.updatedAt > current.updatedAt;
  // Same version: only a different value (a source without updatedAt) counts as a change.
  return (
    incoming.value !== current.value ||
    incoming.end !== current.end ||
    incoming.lateCount !== current.lateCount
  );
}

export class WindowSeries {
  private readonly byStart = new Map<number, WindowPoint>();
  private sorted: WindowPoint[] | null = [];
  /** Incremented on every accepted change, so renderers can skip unchanged series. */
  version = 0;

  /** Merges one window; returns whether it changed the series. */
  upsert(point: WindowPoint): boolean {
    if (!Number.isFinite(point.start)) return false;
    const current = this.byStart.get(point.start);
    if (!supersedes(current, point)) return false;
    this.byStart.set(point.start, point);
    this.sorted = null;
    this.version++;
    return true;
  }

  /** Merges many windows; returns how many changed the series. */
  merge(points: Iterable<WindowPoint>): number {
    let changed = 0;
    for (const p of points) if (this.upsert(p)) changed++;
    return changed;
  }

  /** Drops windows that ended before `cutoff` (bounded memory on long-open pages). */
  prune(cutoff: number): void {
    let dropped = false;
    for (const [start, p] of this.byStart) {
      if (p.end < cutoff) {
        this.byStart.delete(start);
        dropped = true;
      }
    }
    if (dropped) {
      this.sorted = null;
      this.version++;
    }
  }

  clear(): void {
    if (this.byStart.size === 0) return;
    this.byStart.clear();
    this.sorted = [];
    this.version++;
  }

  get size(): number {
    return this.byStart.size;
  }

  /** All windows, oldest first. */
  all(): readonly WindowPoint[] {
    this.sorted ??= [...this.byStart.values()].sort((a, b) => a.start - b.start);
    return this.sorted;
  }

  /** Windows overlapping [from, to), oldest first. */
  range(from: number, to: number): WindowPoint[] {
    return this.all().filter((p) => p.end > from && p.start < to);
  }

  latest(): WindowPoint | undefined {
    const all = this.all();
    return all[all.length - 1];
  }

  /** The newest final window before `before` (a start time), if any. */
  latestFinal(before = Infinity): WindowPoint | undefined {
    const all = this.all();
    for (let i = all.length - 1; i >= 0; i--) {
      const p = all[i]!;
      if (p.final && p.start < before) return p;
    }
    return undefined;
  }
}

/** A window corrected after it was final (late data): `revision` counts those corrections, so
 * a window still open is never revised. */
export function isRevised(p: WindowPoint): boolean {
  return p.final && p.revision > 0;
}

/** Whether a window has a value to show (a row of the range). */
export function hasValue(p: WindowPoint): boolean {
  return p.value !== null && Number.isFinite(p.value);
}

/** Stats whose missing windows mean zero (no events), not "no data". */
export function zeroWhenEmpty(stat: Stat): boolean {
  return stat === 'count' || stat === 'sum' || stat === 'unique';
}

/** Columns for a uPlot chart: x in seconds, then one array per series. */
export interface ChartColumns {
  xs: number[];
  /** Values of closed windows (null elsewhere). */
  final: (number | null)[];
  /** Values of still-open windows, plus the final point just before them so the dashed
   * provisional segment joins the solid line. */
  provisional: (number | null)[];
  /** Values of windows revised by late data (markers only). */
  revised: (number | null)[];
}

/**
 * Turns windows into chart columns over [from, to). With `fill`, windows missing inside
 * [fill.from, fill.to] are 0: the query API leaves windows without events out, and for an
 * additive stat (see `zeroWhenEmpty`) that means zero. Outside it (data not loaded, not yet
 * known) a missing window stays a gap.
 */
export function toColumns(
  points: readonly WindowPoint[],
  opts: { from: number; to: number; windowMs: number; fill: { from: number; to: number } | null },
): ChartColumns {
  interface Row {
    start: number;
    value: number | null;
    final: boolean;
    revised: boolean;
  }
  const rows = new Map<number, Row>();
  for (const p of points) {
    if (p.end > opts.from && p.start < opts.to)
      rows.set(p.start, {
        start: p.start,
        value: p.value,
        final: p.final,
        revised: isRevised(p),
      });
  }
  const step = opts.windowMs > 0 ? opts.windowMs : 60_000;
  if (opts.fill) {
    const first = Math.ceil(Math.max(opts.fill.from, opts.from - step + 1) / step) * step;
    for (let t = first, n = 0; t <= opts.fill.to && t < opts.to && n < 20_000; t += step, n++) {
      if (!rows.has(t))
        rows.set(t, { start: t, value: 0, final: t + step <= opts.fill.to, revised: false });
    }
  }
  const sorted = [...rows.values()].sort((a, b) => a.start - b.start);
  const xs: number[] = [];
  const final: (number | null)[] = [];
  const provisional: (number | null)[] = [];
  const revised: (number | null)[] = [];
  sorted.forEach((r, i) => {
    xs.push(r.start / 1000);
    final.push(r.final ? r.value : null);
    const next = sorted[i + 1];
    const joinsProvisional = r.final && next !== undefined && !next.final;
    provisional.push(!r.final || joinsProvisional ? r.value : null);
    revised.push(r.revised ? r.value : null);
  });
  return { xs, final, provisional, revised };
}
