/**
 * One alert rule: its definition, its state per series (`/state`, with the silence muting
 * each), its history (`/events`: transitions, deliveries, tests), a "Send test notification"
 * action, and its silences (create, list, expire). State and history refresh every few
 * seconds.
 */

import { ApiError } from '../api';
import {
  type AlertEvent,
  deleteAlert,
  getAlert,
  getRuleState,
  listAlertEvents,
  listSilences,
  type RuleState,
  sendTestNotification,
  type Silence,
} from '../alerts-api';
import { h, openDialog, replace, toast } from '../dom';
import { formatTimestamp } from '../format';
import type { AlertRule } from '../types';
import { openRuleEditor } from './alert-form';
import { conditionText, STATE_REFRESH_MS, stateBadge } from './alerts';
import { confirmExpire, openSilenceDialog } from './silences';

const time = (rfc3339: string | null | undefined) =>
  rfc3339 ? formatTimestamp(Date.parse(rfc3339)) : '—';

const dimsText = (d: Record<string, string | null>) =>
  Object.entries(d)
    .map(([k, v]) => `${k}=${v ?? '∅'}`)
    .join(', ') || 'all series';

export class AlertDetailView {
  readonly root = h('section', { class: 'alert-detail', 'data-testid': 'alert-detail' });
  private readonly head = h('div', { class: 'toolbar' });
  private readonly summary = h('div', { class: 'alert-summary' });
  private readonly testResult = h('p', {
    class: 'muted',
    role: 'status',
    'aria-live': 'polite',
    'data-testid': 'test-result',
  });
  private readonly seriesBox = h('div', { class: 'table-wrap', 'data-testid': 'series-state' });
  private readonly silencesBox = h('div', { class: 'table-wrap', 'data-testid': 'silences' });
  private readonly historyBox = h('div', { class: 'table-wrap', 'data-testid': 'history' });
  private readonly abort = new AbortController();
  private rule: AlertRule | null = null;
  private timer: number | undefined;

  constructor(
    private readonly tenant: string,
    private readonly alertId: string,
    private readonly cb: { back(): void; loaded(r: AlertRule): void },
  ) {}

  async load(): Promise<void> {
    try {
      this.rule = await getAlert(this.tenant, this.alertId, this.abort.signal);
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') return;
      replace(
        this.root,
        h(
          'p',
          { class: 'form-error', role: 'alert' },
          err instanceof ApiError && err.status === 404
            ? 'This alert rule does not exist (deleted, or another tenant’s).'
            : `Could not load the rule: ${err instanceof Error ? err.message : String(err)}`,
        ),
      );
      return;
    }
    this.cb.loaded(this.rule);
    this.paintHead();
    replace(
      this.root,
      this.head,
      this.summary,
      h('h2', { class: 'section-title' }, 'State per series'),
      this.seriesBox,
      h(
        'div',
        { class: 'toolbar' },
        h('h2', { class: 'section-title' }, 'Silences'),
        h('div', { class: 'spacer' }),
        h(
          'button',
          {
            class: 'btn btn-small edit-only',
            type: 'button',
            'data-testid': 'new-silence',
            onclick: () =>
              this.rule && openSilenceDialog(this.tenant, this.rule, () => void this.refresh()),
          },
          'Silence…',
        ),
      ),
      this.silencesBox,
      h('h2', { class: 'section-title' }, 'History'),
      this.historyBox,
    );
    await this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), STATE_REFRESH_MS);
  }

  private paintHead(): void {
    const r = this.rule;
    if (!r) return;
    replace(
      this.head,
      h('h1', { class: 'dash-title', 'data-testid': 'rule-title' }, r.name || r.alert_id),
      h('span', { 'data-testid': 'rule-state-slot' }),
      h('div', { class: 'spacer' }),
      h(
        'div',
        { class: 'edit-only toolbar-group' },
        h(
          'button',
          {
            class: 'btn btn-small',
            type: 'button',
            'data-testid': 'send-test',
            onclick: (e: MouseEvent) => void this.sendTest(e.currentTarget as HTMLButtonElement),
          },
          'Send test notification',
        ),
        h(
          'button',
          {
            class: 'btn btn-small',
            type: 'button',
            'data-testid': 'edit-rule',
            onclick: () =>
              openRuleEditor(this.tenant, r, (stored) => {
                this.rule = stored;
                this.paintHead();
                toast('Rule saved');
              }),
          },
          'Edit',
        ),
        h(
          'button',
          {
            class: 'btn btn-small btn-danger-ghost',
            type: 'button',
            'data-testid': 'delete-rule',
            onclick: () => this.confirmDelete(r),
          },
          'Delete',
        ),
      ),
    );
    const labels = Object.entries(r.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    replace(
      this.summary,
      r.description ? h('p', {}, r.description) : null,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Metric'),
        h('dd', {}, r.metric_name),
        h('dt', {}, 'Condition'),
        h('dd', { 'data-testid': 'rule-condition-text' }, conditionText(r)),
        h('dt', {}, 'Evaluated on'),
        h('dd', {}, `${r.evaluate_on} windows`),
        h('dt', {}, 'Webhook'),
        h('dd', {}, r.notify_channel),
        labels ? h('dt', {}, 'Labels') : null,
        labels ? h('dd', {}, labels) : null,
      ),
      this.testResult,
    );
  }

  private confirmDelete(r: AlertRule): void {
    openDialog(
      'Delete alert rule',
      (form) => {
        form.append(
          h(
            'p',
            {},
            'Delete ',
            h('strong', {}, r.name || r.alert_id),
            '? Its alerts resolve and it stops notifying. This cannot be undone.',
          ),
        );
        return async () => {
          await deleteAlert(this.tenant, r.alert_id);
          toast('Rule deleted');
          this.cb.back();
          return true;
        };
      },
      { submitLabel: 'Delete', danger: true, testId: 'delete-rule-dialog' },
    );
  }

  private async sendTest(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    this.testResult.textContent = 'Sending…';
    delete this.testResult.dataset.outcome;
    try {
      const t = await sendTestNotification(this.tenant, this.alertId);
      this.testResult.dataset.outcome = t.outcome;
      this.testResult.className = t.outcome === 'delivered' ? 'test-ok' : 'form-error';
      this.testResult.textContent =
        t.outcome === 'delivered'
          ? `Test notification delivered: the webhook answered ${t.http_status ?? ''} in ${t.duration_ms} ms.`
          : `Test notification failed (${t.error_class ?? 'error'}): ${t.error ?? ''}`;
      void this.refresh();
    } catch (err) {
      this.testResult.dataset.outcome = 'error';
      this.testResult.className = 'form-error';
      this.testResult.textContent = `Could not send: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      button.disabled = false;
    }
  }

  private async refresh(): Promise<void> {
    const signal = this.abort.signal;
    const [state, silences, events] = await Promise.allSettled([
      getRuleState(this.tenant, this.alertId, signal),
      listSilences(this.tenant, this.alertId, signal),
      listAlertEvents(this.tenant, this.alertId, signal),
    ]);
    if (signal.aborted) return;
    const failed = (r: PromiseRejectedResult) =>
      h(
        'p',
        { class: 'form-error', role: 'alert' },
        `Unavailable: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`,
      );
    if (state.status === 'fulfilled') this.paintState(state.value);
    else replace(this.seriesBox, failed(state));
    if (silences.status === 'fulfilled') this.paintSilences(silences.value);
    else replace(this.silencesBox, failed(silences));
    if (events.status === 'fulfilled') this.paintHistory(events.value);
    else replace(this.historyBox, failed(events));
  }

  private paintState(s: RuleState): void {
    const slot = this.head.querySelector('[data-testid="rule-state-slot"]');
    if (slot) replace(slot, stateBadge(s.state));
    if (s.series.length === 0) {
      replace(
        this.seriesBox,
        h(
          'p',
          { class: 'muted', 'data-testid': 'no-series' },
          'No series evaluated yet: state ok.',
        ),
      );
      return;
    }
    replace(
      this.seriesBox,
      h(
        'table',
        { class: 'data-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['State', 'Series', 'Value', 'Since', 'Last window', 'Silenced by'].map((t) =>
              h('th', {}, t),
            ),
          ),
        ),
        h(
          'tbody',
          {},
          s.series.map((x) =>
            h(
              'tr',
              { 'data-testid': 'series-row', 'data-state': x.state },
              h('td', {}, stateBadge(x.state)),
              h('td', {}, dimsText(x.dimensions)),
              h('td', { class: 'num' }, x.value ?? '—'),
              h('td', {}, time(x.since)),
              h('td', {}, time(x.last_window_start)),
              h(
                'td',
                { 'data-testid': 'silenced-by' },
                x.silenced_by
                  ? h('span', { class: 'badge' }, `muted · ${x.silenced_by.slice(0, 8)}`)
                  : '',
              ),
            ),
          ),
        ),
      ),
    );
  }

  private paintSilences(list: Silence[]): void {
    if (list.length === 0) {
      replace(this.silencesBox, h('p', { class: 'muted' }, 'No silences.'));
      return;
    }
    replace(
      this.silencesBox,
      h(
        'table',
        { class: 'data-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Status', 'Series', 'Until', 'Comment', 'By', ''].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          list.map((s) =>
            h(
              'tr',
              {
                'data-testid': 'silence-row',
                'data-status': s.status,
                'data-silence': s.silence_id,
              },
              h('td', {}, h('span', { class: `badge badge-silence-${s.status}` }, s.status)),
              h('td', {}, dimsText(s.matchers)),
              h('td', {}, time(s.ends_at)),
              h('td', {}, s.comment),
              h('td', { class: 'muted' }, s.created_by),
              h(
                'td',
                {},
                s.status === 'expired'
                  ? ''
                  : h(
                      'button',
                      {
                        class: 'btn btn-small btn-danger-ghost edit-only',
                        type: 'button',
                        'data-testid': 'expire-silence',
                        onclick: () => confirmExpire(this.tenant, s, () => void this.refresh()),
                      },
                      'Expire',
                    ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  private paintHistory(events: AlertEvent[]): void {
    if (events.length === 0) {
      replace(this.historyBox, h('p', { class: 'muted' }, 'No transitions or deliveries yet.'));
      return;
    }
    replace(
      this.historyBox,
      h(
        'table',
        { class: 'data-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['When', 'What', 'Series', 'Value', 'Outcome'].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          events.map((e) =>
            h(
              'tr',
              {
                'data-testid': 'history-row',
                'data-kind': e.kind,
                'data-outcome': e.outcome ?? '',
              },
              h('td', {}, time(e.at)),
              h(
                'td',
                {},
                e.kind === 'transition'
                  ? `${e.from} → ${e.to}`
                  : e.kind === 'test'
                    ? 'test notification'
                    : `delivery of ${e.to} (attempt ${e.attempt ?? 1})`,
              ),
              h('td', {}, e.kind === 'test' ? '' : dimsText(e.dimensions)),
              h('td', { class: 'num' }, e.kind === 'test' ? '' : (e.value ?? '—')),
              h(
                'td',
                {},
                e.outcome
                  ? `${e.outcome}${e.http_status ? ` (${e.http_status})` : ''}${e.error ? `: ${e.error}` : ''}`
                  : '',
              ),
            ),
          ),
        ),
      ),
    );
  }

  dispose(): void {
    this.abort.abort();
    window.clearInterval(this.timer);
  }
}
