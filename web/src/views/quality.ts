/**
 * The data-quality page: is the tenant's data arriving, what was rejected and why, what
 * arrived late. A range picker (presets), a table per source and event type of accepted,
 * rejected, late and beyond-horizon events, and the rejections by reason with samples of the
 * rejected items, expandable, shown as text.
 */

import { h, replace } from '../dom';
import { formatCompact, formatWindowLength } from '../format';
import {
  getDataQuality,
  type DataQuality,
  type QualityRow,
  type RejectionReason,
} from '../quality-api';

const PRESETS: { label: string; ms: number }[] = [
  { label: '15m', ms: 15 * 60_000 },
  { label: '1h', ms: 3_600_000 },
  { label: '6h', ms: 6 * 3_600_000 },
  { label: '24h', ms: 24 * 3_600_000 },
  { label: '7d', ms: 7 * 24 * 3_600_000 },
];
const DEFAULT_PRESET = '1h';

export class QualityView {
  readonly root = h('section', { class: 'quality-view', 'aria-labelledby': 'quality-title' });
  private readonly body = h('div', { class: 'quality-body', 'data-testid': 'quality-body' });
  private readonly rangeButtons = new Map<string, HTMLButtonElement>();
  private abort = new AbortController();
  private preset = DEFAULT_PRESET;

  constructor(private readonly tenant: string) {
    replace(this.root, this.toolbar(), this.body);
  }

  async load(): Promise<void> {
    this.abort.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    for (const [label, b] of this.rangeButtons)
      b.setAttribute('aria-pressed', String(label === this.preset));
    const ms = PRESETS.find((p) => p.label === this.preset)?.ms ?? 3_600_000;
    const to = Date.now();
    replace(this.body, h('p', { class: 'muted' }, 'Loading data quality…'));
    let answer: DataQuality;
    try {
      answer = await getDataQuality(this.tenant, to - ms, to, signal);
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') return;
      replace(
        this.body,
        h(
          'p',
          { class: 'form-error', role: 'alert' },
          `Could not load data quality: ${err instanceof Error ? err.message : String(err)}`,
        ),
        h('button', { class: 'btn', type: 'button', onclick: () => void this.load() }, 'Retry'),
      );
      return;
    }
    if (signal.aborted) return;
    this.paint(answer);
  }

  private toolbar(): HTMLElement {
    const group = h('div', { class: 'seg', role: 'group', 'aria-label': 'Time range' });
    for (const p of PRESETS) {
      const b = h(
        'button',
        {
          class: 'seg-btn',
          type: 'button',
          title: `Last ${p.label}`,
          'data-range': p.label,
          onclick: () => {
            this.preset = p.label;
            void this.load();
          },
        },
        p.label,
      );
      this.rangeButtons.set(p.label, b);
      group.append(b);
    }
    return h(
      'div',
      { class: 'toolbar' },
      h('h1', { id: 'quality-title', class: 'dash-title' }, 'Data quality'),
      h('div', { class: 'spacer' }),
      h(
        'button',
        {
          class: 'btn btn-small',
          type: 'button',
          'data-testid': 'quality-refresh',
          onclick: () => void this.load(),
        },
        'Refresh',
      ),
      h('div', { class: 'range' }, group),
    );
  }

  private paint(q: DataQuality): void {
    const range = `the last ${this.preset}`;
    if (q.rows.length === 0) {
      replace(
        this.body,
        h(
          'div',
          { class: 'empty', 'data-testid': 'quality-empty' },
          h('p', {}, `No events arrived for tenant ${this.tenant} in ${range}.`),
          h(
            'p',
            { class: 'muted' },
            'Nothing was accepted, rejected or late. If producers are sending, check that they use this tenant’s key and reach an edge agent.',
          ),
        ),
      );
      return;
    }
    const notes = [
      q.truncated ? 'More sources and event types than shown: some rows are missing.' : null,
      q.samples_complete
        ? null
        : `Samples come from the newest ${q.samples_scanned} rejected items only.`,
      q.beyond_horizon_complete
        ? null
        : '“Beyond horizon” counts the newest late records only (at least this many).',
    ].filter((n): n is string => n !== null);
    const rejections = q.rows.flatMap((r) => r.rejections.map((reason) => ({ row: r, reason })));
    replace(
      this.body,
      h(
        'p',
        { class: 'muted' },
        `Events in ${range}, per source and event type. Late: arrived more than ${formatWindowLength(q.late_after_ms)} after it occurred. Beyond horizon: too late to correct its window (kept aside, not in the metrics).`,
      ),
      notes.map((n) => h('p', { class: 'muted', 'data-testid': 'quality-note' }, n)),
      this.table(q.rows),
      h('h2', { class: 'quality-heading' }, 'Rejections by reason'),
      rejections.length === 0
        ? h(
            'p',
            { class: 'empty', 'data-testid': 'no-rejections' },
            `Nothing was rejected in ${range}.`,
          )
        : h(
            'div',
            { class: 'rejections', 'data-testid': 'rejections' },
            rejections.map(({ row, reason }) => this.rejection(row, reason)),
          ),
    );
  }

  private table(rows: QualityRow[]): HTMLElement {
    const num = (n: number, testId: string, warn = false) =>
      h(
        'td',
        { class: warn && n > 0 ? 'num is-firing' : 'num', 'data-testid': testId, title: String(n) },
        formatCompact(n),
      );
    return h(
      'div',
      { class: 'dash-table table-wrap' },
      h(
        'table',
        { class: 'data-table', 'data-testid': 'quality-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'Source'),
            h('th', {}, 'Event type'),
            h('th', { class: 'num' }, 'Accepted'),
            h('th', { class: 'num' }, 'Rejected'),
            h('th', { class: 'num' }, 'Late'),
            h('th', { class: 'num' }, 'Beyond horizon'),
          ),
        ),
        h(
          'tbody',
          {},
          rows.map((r) =>
            h(
              'tr',
              { 'data-testid': 'quality-row', 'data-source': r.source, 'data-type': r.event_type },
              h('td', {}, r.source),
              h('td', {}, r.event_type),
              num(r.accepted, 'accepted'),
              num(r.rejected, 'rejected', true),
              num(r.late, 'late'),
              num(r.beyond_horizon, 'beyond-horizon'),
            ),
          ),
        ),
      ),
    );
  }

  private rejection(row: QualityRow, reason: RejectionReason): HTMLElement {
    const samples = reason.samples.map((s, i) =>
      h(
        'details',
        { class: 'sample', 'data-testid': 'sample' },
        h(
          'summary',
          {},
          `Sample ${i + 1} · received ${new Date(s.received_at).toLocaleString()}`,
          s.truncated ? h('span', { class: 'badge' }, 'cut') : null,
        ),
        h('p', { class: 'sample-detail', 'data-testid': 'sample-detail' }, s.detail),
        h('pre', { class: 'sample-raw', 'data-testid': 'sample-raw' }, s.raw),
        h('p', { class: 'muted' }, `Rejected by ${s.rejected_by}`),
      ),
    );
    return h(
      'article',
      {
        class: 'rejection',
        'data-testid': 'rejection',
        'data-reason': reason.reason,
        'data-source': row.source,
        'data-type': row.event_type,
      },
      h(
        'header',
        { class: 'rejection-head' },
        h('code', { class: 'rejection-reason' }, reason.reason),
        h('span', { class: 'muted' }, `${row.source} · ${row.event_type}`),
        h('div', { class: 'spacer' }),
        h('strong', { 'data-testid': 'rejection-count' }, formatCompact(reason.count)),
      ),
      samples.length
        ? samples
        : h(
            'p',
            { class: 'muted' },
            'No sample among the newest rejected items (the dead letters may have expired).',
          ),
    );
  }

  dispose(): void {
    this.abort.abort();
  }
}
