/**
 * Silences of a rule: create one (1h, 4h, 1d or a chosen end; optional series matchers; a
 * comment) and expire one. A silence mutes delivery; the rule's state and history are kept.
 */

import { createSilence, expireSilence, type Silence } from '../alerts-api';
import { fromLocalInput, toLocalInput } from '../format';
import { field, h, openDialog } from '../dom';
import type { AlertRule } from '../types';
import { parsePairs } from './alert-form';

const PRESETS: [string, number][] = [
  ['1h', 3_600],
  ['4h', 4 * 3_600],
  ['1d', 86_400],
];

export function openSilenceDialog(tenant: string, rule: AlertRule, done: () => void): void {
  openDialog(
    `Silence ${rule.name || rule.alert_id}`,
    (form) => {
      let chosen: number | 'custom' = 3_600;
      const end = h('input', {
        type: 'datetime-local',
        value: toLocalInput(Date.now() + 2 * 3_600_000),
        disabled: true,
        'data-testid': 'silence-end',
      });
      const group = h('div', { class: 'seg', role: 'group', 'aria-label': 'Duration' });
      const buttons: HTMLButtonElement[] = [];
      const pick = (value: number | 'custom', btn: HTMLButtonElement) => {
        chosen = value;
        for (const b of buttons) b.setAttribute('aria-pressed', String(b === btn));
        end.disabled = value !== 'custom';
      };
      for (const [label, secs] of [...PRESETS, ['custom', 0] as [string, number]]) {
        const b = h(
          'button',
          {
            class: 'seg-btn',
            type: 'button',
            'aria-pressed': String(secs === 3_600),
            'data-testid': `silence-preset-${label}`,
          },
          label === 'custom' ? 'until…' : label,
        );
        b.addEventListener('click', () => pick(label === 'custom' ? 'custom' : secs, b));
        buttons.push(b);
        group.append(b);
      }
      const matchers = h('input', {
        type: 'text',
        placeholder: `${Object.keys(rule.dimensions)[0] ?? 'region'}=eu (empty: every series)`,
        'data-testid': 'silence-matchers',
      });
      const comment = h('input', {
        type: 'text',
        maxlength: '1000',
        placeholder: 'e.g. deploy in progress',
        'data-testid': 'silence-comment',
      });
      form.append(
        h(
          'p',
          { class: 'muted' },
          'Notifications are muted until the end; the rule is still evaluated and its history kept.',
        ),
        h('div', { class: 'field' }, h('span', {}, 'For'), group),
        field('Until', end),
        field('Series', matchers, 'name=value (* for any), comma-separated'),
        field('Comment', comment),
      );
      return async () => {
        const parsed = parsePairs(matchers.value);
        if (typeof parsed === 'string') throw new Error(`Series: ${parsed}`);
        const body: Parameters<typeof createSilence>[1] = {
          alert_id: rule.alert_id,
          matchers: parsed,
          comment: comment.value.trim(),
        };
        if (chosen === 'custom') {
          const at = fromLocalInput(end.value);
          if (at === null || at <= Date.now()) throw new Error('The end must be in the future');
          body.ends_at = new Date(at).toISOString();
        } else body.duration_secs = chosen;
        await createSilence(tenant, body);
        done();
        return true;
      };
    },
    { submitLabel: 'Silence', testId: 'silence-dialog' },
  );
}

export function confirmExpire(tenant: string, s: Silence, done: () => void): void {
  openDialog(
    'Expire silence',
    (form) => {
      form.append(
        h('p', {}, 'Expire this silence now? Notifications resume for the series it muted.'),
      );
      return async () => {
        await expireSilence(tenant, s.silence_id);
        done();
        return true;
      };
    },
    { submitLabel: 'Expire', danger: true, testId: 'expire-dialog' },
  );
}
