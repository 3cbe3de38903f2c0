import { describe, expect, it } from 'vitest';
import { groupKey, toGroups } from '../stream';
import { groupColumns } from './groups';

const w = (start: number, value: number) => ({
  window_start: new Date(start).toISOString(),
  window_end: new Date(start + 60_000).toISOString(),
  value,
  revision: 0,
  final: true,
  late_count: 0,
  updated_at: new Date(start + 61_000).toISOString(),
});

describe('split widgets', () => {
  it('keys groups by their dimensions and names other', () => {
    expect(groupKey({ region: 'eu', plan: null }, false).label).toBe('(none) · eu');
    expect(groupKey({ region: 'eu' }, false).key).toBe(groupKey({ region: 'eu' }, false).key);
    expect(groupKey({}, true)).toEqual({ key: '__other__', label: 'other' });
  });

  it('aligns every group on the union of window starts', () => {
    const groups = toGroups([
      { dimensions: { region: 'eu' }, other: false, value: 9, windows: [w(0, 4), w(60_000, 5)] },
      { dimensions: {}, other: true, value: 2, windows: [w(120_000, 2)] },
    ]);
    expect(groups.map((g) => [g.label, g.total])).toEqual([
      ['eu', 9],
      ['other', 2],
    ]);
    const { xs, ys } = groupColumns(groups, 0, 180_000);
    expect(xs).toEqual([0, 60, 120]);
    expect(ys).toEqual([
      [4, 5, null],
      [null, null, 2],
    ]);
  });
});
