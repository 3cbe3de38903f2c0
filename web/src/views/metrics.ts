/**
 * The metrics page: the tenant's metric definitions (with the built-in `events`), each shown
 * in full, created, edited and deleted through `/v1/metric-definitions`; and the event types
 * seen recently (`/v1/event-types`), which feed the editor's pickers.
 */

import { h, replace, toast } from '../dom';
import {
  deleteDefinition,
  listDefinitions,
  listEventTypes,
  type DefinitionOut,
  type EventTypes,
} from '../metrics-api';
import { backfillProgress, isActive } from './backfill-progress';
import { openDeleteMetricDialog, openMetricEditor, windowLabel } from './metric-editor';

/** How often the page reads the definitions again while a backfill runs. */
const BACKFILL_POLL_MS = 2000;

export class MetricsView {
  readonly root = h('section', { class: 'metrics-view', 'aria-labelledby': 'metrics-title' });
  private readonly abort = new AbortController();
  private schema: EventTypes | null = null;
  private backfillTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly tenant: string,
    private readonly editable: boolean,
  ) {}

  async load(): Promise<void> {
    replace(this.root, this.toolbar(), h('p', { class: 'muted' }, 'Loading metrics…'));
    let definitions: DefinitionOut[];
    try {
      const [defs, schema] = await Promise.all([
        listDefinitions(this.tenant, this.abort.signal),
        listEventTypes(this.tenant, this.abort.signal).catch((err: unknown) => {
          if (err instanceof DOMException && err.name === 'AbortError') throw err;
          return null;
        }),
      ]);
      definitions = defs;
      this.schema = schema;
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') return;
      replace(
        this.root,
        this.toolbar(),
        h(
          'p',
          { class: 'form-error', role: 'alert' },
          `Could not load metrics: ${err instanceof Error ? err.message : String(err)}`,
        ),
        h('button', { class: 'btn', type: 'button', onclick: () => void this.load() }, 'Retry'),
      );
      return;
    }
    replace(
      this.root,
      this.toolbar(),
      h(
        'div',
        { class: 'metric-list', 'data-testid': 'metric-list' },
        definitions.map((d) => this.card(d)),
      ),
      this.eventTypes(),
    );
    this.followBackfills(definitions);
  }

  /** Reads the definitions again every 2 s while a backfill is queued or running, and
   * updates the progress shown on the cards. */
  private followBackfills(definitions: DefinitionOut[]): void {
    clearTimeout(this.backfillTimer);
    if (!definitions.some((d) => d.backfill && isActive(d.backfill))) return;
    this.backfillTimer = setTimeout(() => {
      listDefinitions(this.tenant, this.abort.signal)
        .then((defs) => {
          for (const d of defs) {
            const card = this.root.querySelector(`[data-metric="${CSS.escape(d.name)}"]`);
            const shown = card?.querySelector('.backfill');
            if (card && d.backfill) {
              const progress = backfillProgress(d.name, d.backfill);
              if (shown) shown.replaceWith(progress);
              else card.append(progress);
            }
          }
          this.followBackfills(defs);
        })
        .catch((err: unknown) => {
          if (err instanceof DOMException && err.name === 'AbortError') return;
          this.followBackfills(definitions);
        });
    }, BACKFILL_POLL_MS);
  }

  private card(d: DefinitionOut): HTMLElement {
    const scope =
      d.scope === 'builtin' ? 'built-in' : d.scope === 'global' ? 'every tenant' : 'this tenant';
    const row = (label: string, value: string | null | undefined) =>
      value ? [h('dt', {}, label), h('dd', {}, value)] : [];
    const sets = d.dimension_sets.map((s) => (s.length ? s.join(' × ') : 'total')).join(', ');
    return h(
      'article',
      { class: 'metric-card', 'data-metric': d.name, 'data-testid': `metric-${d.name}` },
      h(
        'header',
        { class: 'metric-card-head' },
        h('h2', {}, d.name),
        h('span', { class: 'badge' }, scope),
        h('div', { class: 'spacer' }),
        this.editable && !d.read_only
          ? [
              h(
                'button',
                {
                  class: 'btn btn-small',
                  type: 'button',
                  'data-testid': `edit-metric-${d.name}`,
                  onclick: () => this.edit(d),
                },
                'Edit',
              ),
              h(
                'button',
                {
                  class: 'btn btn-small btn-danger-ghost',
                  type: 'button',
                  'data-testid': `delete-metric-${d.name}`,
                  onclick: () =>
                    openDeleteMetricDialog(d.name, async () => {
                      await deleteDefinition(this.tenant, d.name);
                      toast(`Deleted metric “${d.name}”`);
                      void this.load();
                    }),
                },
                'Delete',
              ),
            ]
          : null,
      ),
      d.description ? h('p', { class: 'muted' }, d.description) : null,
      h(
        'dl',
        { class: 'metric-def' },
        row('Event type', d.event_type === '*' ? '* (every type)' : d.event_type),
        row('Counts', 'events'),
        row('Value field', d.field ?? null),
        row('Distinct count of', d.unique ?? null),
        row('Dimensions', d.dimensions?.length ? d.dimensions.join(', ') : 'none'),
        row('Kept', sets),
        row('Window', windowLabel(d.window_secs)),
      ),
      d.backfill ? backfillProgress(d.name, d.backfill) : null,
    );
  }

  private eventTypes(): HTMLElement {
    const section = h(
      'section',
      { class: 'schema', 'aria-labelledby': 'schema-title', 'data-testid': 'event-types' },
      h('h2', { id: 'schema-title' }, 'Event types seen (last 24 hours)'),
    );
    const schema = this.schema;
    if (!schema) {
      section.append(h('p', { class: 'muted' }, 'Schema discovery is unavailable right now.'));
      return section;
    }
    if (schema.event_types.length === 0) {
      section.append(
        h(
          'p',
          { class: 'muted' },
          'No events seen yet. Send events to an edge agent (POST /v1/events); their types and properties appear here within seconds.',
        ),
      );
      return section;
    }
    for (const t of schema.event_types) {
      section.append(
        h(
          'details',
          {
            class: 'schema-type',
            'data-event-type': t.event_type,
            open: schema.event_types.length <= 3,
          },
          h(
            'summary',
            {},
            h('strong', {}, t.event_type),
            h('span', { class: 'muted' }, ` · ${t.events.toLocaleString()} events`),
          ),
          h(
            'table',
            { class: 'data-table' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'Property'),
                h('th', { scope: 'col' }, 'Kind'),
                h('th', { scope: 'col', class: 'num' }, 'Distinct (approx.)'),
                h('th', { scope: 'col' }, 'Examples'),
              ),
            ),
            h(
              'tbody',
              {},
              t.properties.map((p) =>
                h(
                  'tr',
                  { 'data-property': p.name },
                  h('td', {}, p.name),
                  h('td', {}, p.kinds.join(', ')),
                  h('td', { class: 'num' }, p.distinct_estimate.toLocaleString()),
                  h('td', { class: 'muted' }, p.examples.join(', ')),
                ),
              ),
            ),
          ),
          t.properties_dropped > 0
            ? h(
                'p',
                { class: 'hint' },
                `${t.properties_dropped.toLocaleString()} property values beyond the agents' property limit were not recorded.`,
              )
            : null,
        ),
      );
    }
    if (schema.event_types_dropped > 0)
      section.append(
        h(
          'p',
          { class: 'hint' },
          `${schema.event_types_dropped.toLocaleString()} events of further event types were not recorded (limit per tenant).`,
        ),
      );
    return section;
  }

  private toolbar(): HTMLElement {
    return h(
      'div',
      { class: 'toolbar' },
      h('h1', { id: 'metrics-title' }, 'Metrics'),
      h('div', { class: 'spacer' }),
      this.editable
        ? h(
            'button',
            {
              class: 'btn btn-primary',
              type: 'button',
              'data-testid': 'new-metric',
              onclick: () => this.edit(),
            },
            '+ New metric',
          )
        : null,
    );
  }

  private edit(d?: DefinitionOut): void {
    openMetricEditor({
      tenant: this.tenant,
      schema: this.schema,
      ...(d ? { definition: d } : {}),
      saved: (name) => {
        toast(d ? `Saved metric “${name}”` : `Created metric “${name}”`);
        void this.load();
      },
    });
  }

  dispose(): void {
    clearTimeout(this.backfillTimer);
    this.abort.abort();
  }
}
