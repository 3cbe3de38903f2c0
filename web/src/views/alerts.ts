/**
 * The tenant's alert rules: name, metric, condition, and the state the aggregators hold
 * (`GET /v1/alert-states`, refreshed every few seconds), with firing/pending series counts.
 */

import { listAlertRules } from '../api';
import { CONDITION_SYMBOL } from '../alerts';
import { listAlertStates, type RuleState } from '../alerts-api';
import { h, replace } from '../dom';
import type { AlertRule } from '../types';
import { openRuleEditor } from './alert-form';

/** How often the states are read again. */
export const STATE_REFRESH_MS = 3000;

/** A rule's state badge (`data-state` for tests and styles). */
export function stateBadge(state: string, extra = ''): HTMLElement {
  return h(
    'span',
    {
      class: `badge badge-alert badge-alert-${state}`,
      'data-testid': 'alert-state',
      'data-state': state,
    },
    extra ? `${state} ${extra}` : state,
  );
}

/** `p99 > 500 for 2 windows` */
export function conditionText(r: AlertRule): string {
  const dims = Object.entries(r.dimensions)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const windows = r.for_windows > 1 ? ` for ${r.for_windows} windows` : '';
  return `${r.stat}${dims ? ` {${dims}}` : ''} ${CONDITION_SYMBOL[r.condition]} ${r.threshold}${windows}`;
}

export class AlertsView {
  readonly root = h('section', { class: 'alerts-view', 'data-testid': 'alerts-page' });
  private readonly body = h('div', { class: 'table-wrap' });
  private readonly abort = new AbortController();
  private rules: AlertRule[] = [];
  private states = new Map<string, RuleState>();
  private timer: number | undefined;
  private stateError: string | null = null;

  constructor(
    private readonly tenant: string,
    private readonly open: (alertId: string) => void,
  ) {
    this.root.append(
      h(
        'div',
        { class: 'toolbar' },
        h('h1', { class: 'dash-title' }, 'Alert rules'),
        h('div', { class: 'spacer' }),
        h(
          'button',
          {
            class: 'btn btn-primary edit-only',
            type: 'button',
            'data-testid': 'new-rule',
            onclick: () => openRuleEditor(this.tenant, null, (r) => this.open(r.alert_id)),
          },
          '+ New rule',
        ),
      ),
      this.body,
    );
  }

  async load(): Promise<void> {
    try {
      this.rules = await listAlertRules(this.tenant, this.abort.signal);
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') return;
      replace(
        this.body,
        h(
          'p',
          { class: 'form-error', role: 'alert' },
          `Could not list the rules: ${err instanceof Error ? err.message : String(err)}`,
        ),
      );
      return;
    }
    await this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), STATE_REFRESH_MS);
  }

  private async refresh(): Promise<void> {
    try {
      const states = await listAlertStates(this.tenant, this.abort.signal);
      this.states = new Map(states.map((s) => [s.alert_id, s]));
      this.stateError = null;
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') return;
      this.stateError = err instanceof Error ? err.message : String(err);
    }
    this.paint();
  }

  private paint(): void {
    if (this.rules.length === 0) {
      replace(
        this.body,
        h(
          'div',
          { class: 'empty', 'data-testid': 'no-rules' },
          h('p', {}, 'No alert rules yet.'),
          h(
            'p',
            { class: 'muted' },
            'A rule watches a metric and posts to a webhook when it crosses a threshold.',
          ),
        ),
      );
      return;
    }
    const rows = this.rules.map((r) => {
      const s = this.states.get(r.alert_id);
      const state = s?.state ?? 'unknown';
      const counts = s
        ? `${s.firing} firing · ${s.pending} pending · ${s.total_series} series`
        : '';
      const link = h(
        'a',
        {
          href: `?tenant=${encodeURIComponent(this.tenant)}&alert=${encodeURIComponent(r.alert_id)}`,
          'data-testid': 'rule-link',
          onclick: (e: MouseEvent) => {
            if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
            e.preventDefault();
            this.open(r.alert_id);
          },
        },
        r.name || r.alert_id,
      );
      return h(
        'tr',
        { 'data-testid': 'rule-row', 'data-alert': r.alert_id, 'data-name': r.name },
        h('td', {}, stateBadge(state)),
        h('td', {}, link, r.description ? h('div', { class: 'muted' }, r.description) : null),
        h('td', {}, r.metric_name),
        h('td', {}, conditionText(r)),
        h('td', { class: 'muted', 'data-testid': 'rule-counts' }, counts),
      );
    });
    replace(
      this.body,
      this.stateError
        ? h('p', { class: 'form-error', role: 'alert' }, `State unavailable: ${this.stateError}`)
        : null,
      h(
        'table',
        { class: 'data-table', 'data-testid': 'rules-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'State'),
            h('th', {}, 'Rule'),
            h('th', {}, 'Metric'),
            h('th', {}, 'Condition'),
            h('th', {}, 'Series'),
          ),
        ),
        h('tbody', {}, rows),
      ),
    );
  }

  dispose(): void {
    this.abort.abort();
    window.clearInterval(this.timer);
  }
}
