import { describe, expect, it } from 'vitest';
import { setDisplayZone } from '../format';
import type { BackfillJob } from '../metrics-api';
import { backfillSummary, isActive } from './backfill-progress';

const job = (over: Partial<BackfillJob>): BackfillJob => ({
  id: 'j',
  tenant: 't',
  metric: 'orders',
  window_ms: 60_000,
  from: Date.UTC(2026, 0, 15, 9, 0),
  boundary: Date.UTC(2026, 0, 15, 10, 1),
  defined_at: Date.UTC(2026, 0, 15, 10, 0, 20),
  requested_at: Date.UTC(2026, 0, 15, 10, 0, 20),
  state: 'running',
  windows_done: 50,
  windows_total: 61,
  events: 1200,
  rows: 300,
  ...over,
});

describe('backfill progress', () => {
  setDisplayZone('utc');

  it('says where a running job is', () => {
    expect(backfillSummary(job({ phase: 'past' }))).toBe('Computing the past: 50 of 61 windows…');
    expect(
      backfillSummary(job({ phase: 'recent', recent_complete_at: Date.UTC(2026, 0, 15, 10, 11) })),
    ).toBe('Computing the past: 50 of 61 windows; recent windows complete at Jan 15 10:11.');
    expect(
      backfillSummary(
        job({ phase: 'tiers', windows_done: 61, tiers_complete_at: Date.UTC(2026, 0, 16, 0, 10) }),
      ),
    ).toBe('Past computed (61 of 61 windows); hourly and daily rollups complete at Jan 16 00:10.');
  });

  it('says how a job ended, and whether to keep polling', () => {
    expect(backfillSummary(job({ state: 'done', windows_done: 61 }))).toBe(
      'Past computed: 61 of 61 windows since Jan 15 09:00.',
    );
    expect(backfillSummary(job({ state: 'failed', error: 'abandoned' }))).toBe(
      'Computing the past failed: abandoned',
    );
    expect(isActive(job({ state: 'queued' }))).toBe(true);
    expect(isActive(job({ state: 'done' }))).toBe(false);
    expect(isActive(job({ state: 'running', phase: 'recent' }))).toBe(true);
    expect(isActive(job({ state: 'running', phase: 'tiers' }))).toBe(false);
  });
});
