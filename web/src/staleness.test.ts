import { describe, expect, it } from 'vitest';
import { staleness } from './staleness';
import type { StalenessInput } from './staleness';

const base: StalenessInput = {
  now: 100_000,
  live: true,
  streamUp: true,
  streamDownSince: null,
  pipelineBehind: false,
  pipelineLagMs: null,
  lastUpdateAt: 95_000,
  waitingSince: 0,
  refreshMs: 5000,
};

describe('staleness', () => {
  it('is fresh within twice the refresh interval', () => {
    expect(staleness(base).stale).toBe(false);
    expect(staleness({ ...base, lastUpdateAt: 90_001 }).stale).toBe(false);
  });
  it('is stale after twice the refresh interval without an update', () => {
    const s = staleness({ ...base, lastUpdateAt: 89_000 });
    expect(s).toMatchObject({ stale: true, reason: 'no-update' });
    expect(s.label).toContain('11s');
  });
  it('times the first update from when the stream opened', () => {
    expect(staleness({ ...base, lastUpdateAt: null, waitingSince: 95_000 }).stale).toBe(false);
    expect(staleness({ ...base, lastUpdateAt: null, waitingSince: 80_000 }).reason).toBe(
      'no-update',
    );
  });
  it('is stale while the stream is down, whatever the last update', () => {
    const s = staleness({
      ...base,
      streamUp: false,
      streamDownSince: 97_000,
      lastUpdateAt: 99_000,
    });
    expect(s).toMatchObject({ stale: true, reason: 'stream-down' });
    expect(s.detail).toContain('3s');
  });
  it('is stale when the gateway says the pipeline is behind', () => {
    expect(staleness({ ...base, pipelineBehind: true, pipelineLagMs: 42_000 })).toMatchObject({
      stale: true,
      reason: 'pipeline-behind',
    });
  });
  it('never flags a historical range', () => {
    expect(staleness({ ...base, live: false, streamUp: false }).stale).toBe(false);
  });
});
