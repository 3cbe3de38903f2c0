/** The time-zone picker of the top bar: UTC or the browser's own zone. */

import { h } from '../dom';
import { displayZone } from '../format';
import { browserZoneName, chooseZone } from '../timezone';

/** A labelled select; `changed` runs after the choice was applied and remembered. */
export function zoneControl(changed: () => void): HTMLElement {
  const select = h(
    'select',
    {
      class: 'zone-select',
      id: 'zone-select',
      'data-testid': 'zone-select',
      title: 'Time zone of every time shown (remembered in this browser)',
      onchange: () => {
        chooseZone(select.value === 'utc' ? 'utc' : 'local');
        changed();
      },
    },
    h('option', { value: 'local' }, `Local (${browserZoneName()})`),
    h('option', { value: 'utc' }, 'UTC'),
  );
  select.value = displayZone();
  return h(
    'div',
    { class: 'zone-control' },
    h('label', { class: 'zone-label', for: 'zone-select' }, 'Time zone'),
    select,
  );
}
