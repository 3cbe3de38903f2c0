/**
 * The alert rule editor (a dialog): name, description, labels, metric, stat, dimension filter,
 * condition, threshold, for N windows, evaluate on, webhook. The webhook is write-only: an
 * edited rule shows the masked URL as a placeholder and keeps it unless one is typed. A `400`
 * is shown next to the field it names.
 */

import { ApiError, listDimensionValues, listMetrics } from '../api';
import { type AlertInput, createAlert, updateAlert } from '../alerts-api';
import { fieldWithError, h, openDialog, replace } from '../dom';
import type { AlertRule, Condition, MetricInfo, Stat } from '../types';

const CONDITIONS: [Condition, string][] = [
  ['gt', '> above'],
  ['gte', '≥ at or above'],
  ['lt', '< below'],
  ['lte', '≤ at or below'],
  ['eq', '= equal to'],
];

type FieldKey =
  | 'name'
  | 'description'
  | 'labels'
  | 'metric'
  | 'stat'
  | 'dimensions'
  | 'condition'
  | 'threshold'
  | 'for_windows'
  | 'evaluate_on'
  | 'notify_channel';

/** The form field an API error message names, if any. Exported for tests. */
export function fieldOf(message: string): FieldKey | null {
  const named = /`([a-z_]+)`/.exec(message)?.[1];
  switch (named) {
    case 'name':
    case 'description':
    case 'labels':
    case 'threshold':
    case 'for_windows':
    case 'evaluate_on':
    case 'notify_channel':
    case 'condition':
    case 'stat':
    case 'dimensions':
      return named;
    case 'metric_name':
      return 'metric';
  }
  if (/^metric `[^`]*` has no `[^`]*` stat/.test(message)) return 'stat';
  if (/^metric `[^`]*` has no dimension/.test(message)) return 'dimensions';
  if (/^metric `[^`]*`/.test(message)) return 'metric';
  if (/label/i.test(message)) return 'labels';
  return null;
}

/** `k=v` pairs, one per line or comma-separated. */
export function parsePairs(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text.split(/[\n,]/)) {
    const t = part.trim();
    if (!t) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return `“${t}” is not name=value`;
    out[t.slice(0, eq).trim()] = t.slice(eq + 1).trim();
  }
  return out;
}

const pairsText = (o: Record<string, string>) =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/** Opens the editor: a new rule, or `rule` to edit. `saved` gets the stored rule. */
export function openRuleEditor(
  tenant: string,
  rule: AlertRule | null,
  saved: (r: AlertRule) => void,
): void {
  openDialog(
    rule ? 'Edit alert rule' : 'New alert rule',
    (form) => {
      const errors = new Map<FieldKey, HTMLElement>();
      const row = (key: FieldKey, label: string, control: HTMLElement, hint?: string) =>
        fieldWithError('rule', key, label, control, errors, hint);
      const name = h('input', {
        type: 'text',
        maxlength: '200',
        value: rule?.name ?? '',
        placeholder: 'e.g. Checkout errors',
        'data-testid': 'rule-name',
      });
      const description = h('textarea', {
        rows: 2,
        maxlength: '4000',
        'data-testid': 'rule-description',
      });
      description.value = rule?.description ?? '';
      const labels = h('input', {
        type: 'text',
        value: rule ? pairsText(rule.labels) : '',
        placeholder: 'severity=page, team=payments',
        'data-testid': 'rule-labels',
      });
      const metric = h('select', { required: true, 'data-testid': 'rule-metric' });
      const stat = h('select', { required: true, 'data-testid': 'rule-stat' });
      const dims = h('div', { class: 'rule-dims', 'data-testid': 'rule-dimensions' });
      const condition = h(
        'select',
        { 'data-testid': 'rule-condition' },
        CONDITIONS.map(([c, label]) =>
          h('option', { value: c, selected: (rule?.condition ?? 'gt') === c }, label),
        ),
      );
      const threshold = h('input', {
        type: 'number',
        step: 'any',
        required: true,
        value: rule ? String(rule.threshold) : '',
        'data-testid': 'rule-threshold',
      });
      const forWindows = h('input', {
        type: 'number',
        min: '1',
        max: '1000',
        step: '1',
        required: true,
        value: String(rule?.for_windows ?? 1),
        'data-testid': 'rule-for',
      });
      const evaluateOn = h(
        'select',
        { 'data-testid': 'rule-evaluate-on' },
        h(
          'option',
          { value: 'final', selected: (rule?.evaluate_on ?? 'final') === 'final' },
          'final windows (closed)',
        ),
        h(
          'option',
          { value: 'provisional', selected: rule?.evaluate_on === 'provisional' },
          'provisional windows too (sooner, may change)',
        ),
      );
      const webhook = h('input', {
        type: 'url',
        required: !rule,
        placeholder: rule ? `${rule.notify_channel} (unchanged unless retyped)` : 'https://…',
        autocomplete: 'off',
        'data-testid': 'rule-webhook',
      });

      let metrics: MetricInfo[] = [];
      const dimInputs = new Map<string, HTMLInputElement>();
      const fillMetric = () => {
        const info = metrics.find((m) => m.name === metric.value);
        const keep = (stat.value || rule?.stat) ?? 'count';
        replace(
          stat,
          (info?.stats ?? ['count']).map((s: Stat) =>
            h('option', { value: s, selected: s === keep }, s),
          ),
        );
        dimInputs.clear();
        const current = rule?.metric_name === metric.value ? rule.dimensions : {};
        replace(
          dims,
          (info?.dimensions ?? []).length === 0
            ? h(
                'span',
                { class: 'muted' },
                'This metric has no dimensions: the rule watches its total.',
              )
            : (info?.dimensions ?? []).map((d) => {
                const list = h(
                  'datalist',
                  { id: `rule-dim-values-${d}` },
                  h('option', { value: '*' }),
                );
                const input = h('input', {
                  type: 'text',
                  value: current[d] ?? '',
                  placeholder: 'all (summed)',
                  list: list.id,
                  'data-testid': `rule-dim-${d}`,
                  'aria-label': `Filter ${d}`,
                });
                dimInputs.set(d, input);
                return h('label', { class: 'rule-dim' }, h('span', {}, d), input, list);
              }),
        );
      };
      /** Suggests the values seen in the last hour for each dimension (and `*`). */
      const suggest = () => {
        const name = metric.value;
        if (!name || dimInputs.size === 0) return;
        const now = Date.now();
        listDimensionValues(tenant, name, now - 3_600_000, now).then(
          (values) => {
            if (metric.value !== name) return;
            for (const [d, input] of dimInputs) {
              const list = input.list;
              if (!list) continue;
              replace(
                list,
                h('option', { value: '*' }),
                (values[d] ?? []).slice(0, 200).map((v) => h('option', { value: v })),
              );
            }
          },
          () => {
            /* suggestions only */
          },
        );
      };
      metric.addEventListener('change', () => {
        fillMetric();
        suggest();
      });
      metric.append(h('option', { value: '' }, 'loading…'));
      void listMetrics(tenant).then(
        (list) => {
          metrics = list;
          replace(
            metric,
            list.map((m) =>
              h(
                'option',
                { value: m.name, selected: m.name === (rule?.metric_name ?? '') },
                m.name,
              ),
            ),
          );
          if (rule && !list.some((m) => m.name === rule.metric_name))
            metric.append(
              h('option', { value: rule.metric_name, selected: true }, rule.metric_name),
            );
          fillMetric();
          suggest();
        },
        (err: unknown) => {
          replace(metric, h('option', { value: '' }, 'metrics unavailable'));
          const e = errors.get('metric');
          if (e) {
            e.textContent = err instanceof Error ? err.message : String(err);
            e.hidden = false;
          }
        },
      );

      form.classList.add('rule-form');
      form.append(
        row('name', 'Name', name),
        row('description', 'Description', description, 'Sent with the notification.'),
        row('labels', 'Labels', labels, 'name=value, comma-separated; added to notifications.'),
        h(
          'div',
          { class: 'field-row' },
          row('metric', 'Metric', metric),
          row('stat', 'Stat', stat),
        ),
        row(
          'dimensions',
          'Series filter',
          dims,
          'A value watches that series; * watches each value as its own series; empty sums over the dimension.',
        ),
        h(
          'div',
          { class: 'field-row' },
          row('condition', 'Condition', condition),
          row('threshold', 'Threshold', threshold),
          row('for_windows', 'For windows', forWindows),
        ),
        row('evaluate_on', 'Evaluate on', evaluateOn),
        row(
          'notify_channel',
          'Webhook URL',
          webhook,
          rule
            ? 'Write-only: leave empty to keep the stored URL.'
            : 'Alertmanager-format JSON is POSTed here (Slack incoming webhooks work too).',
        ),
      );

      const show = (key: FieldKey, message: string) => {
        const e = errors.get(key);
        if (!e) return false;
        e.textContent = message;
        e.hidden = false;
        e.previousElementSibling
          ?.closest('.field')
          ?.querySelector<HTMLElement>('input, select, textarea')
          ?.focus();
        return true;
      };
      return async () => {
        for (const e of errors.values()) e.hidden = true;
        const parsedLabels = parsePairs(labels.value);
        if (typeof parsedLabels === 'string') return !show('labels', parsedLabels);
        const t = Number(threshold.value);
        if (threshold.value.trim() === '' || !Number.isFinite(t))
          return !show('threshold', 'A number is required');
        const dimensions: Record<string, string> = {};
        for (const [d, input] of dimInputs)
          if (input.value.trim()) dimensions[d] = input.value.trim();
        const body: AlertInput = {
          name: name.value.trim(),
          description: description.value,
          labels: parsedLabels,
          metric_name: metric.value,
          stat: stat.value as Stat,
          dimensions,
          condition: condition.value as Condition,
          threshold: t,
          for_windows: Number(forWindows.value),
          evaluate_on: evaluateOn.value as AlertInput['evaluate_on'],
          notify_channel: webhook.value.trim(),
          annotations: rule?.annotations ?? {},
        };
        try {
          const stored = rule
            ? await updateAlert(tenant, rule.alert_id, { ...body, revision: rule.revision })
            : await createAlert(tenant, body);
          saved(stored);
          return true;
        } catch (err) {
          if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
            const key = fieldOf(err.message);
            if (key && show(key, err.message)) return false;
          }
          throw err;
        }
      };
    },
    { submitLabel: rule ? 'Save' : 'Create rule', testId: 'rule-editor' },
  );
}
