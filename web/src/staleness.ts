/** When a widget's data can no longer be trusted to be current. Pure. */

import { formatDuration } from './format';

export interface StalenessInput {
  now: number;
  /** Live view (a preset or the widget's own window); historical ranges are never stale. */
  live: boolean;
  /** The stream is open (EventSource readyState OPEN and the first message arrived). */
  streamUp: boolean;
  /** When the stream went down, if it is down. */
  streamDownSince: number | null;
  /** The gateway reports the pipeline is behind (its lag in ms, if known). */
  pipelineBehind: boolean;
  pipelineLagMs: number | null;
  /** When this widget last got data (snapshot, update or a "still current" heartbeat). */
  lastUpdateAt: number | null;
  /** When the widget started waiting for data (stream opened), to time the first update. */
  waitingSince: number;
  /** The widget's refresh interval. */
  refreshMs: number;
}

export type StaleReason = 'stream-down' | 'pipeline-behind' | 'no-update';

export interface Staleness {
  stale: boolean;
  reason: StaleReason | null;
  /** Short text for the badge. */
  label: string;
  /** Longer text for the tooltip. */
  detail: string;
}

const FRESH: Staleness = { stale: false, reason: null, label: '', detail: '' };

export function staleness(s: StalenessInput): Staleness {
  if (!s.live) return FRESH;
  if (!s.streamUp) {
    const since =
      s.streamDownSince !== null ? ` for ${formatDuration(s.now - s.streamDownSince)}` : '';
    return {
      stale: true,
      reason: 'stream-down',
      label: 'stale · offline',
      detail: `Live stream disconnected${since}; reconnecting. Values shown may be out of date.`,
    };
  }
  if (s.pipelineBehind) {
    const lag = s.pipelineLagMs !== null ? ` by ${formatDuration(s.pipelineLagMs)}` : '';
    return {
      stale: true,
      reason: 'pipeline-behind',
      label: 'stale · pipeline behind',
      detail: `The gateway reports the pipeline is behind${lag}; recent windows may be incomplete.`,
    };
  }
  const since = s.lastUpdateAt ?? s.waitingSince;
  const age = s.now - since;
  if (age > 2 * s.refreshMs) {
    return {
      stale: true,
      reason: 'no-update',
      label: `stale · ${formatDuration(age)}`,
      detail:
        s.lastUpdateAt === null
          ? `No data received for ${formatDuration(age)} (expected every ${formatDuration(s.refreshMs)}).`
          : `No update for ${formatDuration(age)} (expected every ${formatDuration(s.refreshMs)}).`,
    };
  }
  return FRESH;
}
