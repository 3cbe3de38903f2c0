/**
 * What the single-value widget compares its value with. Like with like: an open window against
 * the previous window as it stood at the same point of its span (known when this page watched
 * that window fill, see `WindowProgress`), else the last closed window against the one before.
 */

import { formatWindowLength } from './format';
import type { ChartColumns } from './series';
import type { WindowPoint } from './types';

/** Windows traced at most (the open one and the few before it). */
const MAX_WINDOWS = 4;
/** Values kept per window; beyond, the oldest go and the trace starts later. */
const MAX_SAMPLES = 2000;

interface Trace {
  /** From this time (the aggregator's clock) on, every value of the window is known. */
  knownFrom: number;
  /** (updatedAt, value), oldest first. */
  samples: { at: number; value: number | null }[];
}

/**
 * The values windows had while they were open, as this page received them since a snapshot
 * covering the windows from `coveredFrom` on: for the windows the snapshot held open, from the
 * snapshot on (their earlier values were not seen); for the windows that first came in a live
 * update, from their start (a snapshot holds every window that had data, so nothing of those
 * was missed); a window of the coverage that never came had no data while it was open.
 */
export class WindowProgress {
  private readonly traces = new Map<number, Trace>();
  /** Windows the snapshot held already closed: how they filled is unknown. */
  private readonly closedUnseen = new Set<number>();
  /** Traces of windows before this were dropped (bounded memory). */
  private droppedBefore = -Infinity;

  constructor(private readonly coveredFrom: number) {}

  /** Notes a window as received: in a snapshot (`fromSnapshot`) or a live update. */
  record(p: WindowPoint, fromSnapshot = false): void {
    if (!Number.isFinite(p.updatedAt)) return;
    let trace = this.traces.get(p.start);
    if (!trace) {
      if (p.final) {
        // Closed before it was watched: nothing to trace.
        if (fromSnapshot && this.closedUnseen.size < MAX_SAMPLES) this.closedUnseen.add(p.start);
        return;
      }
      trace = { knownFrom: fromSnapshot ? p.updatedAt : p.start, samples: [] };
      this.traces.set(p.start, trace);
      for (const start of [...this.traces.keys()].sort((a, b) => a - b)) {
        if (this.traces.size <= MAX_WINDOWS) break;
        this.traces.delete(start);
        this.droppedBefore = Math.max(this.droppedBefore, start + 1);
      }
    }
    if (p.final) return; // a closed window's later values are not progress
    const last = trace.samples[trace.samples.length - 1];
    if (last && p.updatedAt < last.at) return; // out of order: the trace keeps the newer
    trace.samples.push({ at: p.updatedAt, value: p.value });
    if (trace.samples.length > MAX_SAMPLES) {
      trace.samples.shift();
      trace.knownFrom = trace.samples[0]!.at;
    }
  }

  /**
   * The value the window starting at `start` had at `at` (the aggregator's clock), or null
   * when this page did not see it then. Before its first value (or without any) a window of an
   * additive stat was 0 (`emptyIsZero`); of another stat it had none (null).
   */
  valueAt(start: number, at: number, emptyIsZero: boolean): number | null {
    const trace = this.traces.get(start);
    if (!trace) {
      const neverHadData =
        start >= this.coveredFrom && start >= this.droppedBefore && !this.closedUnseen.has(start);
      return neverHadData && emptyIsZero ? 0 : null;
    }
    if (at < trace.knownFrom) return null;
    let value: number | null = emptyIsZero ? 0 : null;
    for (const s of trace.samples) {
      if (s.at > at) break;
      value = s.value;
    }
    return value;
  }
}

export interface Comparison {
  kind: 'same-point' | 'closed';
  current: number;
  previous: number;
  /** What is compared: `vs same point of previous 1m` or `vs previous 1m, closed`. */
  label: string;
}

/**
 * The comparison for the newest column of `cols`: when it is an open window whose current value
 * was last updated `elapsed` ms after its start, against the previous window's value at the same
 * elapsed time; else (or when that is not known) the last closed window against the one before.
 * Null when neither pair has values.
 */
export function compareLatest(
  cols: ChartColumns,
  points: readonly WindowPoint[],
  windowMs: number,
  progress: WindowProgress | undefined,
  emptyIsZero: boolean,
): Comparison | null {
  const length = formatWindowLength(windowMs);
  const i = cols.xs.length - 1;
  if (i >= 0 && cols.final[i] === null && cols.provisional[i] !== null && progress) {
    const start = cols.xs[i]! * 1000;
    const current = cols.provisional[i]!;
    const open = points.find((p) => p.start === start);
    // Elapsed on the aggregator's clock (the window's last update), as the trace is.
    const elapsed = open ? open.updatedAt - start : NaN;
    if (Number.isFinite(elapsed) && elapsed >= 0 && elapsed < windowMs) {
      const previous = progress.valueAt(start - windowMs, start - windowMs + elapsed, emptyIsZero);
      if (previous !== null)
        return {
          kind: 'same-point',
          current,
          previous,
          label: `vs same point of previous ${length}`,
        };
    }
  }
  // The last closed window and the one right before it (a gap is no comparison).
  let j = i;
  while (j >= 0 && cols.final[j] === null) j--;
  const current = cols.final[j];
  const previous = cols.final[j - 1];
  if (
    current === null ||
    current === undefined ||
    previous === null ||
    previous === undefined ||
    Math.round((cols.xs[j]! - cols.xs[j - 1]!) * 1000) !== windowMs
  )
    return null;
  return { kind: 'closed', current, previous, label: `vs previous ${length}, closed` };
}
