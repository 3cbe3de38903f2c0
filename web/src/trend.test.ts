import { describe, expect, it } from 'vitest';
import { toColumns } from './series';
import { compareLatest, WindowProgress } from './trend';
import type { WindowPoint } from './types';

const W = 60_000;
const T0 = 1_765_000_000_000 - (1_765_000_000_000 % W); // a window start

function point(start: number, value: number, final: boolean, updatedAt: number): WindowPoint {
  return { start, end: start + W, value, revision: 0, final, lateCount: 0, updatedAt };
}

function columns(points: WindowPoint[], to: number) {
  return toColumns(points, { from: T0 - 10 * W, to, windowMs: W, fill: null });
}

describe('compareLatest', () => {
  it('compares an open window with the previous one at the same elapsed time', () => {
    const progress = new WindowProgress(T0 - 10 * W); // both windows came in live updates
    // The previous window filled: 2 at +10 s, 5 at +20 s, 9 at +50 s; it closed at 9.
    for (const [at, v] of [
      [10_000, 2],
      [20_000, 5],
      [50_000, 9],
    ] as const)
      progress.record(point(T0, v, false, T0 + at));
    progress.record(point(T0, 9, true, T0 + W + 2000));
    // The open window is at 7 at +25 s: against 5 (the previous at +25 s), not 9.
    const open = point(T0 + W, 7, false, T0 + W + 25_000);
    progress.record(open);
    const points = [point(T0, 9, true, T0 + W + 2000), open];
    const c = compareLatest(columns(points, T0 + 2 * W), points, W, progress, true);
    expect(c).toEqual({
      kind: 'same-point',
      current: 7,
      previous: 5,
      label: 'vs same point of previous 1m',
    });
  });

  it('takes 0 before the first value of an additive window, nothing for other stats', () => {
    const progress = new WindowProgress(T0 - 10 * W);
    progress.record(point(T0, 4, false, T0 + 40_000));
    expect(progress.valueAt(T0, T0 + 30_000, true)).toBe(0);
    expect(progress.valueAt(T0, T0 + 30_000, false)).toBeNull();
    expect(progress.valueAt(T0, T0 + 45_000, false)).toBe(4);
  });

  it('falls back to the last two closed windows when the previous one was not watched', () => {
    // The page opened during the open window: the previous window was never seen filling.
    const progress = new WindowProgress(T0 - 10 * W);
    const open = point(T0 + W, 7, false, T0 + W + 25_000);
    const points = [point(T0 - W, 4, true, T0), point(T0, 6, true, T0 + W), open];
    for (const p of points) progress.record(p, true); // all in the snapshot
    const c = compareLatest(columns(points, T0 + 2 * W), points, W, progress, true);
    expect(c).toEqual({
      kind: 'closed',
      current: 6,
      previous: 4,
      label: 'vs previous 1m, closed',
    });
  });

  it('knows a window watched from mid-way only from its snapshot on', () => {
    const progress = new WindowProgress(T0 - 10 * W);
    progress.record(point(T0, 3, false, T0 + 28_000), true); // the snapshot: 3 as of +28 s
    expect(progress.valueAt(T0, T0 + 20_000, true)).toBeNull();
    expect(progress.valueAt(T0, T0 + 29_000, true)).toBe(3);
  });

  it('knows a covered window that never came had no data: 0 for an additive stat', () => {
    // The snapshot held the window before, closed; the previous one never had an event.
    const progress = new WindowProgress(T0 - 10 * W);
    progress.record(point(T0 - W, 3, true, T0), true);
    const open = point(T0 + W, 7, false, T0 + W + 5000);
    progress.record(open);
    const points = [point(T0 - W, 3, true, T0), open];
    const c = compareLatest(columns(points, T0 + 2 * W), points, W, progress, true);
    expect(c).toMatchObject({ kind: 'same-point', current: 7, previous: 0 });
    expect(progress.valueAt(T0 - W, T0 - W + 5000, true)).toBeNull(); // closed when first seen
    expect(progress.valueAt(T0, T0 + 5000, false)).toBeNull(); // no data is no value
    expect(new WindowProgress(T0 + W).valueAt(T0, T0 + 5000, true)).toBeNull(); // not covered
  });

  it('has nothing to compare without two adjacent closed windows', () => {
    const points = [point(T0 - 2 * W, 4, true, T0), point(T0, 6, true, T0 + W)];
    expect(compareLatest(columns(points, T0 + W), points, W, undefined, false)).toBeNull();
  });
});
