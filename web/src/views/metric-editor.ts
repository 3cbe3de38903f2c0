/**
 * The metric definition editor: pickers fed by schema discovery (event type, numeric value
 * field, distinct-count property, dimensions with their distinct counts, rollups, window).
 * The gateway validates on save; a `4xx` naming a field is shown next to that field.
 */

import { ApiError } from '../api';
import { append, fieldWithError, h, openDialog } from '../dom';
import {
  createDefinition,
  fieldOfError,
  updateDefinition,
  type DefinitionOut,
  type EventTypes,
  type MetricDefinition,
  type PropertyInfo,
} from '../metrics-api';
const WINDOWS = [10, 30, 60, 300, 900, 3600];
/** Hours of the archived past a new or changed metric can be computed over. */
const BACKFILL_HOURS = [1, 6, 24];

/** Distinct values above which a dimension is flagged: one series per value per window. */
export const HIGH_CARDINALITY = 1000;

const WINDOW_LABELS: Record<number, string> = { 60: '1m', 300: '5m', 900: '15m', 3600: '1h' };

/** A window in seconds as the page shows it (`1m`, `30s`). */
export function windowLabel(secs: number | undefined): string {
  const s = secs ?? 60;
  return WINDOW_LABELS[s] ?? `${s}s`;
}

export function openMetricEditor(opts: {
  tenant: string;
  schema: EventTypes | null;
  definition?: DefinitionOut;
  saved: (name: string) => void;
}): void {
  const { tenant, schema, definition: d } = opts;
  const types = schema?.event_types ?? [];
  openDialog(
    d ? `Edit metric ${d.name}` : 'New metric',
    (form) => {
      const errors = new Map<string, HTMLElement>();
      const name = h('input', {
        type: 'text',
        required: true,
        maxlength: '64',
        placeholder: 'e.g. checkout_amount',
        value: d?.name ?? '',
        disabled: Boolean(d),
        autocomplete: 'off',
        'data-testid': 'metric-name',
      });
      const eventType = h('select', { 'data-testid': 'metric-event-type' });
      const typeNames = types.map((t) => t.event_type);
      if (d && d.event_type !== '*' && !typeNames.includes(d.event_type))
        typeNames.push(d.event_type);
      const wantType = d?.event_type ?? types[0]?.event_type ?? '*';
      for (const t of typeNames) {
        const info = types.find((x) => x.event_type === t);
        eventType.append(
          h(
            'option',
            { value: t, selected: t === wantType },
            info ? `${t} (${info.events.toLocaleString()} events)` : `${t} (not seen recently)`,
          ),
        );
      }
      eventType.append(h('option', { value: '*', selected: wantType === '*' }, '* every type'));
      const valueField = h('select', { 'data-testid': 'metric-field' });
      const unique = h('select', { 'data-testid': 'metric-unique' });
      const dims = h('div', { class: 'checks', 'data-testid': 'metric-dimensions' });
      const rollups = h('div', { class: 'checks', 'data-testid': 'metric-rollups' });
      const window = h('select', { 'data-testid': 'metric-window' });
      for (const w of WINDOWS)
        window.append(
          h('option', { value: String(w), selected: w === (d?.window_secs ?? 60) }, windowLabel(w)),
        );
      const description = h('input', {
        type: 'text',
        maxlength: '500',
        placeholder: 'optional',
        value: d?.description ?? '',
        'data-testid': 'metric-description',
      });
      const backfill = h(
        'select',
        { 'data-testid': 'metric-backfill' },
        h('option', { value: '' }, 'No: start counting now'),
        ...BACKFILL_HOURS.map((n) =>
          h('option', { value: String(n) }, `Compute the past ${n} hour${n > 1 ? 's' : ''}`),
        ),
      );
      const selectedDims = new Set<string>(d?.dimensions ?? []);
      const singleRollups = new Set<string>(
        (d?.rollups ?? []).filter((r) => r.length === 1).map((r) => r[0] ?? ''),
      );
      let keepTotal = d?.rollups ? d.rollups.some((r) => r.length === 0) : true;

      const properties = (): PropertyInfo[] =>
        types.find((t) => t.event_type === eventType.value)?.properties ?? [];

      const paintRollups = () => {
        const total = h('input', {
          type: 'checkbox',
          checked: keepTotal,
          'data-testid': 'metric-rollup-total',
          onchange: (e: Event) => {
            keepTotal = (e.target as HTMLInputElement).checked;
          },
        });
        rollups.replaceChildren(
          h('label', { class: 'check' }, total, ' total over every dimension'),
          ...[...selectedDims].map((dim) =>
            h(
              'label',
              { class: 'check' },
              h('input', {
                type: 'checkbox',
                checked: singleRollups.has(dim),
                'data-testid': `metric-rollup-${dim}`,
                onchange: (e: Event) => {
                  if ((e.target as HTMLInputElement).checked) singleRollups.add(dim);
                  else singleRollups.delete(dim);
                },
              }),
              ` by ${dim} alone`,
            ),
          ),
        );
      };

      const paintDims = () => {
        const props = properties();
        const names = [...new Set(['source', ...props.map((p) => p.name), ...selectedDims])];
        dims.replaceChildren(
          ...names.map((dim) => {
            const info = props.find((p) => p.name === dim);
            const high = info && info.distinct_estimate > HIGH_CARDINALITY;
            return h(
              'label',
              { class: 'check' },
              h('input', {
                type: 'checkbox',
                value: dim,
                checked: selectedDims.has(dim),
                'data-testid': `metric-dim-${dim}`,
                onchange: (e: Event) => {
                  if ((e.target as HTMLInputElement).checked) selectedDims.add(dim);
                  else {
                    selectedDims.delete(dim);
                    singleRollups.delete(dim);
                  }
                  paintRollups();
                },
              }),
              ` ${dim}`,
              info
                ? h(
                    'span',
                    { class: 'muted' },
                    ` · ~${info.distinct_estimate.toLocaleString()} distinct`,
                  )
                : null,
              high
                ? h(
                    'span',
                    {
                      class: 'warn',
                      role: 'note',
                      'data-testid': `cardinality-warning-${dim}`,
                    },
                    ` ⚠ high cardinality: about ${info.distinct_estimate.toLocaleString()} series per window`,
                  )
                : null,
            );
          }),
        );
        paintRollups();
      };

      const paintPickers = () => {
        const props = properties();
        const wantField = valueField.value || d?.field || '';
        const wantUnique = unique.value || d?.unique || '';
        const numeric = props.filter((p) => p.kinds.includes('number')).map((p) => p.name);
        if (wantField && !numeric.includes(wantField)) numeric.push(wantField);
        valueField.replaceChildren(
          h('option', { value: '' }, '(none: count only)'),
          ...numeric.map((n) => h('option', { value: n, selected: n === wantField }, n)),
        );
        const all = props.map((p) => p.name);
        if (wantUnique && !all.includes(wantUnique)) all.push(wantUnique);
        unique.replaceChildren(
          h('option', { value: '' }, '(none)'),
          ...all.map((n) => {
            const info = props.find((p) => p.name === n);
            const label = info ? `${n} (~${info.distinct_estimate.toLocaleString()} distinct)` : n;
            return h('option', { value: n, selected: n === wantUnique }, label);
          }),
        );
        paintDims();
      };
      eventType.addEventListener('change', () => {
        valueField.value = '';
        unique.value = '';
        paintPickers();
      });
      paintPickers();

      append(form, [
        types.length === 0
          ? h(
              'p',
              { class: 'hint' },
              'No events seen recently: send some first and their properties will be offered here.',
            )
          : null,
        fieldWithError('metric', 'name', 'Name', name, errors, 'Letters, digits, _ and -'),
        fieldWithError('metric', 'event_type', 'Event type', eventType, errors),
        h(
          'div',
          { class: 'field-row' },
          fieldWithError('metric', 'field', 'Value field (numeric)', valueField, errors),
          fieldWithError('metric', 'unique', 'Distinct count of', unique, errors),
        ),
        fieldWithError(
          'metric',
          'dimensions',
          'Dimensions',
          dims,
          errors,
          'Series are kept per value.',
        ),
        fieldWithError('metric', 'rollups', 'Also keep', rollups, errors),
        h(
          'div',
          { class: 'field-row' },
          fieldWithError('metric', 'window_secs', 'Window', window, errors),
          fieldWithError('metric', 'description', 'Description', description, errors),
        ),
        fieldWithError(
          'metric',
          'backfill',
          d ? 'Recompute the past' : 'Fill the past',
          backfill,
          errors,
          'From the archived events, so the metric shows its last hours at once.',
        ),
      ]);
      return async () => {
        for (const e of errors.values()) e.hidden = true;
        const dimensions = [...selectedDims];
        const body: MetricDefinition = {
          name: d?.name ?? name.value.trim(),
          event_type: eventType.value,
          dimensions,
          window_secs: Number(window.value),
          ...(valueField.value ? { field: valueField.value } : {}),
          ...(unique.value ? { unique: unique.value } : {}),
          ...(description.value.trim() ? { description: description.value.trim() } : {}),
        };
        const singles = dimensions.filter((x) => singleRollups.has(x)).map((x) => [x]);
        if (singles.length > 0 || !keepTotal)
          body.rollups = [...(keepTotal ? [[]] : []), ...singles];
        try {
          const hours = backfill.value ? Number(backfill.value) : undefined;
          const out = d
            ? await updateDefinition(tenant, body, d.revision, hours)
            : await createDefinition(tenant, body, hours);
          opts.saved(out.name);
          return true;
        } catch (err) {
          if (!(err instanceof ApiError) || err.status < 400 || err.status >= 500) throw err;
          const key = err.status === 409 && !d ? 'name' : fieldOfError(err.message);
          const slot = key ? errors.get(key) : undefined;
          if (!slot) throw err;
          slot.textContent = err.message;
          slot.hidden = false;
          return false;
        }
      };
    },
    { submitLabel: d ? 'Save' : 'Create', testId: 'metric-dialog' },
  );
}

export function openDeleteMetricDialog(name: string, remove: () => Promise<void>): void {
  openDialog(
    'Delete metric',
    (form) => {
      form.append(
        h(
          'p',
          {},
          'Delete the definition of ',
          h('strong', {}, name),
          '? Events stop being counted into it.',
        ),
      );
      return async () => {
        await remove();
        return true;
      };
    },
    { submitLabel: 'Delete', danger: true, testId: 'delete-metric-dialog' },
  );
}
