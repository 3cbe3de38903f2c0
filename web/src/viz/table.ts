/** The widget's windows as a table, newest first, with each window's state. */

import { formatValue, formatWindow, spansDays } from '../format';
import { h, infoTip, replace } from '../dom';
import { isRevised } from '../series';
import type { Viz, VizContext } from './viz';

const MAX_ROWS = 60;

export class TableViz implements Viz {
  private readonly body = h('tbody');

  constructor(host: HTMLElement) {
    host.append(
      h(
        'div',
        { class: 'table-wrap', tabindex: '0', 'aria-label': 'Windows' },
        h(
          'table',
          { class: 'data-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Window'),
              h('th', { scope: 'col', class: 'num' }, 'Value'),
              h('th', { scope: 'col' }, 'State'),
            ),
          ),
          this.body,
        ),
      ),
    );
  }

  render(ctx: VizContext): void {
    const rows = ctx.points
      .filter((p) => p.end > ctx.from && p.start < ctx.to)
      .slice(-MAX_ROWS)
      .reverse();
    if (rows.length === 0) {
      replace(
        this.body,
        h(
          'tr',
          {},
          h('td', { colspan: '3', class: 'muted' }, 'No windows with data in this range'),
        ),
      );
      return;
    }
    const dated = spansDays(ctx.to - ctx.from);
    replace(
      this.body,
      rows.map((p) => {
        const state = !p.final
          ? h('span', { class: 'badge badge-provisional' }, 'provisional')
          : isRevised(p)
            ? infoTip(
                `revised r${p.revision}`,
                `Corrected ${p.revision} time(s) after it was final: ${p.lateCount} late event(s) merged.`,
                { class: 'revised-mark' },
              )
            : h('span', { class: 'muted' }, 'final');
        const breach = ctx.rules.some((r) => r.state === 'firing') && p === rows[0];
        return h(
          'tr',
          { class: p.final ? '' : 'row-provisional' },
          h('td', {}, formatWindow(p.start, p.end, dated)),
          h('td', { class: `num${breach ? ' is-firing' : ''}` }, formatValue(p.value, ctx.unit)),
          h('td', {}, state),
        );
      }),
    );
  }

  resize(): void {
    // The table flows with its panel.
  }

  destroy(): void {
    // Nothing beyond the DOM, which the panel removes.
  }
}
