import { describe, expect, it } from 'vitest';
import { WindowSeries, isRevised, supersedes, toColumns } from './series';
import type { WindowPoint } from './types';

const W = 60_000;
const pt = (i: number, value: number, extra: Partial<WindowPoint> = {}): WindowPoint => ({
  start: i * W,
  end: (i + 1) * W,
  value,
  revision: 0,
  final: true,
  lateCount: 0,
  updatedAt: i * W + 1000,
  ...extra,
});

describe('supersedes', () => {
  it('prefers higher revisions, then final, then newer', () => {
    expect(supersedes(undefined, pt(1, 1))).toBe(true);
    expect(supersedes(pt(1, 5, { revision: 1 }), pt(1, 4, { revision: 0, updatedAt: 9e9 }))).toBe(
      false,
    );
    expect(supersedes(pt(1, 5), pt(1, 6, { revision: 1 }))).toBe(true);
    expect(supersedes(pt(1, 5, { final: true }), pt(1, 6, { final: false, updatedAt: 9e9 }))).toBe(
      false,
    );
    expect(supersedes(pt(1, 5, { final: false }), pt(1, 5, { final: true }))).toBe(true);
    expect(
      supersedes(
        pt(1, 5, { final: false, updatedAt: 10 }),
        pt(1, 6, { final: false, updatedAt: 5 }),
      ),
    ).toBe(false);
    expect(
      supersedes(
        pt(1, 5, { final: false, updatedAt: 10 }),
        pt(1, 6, { final: false, updatedAt: 11 }),
      ),
    ).toBe(true);
  });
  it('ignores an exact duplicate (a resent update)', () => {
    expect(supersedes(pt(1, 5), pt(1, 5))).toBe(false);
  });
});

describe('WindowSeries', () => {
  it('coalesces updates per window and keeps order', () => {
    const s = new WindowSeries();
    s.merge([pt(3, 3), pt(1, 1), pt(2, 2)]);
    expect(s.upsert(pt(2, 20, { revision: 1, lateCount: 4 }))).toBe(true);
    expect(s.upsert(pt(2, 2))).toBe(false); // older revision arriving late
    expect(s.all().map((p) => p.value)).toEqual([1, 20, 3]);
    expect(s.latest()?.start).toBe(3 * W);
    const v = s.version;
    s.upsert(pt(3, 3));
    expect(s.version).toBe(v);
  });
  it('prunes old windows', () => {
    const s = new WindowSeries();
    s.merge([pt(1, 1), pt(2, 2), pt(3, 3)]);
    s.prune(2.5 * W);
    expect(s.all().map((p) => p.start)).toEqual([2 * W, 3 * W]);
  });
  it('finds the newest final window', () => {
    const s = new WindowSeries();
    s.merge([pt(1, 1), pt(2, 2), pt(3, 3, { final: false })]);
    expect(s.latestFinal()?.start).toBe(2 * W);
  });
});

describe('toColumns', () => {
  it('splits closed, open and revised windows and joins the dashed segment', () => {
    const c = toColumns([pt(0, 1), pt(1, 2, { revision: 1 }), pt(2, 3, { final: false })], {
      from: 0,
      to: 3 * W,
      windowMs: W,
      fill: null,
    });
    expect(c.xs).toEqual([0, 60, 120]);
    expect(c.final).toEqual([1, 2, null]);
    expect(c.provisional).toEqual([null, 2, 3]);
    expect(c.revised).toEqual([null, 2, null]);
  });
  it('marks as revised only windows corrected after they were final', () => {
    // A window still open is not marked, whatever its revision: it was never final.
    const c = toColumns([pt(0, 1, { revision: 2 }), pt(1, 2, { revision: 1, final: false })], {
      from: 0,
      to: 2 * W,
      windowMs: W,
      fill: null,
    });
    expect(c.revised).toEqual([1, null]);
    expect(isRevised(pt(0, 1, { revision: 1 }))).toBe(true);
    expect(isRevised(pt(0, 1, { revision: 1, final: false }))).toBe(false);
    expect(isRevised(pt(0, 1))).toBe(false);
  });
  it('fills missing windows with zero only where data is known', () => {
    const c = toColumns([pt(2, 5)], {
      from: 0,
      to: 5 * W,
      windowMs: W,
      fill: { from: 1 * W, to: 4 * W + 10 },
    });
    expect(c.xs).toEqual([60, 120, 180, 240]);
    expect(c.final).toEqual([0, 5, 0, null]);
    // The window containing fill.to is still open: provisional zero.
    expect(c.provisional).toEqual([null, null, 0, 0]);
  });
  it('leaves gaps without fill', () => {
    const c = toColumns([pt(0, 1), pt(3, 2)], { from: 0, to: 5 * W, windowMs: W, fill: null });
    expect(c.xs).toEqual([0, 180]);
  });
});
