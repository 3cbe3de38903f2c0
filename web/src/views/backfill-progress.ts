/**
 * A metric's backfill job on its card: a progress bar of the base windows rewritten and a
 * line saying where the job is (`GET /v1/metric-definitions/{name}/backfill`, docs/api.md
 * "Backfill").
 */

import { h } from '../dom';
import { formatDateTime } from '../format';
import type { BackfillJob } from '../metrics-api';

/**
 * Whether the job still has base windows to compute (the page polls it until it has not): a
 * job only waiting to rebuild its hourly and daily rollups says when they complete instead.
 */
export function isActive(job: BackfillJob): boolean {
  return job.state === 'queued' || (job.state === 'running' && job.phase !== 'tiers');
}

/** What the job's progress line says. */
export function backfillSummary(job: BackfillJob): string {
  const windows = `${job.windows_done.toLocaleString()} of ${job.windows_total.toLocaleString()} windows`;
  switch (job.state) {
    case 'queued':
      return 'Computing the past: waiting for an aggregator…';
    case 'failed':
      return `Computing the past failed: ${job.error ?? 'no reason given'}`;
    case 'done':
      return `Past computed: ${windows} since ${formatDateTime(job.from)}.`;
    case 'running':
      break;
  }
  if (job.phase === 'tiers')
    return `Past computed (${windows}); hourly and daily rollups complete at ${formatDateTime(
      job.tiers_complete_at ?? job.boundary,
    )}.`;
  if (job.phase === 'recent' && job.recent_complete_at != null)
    return `Computing the past: ${windows}; recent windows complete at ${formatDateTime(
      job.recent_complete_at,
    )}.`;
  return `Computing the past: ${windows}…`;
}

/** The job as a card shows it. */
export function backfillProgress(name: string, job: BackfillJob): HTMLElement {
  return h(
    'div',
    {
      class: `backfill backfill-${job.state}`,
      'data-testid': `backfill-${name}`,
      'data-state': job.state,
      'data-windows-done': String(job.windows_done),
      role: 'status',
    },
    h('progress', {
      max: String(Math.max(job.windows_total, 1)),
      value: String(job.windows_done),
      'aria-label': 'windows of the past computed',
    }),
    h('span', {}, backfillSummary(job)),
  );
}
