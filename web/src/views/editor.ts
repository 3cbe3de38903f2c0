/**
 * The widget editor dialog: metric (from the tenant's metrics), stat (the ones the metric has),
 * dimension filter (with the values seen recently), time window, aggregation window (`auto`, or
 * the windows the gateway's planner accepts for that time window, from
 * `GET /v1/metrics/{name}/capabilities`) and visualisation. The gateway validates the widget
 * on save; its message is shown as is.
 */

import { listDimensionValues, metricCapabilities } from '../api';
import { field, h, openDialog } from '../dom';
import { parseDuration } from '../format';
import { STATS, TIME_WINDOWS, VIZ_TYPES } from '../types';
import type { Dimensions, MetricInfo, Stat, VizType, Widget, WidgetDraft } from '../types';

const AGG_WINDOWS = ['1m', '5m', '15m', '1h'];

export function openWidgetEditor(opts: {
  tenant: string;
  metrics: MetricInfo[];
  widget?: Widget;
  save: (draft: WidgetDraft) => Promise<void>;
}): void {
  const { tenant, metrics, widget } = opts;
  openDialog(
    widget ? 'Edit widget' : 'Add widget',
    (form) => {
      const title = h('input', {
        type: 'text',
        name: 'title',
        maxlength: '200',
        placeholder: 'optional',
        value: widget?.title ?? '',
        'data-testid': 'widget-title',
      });
      const metric = h('select', {
        name: 'metric',
        required: true,
        'data-testid': 'widget-metric',
      });
      const names = metrics.map((m) => m.name);
      if (widget && !names.includes(widget.metric_name)) names.unshift(widget.metric_name);
      for (const name of names) {
        const info = metrics.find((m) => m.name === name);
        metric.append(
          h(
            'option',
            { value: name, selected: name === (widget?.metric_name ?? 'events') },
            info?.scope === 'builtin' ? `${name} (built-in)` : name,
          ),
        );
      }
      const stat = h('select', { name: 'stat', 'data-testid': 'widget-stat' });
      const timeWindow = h('select', { name: 'time_window', 'data-testid': 'widget-time-window' });
      const tw = widget?.time_window ?? 'last_1h';
      const windows = TIME_WINDOWS.some((t) => t.value === tw)
        ? TIME_WINDOWS
        : [...TIME_WINDOWS, { value: tw, label: tw }];
      for (const t of windows)
        timeWindow.append(h('option', { value: t.value, selected: t.value === tw }, t.label));
      const aggWindow = h('select', { name: 'window', 'data-testid': 'widget-window' });
      const splitBy = h('select', { name: 'group_by', 'data-testid': 'widget-split' });
      const limit = h('input', {
        type: 'number',
        name: 'limit',
        min: '1',
        max: '100',
        value: String(widget?.limit ?? 10),
        'data-testid': 'widget-limit',
      });
      const viz = h('select', { name: 'viz', 'data-testid': 'widget-viz' });
      const vz = widget?.viz_type === 'gauge' ? 'counter' : (widget?.viz_type ?? 'line_chart');
      for (const v of VIZ_TYPES)
        viz.append(h('option', { value: v.value, selected: v.value === vz }, v.label));
      const dimsBox = h('fieldset', { class: 'dims' });
      const dimInputs = new Map<string, HTMLInputElement>();
      let loadToken = 0;

      const fillForMetric = () => {
        const info = metrics.find((m) => m.name === metric.value);
        const available: readonly Stat[] = info?.stats.length ? info.stats : STATS;
        const wantStat = stat.value || widget?.stat || 'count';
        stat.replaceChildren(
          ...available.map((s) => h('option', { value: s, selected: s === wantStat }, s)),
        );
        if (!available.includes(wantStat as Stat)) stat.value = available[0] ?? 'count';

        fillWindows();
        const wantSplit = splitBy.value || widget?.group_by?.[0] || '';
        splitBy.replaceChildren(
          h('option', { value: '' }, 'none (one series)'),
          ...(info?.dimensions ?? []).map((d) =>
            h('option', { value: d, selected: d === wantSplit }, d),
          ),
        );

        const keep: Dimensions = {};
        for (const [k, input] of dimInputs) if (input.value) keep[k] = input.value;
        const initial = Object.keys(keep).length
          ? keep
          : widget?.metric_name === metric.value
            ? widget.dimensions
            : {};
        dimInputs.clear();
        const dimNames = info?.dimensions ?? Object.keys(initial);
        dimsBox.replaceChildren(h('legend', {}, 'Dimension filter'));
        if (dimNames.length === 0)
          dimsBox.append(h('p', { class: 'hint' }, 'This metric has no dimensions.'));
        for (const d of dimNames) {
          const listId = `dl-${d}-${Math.random().toString(36).slice(2, 7)}`;
          const input = h('input', {
            type: 'text',
            name: `dim-${d}`,
            list: listId,
            placeholder: 'any',
            value: initial[d] ?? '',
            autocomplete: 'off',
            'data-testid': `widget-dim-${d}`,
          });
          dimInputs.set(d, input);
          dimsBox.append(field(d, input), h('datalist', { id: listId }));
        }
        if (dimNames.length > 0)
          dimsBox.append(
            h(
              'small',
              { class: 'hint' },
              'Any filter serves every stat: percentiles and distinct counts merge the stored sketches.',
            ),
          );
        // Suggest values seen in the last 24 hours.
        const token = ++loadToken;
        if (info) {
          const now = Date.now();
          listDimensionValues(tenant, info.name, now - 86_400_000, now)
            .then((values) => {
              if (token !== loadToken) return;
              for (const [d, input] of dimInputs) {
                const list = input.list;
                if (list)
                  list.replaceChildren(
                    ...(values[d] ?? []).slice(0, 200).map((v) => h('option', { value: v })),
                  );
              }
            })
            .catch(() => {
              /* suggestions are optional */
            });
        }
      };
      // The aggregation windows: `auto`, then every window the metric can be served at, those
      // the planner refuses for the chosen time window disabled with its reason.
      let windowToken = 0;
      let chosenWindow = widget?.window ?? '';
      aggWindow.addEventListener('change', () => {
        chosenWindow = aggWindow.value;
      });
      function fillWindows(): void {
        const info = metrics.find((m) => m.name === metric.value);
        const native = info ? info.window_secs * 1000 : 60_000;
        const want = chosenWindow === 'auto' ? '' : chosenWindow;
        const auto = h('option', { value: '' }, 'auto (chosen for the range)');
        const fallback = AGG_WINDOWS.filter((w) => {
          const ms = parseDuration(w)!;
          return ms >= native && ms % native === 0;
        }).map((w) => ({ window: w, allowed: true, reason: null as string | null }));
        const paint = (options: { window: string; allowed: boolean; reason: string | null }[]) => {
          if (want && !options.some((o) => o.window === want))
            options.push({ window: want, allowed: true, reason: null });
          aggWindow.replaceChildren(
            auto,
            ...options.map((o) =>
              h(
                'option',
                {
                  value: o.window,
                  selected: o.window === want,
                  disabled: !o.allowed,
                  title: o.reason ?? '',
                },
                o.allowed ? o.window : `${o.window} (not for this range)`,
              ),
            ),
          );
        };
        paint(fallback);
        if (!info) return;
        const token = ++windowToken;
        metricCapabilities(tenant, info.name, timeWindow.value)
          .then((caps) => {
            if (token !== windowToken) return;
            if (caps.auto) auto.textContent = `auto (${caps.auto.window} for this range)`;
            paint(
              caps.windows.map((w) => ({
                window: w.window,
                allowed: w.allowed ?? true,
                reason: w.reason ?? null,
              })),
            );
          })
          .catch(() => {
            /* the static list stays; the gateway validates on save */
          });
      }
      metric.addEventListener('change', fillForMetric);
      timeWindow.addEventListener('change', fillWindows);
      fillForMetric();

      if (metrics.length <= 1)
        form.append(
          h(
            'p',
            { class: 'hint', 'data-testid': 'widget-more-metrics' },
            'Only the built-in events metric exists. To chart a value, a distinct count or other dimensions, ',
            h(
              'a',
              {
                href: `?tenant=${encodeURIComponent(tenant)}&page=metrics`,
                'data-testid': 'widget-metrics-link',
              },
              'define a metric',
            ),
            ' from the event types seen.',
          ),
        );
      form.append(
        field('Metric', metric),
        field('Statistic', stat),
        dimsBox,
        h(
          'div',
          { class: 'field-row' },
          field('Time window', timeWindow),
          field('Aggregation', aggWindow),
        ),
        h(
          'div',
          { class: 'field-row' },
          field('Split by', splitBy),
          field('Top N (plus other)', limit),
        ),
        field('Visualisation', viz),
        field('Title', title),
      );
      return async () => {
        const dimensions: Dimensions = {};
        for (const [k, input] of dimInputs)
          if (input.value.trim()) dimensions[k] = input.value.trim();
        const draft: WidgetDraft = {
          metric_name: metric.value,
          dimensions,
          stat: stat.value as Stat,
          time_window: timeWindow.value,
          viz_type: viz.value as VizType,
        };
        if (aggWindow.value) draft.window = aggWindow.value;
        if (splitBy.value) {
          draft.group_by = [splitBy.value];
          const n = Number(limit.value);
          if (Number.isInteger(n) && n >= 1) draft.limit = n;
        }
        if (title.value.trim()) draft.title = title.value.trim();
        await opts.save(draft);
        return true;
      };
    },
    { submitLabel: widget ? 'Save widget' : 'Add widget', testId: 'widget-editor' },
  );
}
