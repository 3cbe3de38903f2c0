/** The tenant's dashboards: open, create, rename, delete. */

import { createDashboard, deleteDashboard, listDashboards, renameDashboard } from '../api';
import { field, h, openDialog, replace, toast } from '../dom';
import { formatTimestamp } from '../format';
import type { Dashboard } from '../types';

export function openRenameDialog(tenant: string, d: Dashboard, done: (name: string) => void): void {
  openDialog(
    'Rename dashboard',
    (form) => {
      const name = h('input', {
        type: 'text',
        required: true,
        maxlength: '200',
        value: d.name,
        'data-testid': 'dashboard-name',
      });
      form.append(field('Name', name));
      return async () => {
        const n = name.value.trim();
        if (!n) throw new Error('A name is required');
        await renameDashboard(tenant, d, n);
        done(n);
        return true;
      };
    },
    { submitLabel: 'Rename', testId: 'rename-dialog' },
  );
}

export function openDeleteDialog(tenant: string, d: Dashboard, done: () => void): void {
  openDialog(
    'Delete dashboard',
    (form) => {
      form.append(
        h(
          'p',
          {},
          'Delete ',
          h('strong', {}, d.name),
          ` and its ${d.widgets.length} widget(s)? This cannot be undone.`,
        ),
      );
      return async () => {
        await deleteDashboard(tenant, d.dashboard_id);
        done();
        return true;
      };
    },
    { submitLabel: 'Delete', danger: true, testId: 'delete-dialog' },
  );
}

export function openCreateDialog(tenant: string, done: (d: Dashboard) => void): void {
  openDialog(
    'New dashboard',
    (form) => {
      const name = h('input', {
        type: 'text',
        required: true,
        maxlength: '200',
        placeholder: 'e.g. Checkout overview',
        'data-testid': 'dashboard-name',
      });
      form.append(field('Name', name));
      return async () => {
        const n = name.value.trim();
        if (!n) throw new Error('A name is required');
        done(await createDashboard(tenant, n));
        return true;
      };
    },
    { submitLabel: 'Create', testId: 'create-dialog' },
  );
}

export class ListView {
  readonly root = h('section', { class: 'list-view', 'aria-labelledby': 'list-title' });
  private readonly abort = new AbortController();

  constructor(
    private readonly tenant: string,
    private readonly open: (id: string) => void,
    /** Called with the list once loaded; returning true means another view took over. */
    private readonly loaded: (dashboards: Dashboard[]) => boolean = () => false,
  ) {}

  async load(): Promise<void> {
    replace(this.root, this.toolbar(), h('p', { class: 'muted' }, 'Loading dashboards…'));
    let dashboards: Dashboard[];
    try {
      dashboards = await listDashboards(this.tenant, this.abort.signal);
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') return;
      replace(
        this.root,
        this.toolbar(),
        h(
          'p',
          { class: 'form-error', role: 'alert' },
          `Could not load dashboards: ${err instanceof Error ? err.message : String(err)}`,
        ),
        h('button', { class: 'btn', type: 'button', onclick: () => void this.load() }, 'Retry'),
      );
      return;
    }
    if (this.loaded(dashboards)) return;
    if (dashboards.length === 0) {
      replace(
        this.root,
        this.toolbar(),
        h(
          'div',
          { class: 'empty' },
          h('p', {}, `Tenant “${this.tenant}” has no dashboards yet.`),
          h('p', { class: 'muted' }, 'Create one, add widgets, and watch your metrics live.'),
        ),
      );
      return;
    }
    const rows = dashboards.map((d) =>
      h(
        'tr',
        { 'data-dashboard-id': d.dashboard_id },
        h(
          'td',
          {},
          h(
            'a',
            {
              href: `?tenant=${encodeURIComponent(this.tenant)}&dashboard=${encodeURIComponent(d.dashboard_id)}`,
              class: 'dash-link',
              onclick: (e: MouseEvent) => this.follow(e, d.dashboard_id),
            },
            d.name,
          ),
        ),
        h('td', { class: 'num' }, String(d.widgets.length)),
        h('td', { class: 'muted' }, d.updated_at ? formatTimestamp(Date.parse(d.updated_at)) : ''),
        h(
          'td',
          { class: 'row-actions' },
          h(
            'button',
            {
              class: 'btn btn-small',
              type: 'button',
              onclick: () => openRenameDialog(this.tenant, d, () => void this.load()),
            },
            'Rename',
          ),
          h(
            'button',
            {
              class: 'btn btn-small btn-danger-ghost',
              type: 'button',
              onclick: () =>
                openDeleteDialog(this.tenant, d, () => {
                  toast(`Deleted “${d.name}”`);
                  void this.load();
                }),
            },
            'Delete',
          ),
        ),
      ),
    );
    replace(
      this.root,
      this.toolbar(),
      h(
        'table',
        { class: 'data-table dash-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'Name'),
            h('th', { scope: 'col', class: 'num' }, 'Widgets'),
            h('th', { scope: 'col' }, 'Updated'),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')),
          ),
        ),
        h('tbody', {}, rows),
      ),
    );
  }

  private follow(e: MouseEvent, id: string): void {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    this.open(id);
  }

  private toolbar(): HTMLElement {
    return h(
      'div',
      { class: 'toolbar' },
      h('h1', { id: 'list-title' }, 'Dashboards'),
      h('div', { class: 'spacer' }),
      h(
        'button',
        {
          class: 'btn btn-primary',
          type: 'button',
          'data-testid': 'new-dashboard',
          onclick: () => openCreateDialog(this.tenant, (d) => this.open(d.dashboard_id)),
        },
        '+ New dashboard',
      ),
    );
  }

  dispose(): void {
    this.abort.abort();
  }
}
