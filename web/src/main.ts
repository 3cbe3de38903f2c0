/**
 * rtdash web: pick a tenant, manage dashboards, watch them live.
 *
 * URL: `?tenant=<id>` (remembered in localStorage), `&dashboard=<id>` (deep link),
 * `&range=15m|1h|6h|24h` or `&from=<RFC 3339>&to=<RFC 3339>` (historical), `&tv=1` (wall screen),
 * `&page=alerts` (the alert rules), `&alert=<id>` (one rule), `&page=metrics` (metric
 * definitions and the event types seen), `&page=quality` (accepted, rejected and late events).
 */

import 'uplot/dist/uPlot.min.css';
import './styles.css';
import {
  addWidget,
  ApiError,
  deleteWidget,
  embedToken,
  SIGNED_OUT_EVENT,
  updateWidget,
  useLinkToken,
} from './api';
import { field, h, openDialog, replace, toast } from './dom';
import { formatDateTime, fromLocalInput, toLocalInput } from './format';
import { applyStoredZone, zoneName } from './timezone';
import { zoneControl } from './views/zone-control';
import { TENANT_RE, tenantNotice, tenantRefusal, unknownTenant } from './views/tenant-check';
import { applyTheme, currentTheme, safeGet, safeSet, saveTheme, storedTheme } from './theme';
import type { Dashboard, TimeRange, Widget } from './types';
import { DashboardView } from './views/dashboard';
import { openWidgetEditor } from './views/editor';
import { ListView, openDeleteDialog, openRenameDialog } from './views/list';
import { PAGES, pageOf, type PageKey, type PageView } from './pages';
import {
  canEdit,
  currentSession,
  endedSessionNotice,
  type SessionInfo,
  signIn,
  signOut,
  takeFragmentKey,
} from './session';
import { signInPage } from './views/signin';
import { AlertsView } from './views/alerts';
import { AlertDetailView } from './views/alert-detail';

const TENANT_KEY = 'rtdash.tenant';
const LAST_DASHBOARD_KEY = 'rtdash.lastDashboard.';
/** The tenant shown when none was chosen: the demo stack's (`./deploy/up.sh`). */
const DEFAULT_TENANT = 'demo';
const RECENT_KEY = 'rtdash.recentTenants';

const PRESETS: { key: string; label: string; ms: number }[] = [
  { key: '15m', label: '15m', ms: 15 * 60_000 },
  { key: '1h', label: '1h', ms: 3_600_000 },
  { key: '6h', label: '6h', ms: 6 * 3_600_000 },
  { key: '24h', label: '24h', ms: 24 * 3_600_000 },
];

interface Route {
  tenant: string | null;
  /** The tenant the address or the tenant field asked for, as given (checked in `render`). */
  requested: string | null;
  dashboard: string | null;
  range: TimeRange;
  tv: boolean;
  /** A page other than dashboards: `alerts` (the alert rules) or one of `PAGES`. */
  page: 'alerts' | PageKey | null;
  /** One alert rule's page. */
  alert: string | null;
}

function readRoute(): Route {
  const q = new URLSearchParams(location.search);
  let tenant = q.get('tenant');
  if (tenant !== null && !TENANT_RE.test(tenant)) tenant = null;
  if (tenant === null) {
    const saved = safeGet(TENANT_KEY);
    tenant = saved && TENANT_RE.test(saved) ? saved : DEFAULT_TENANT;
  }
  let range: TimeRange = { kind: 'widget' };
  const preset = PRESETS.find((p) => p.key === q.get('range'));
  if (preset) range = { kind: 'preset', ms: preset.ms, label: preset.label };
  const from = Date.parse(q.get('from') ?? '');
  const to = Date.parse(q.get('to') ?? '');
  if (Number.isFinite(from) && Number.isFinite(to) && to > from)
    range = { kind: 'custom', from, to };
  const pageParam = q.get('page');
  const page = pageParam === 'alerts' ? pageParam : (pageOf(pageParam)?.key ?? null);
  return {
    tenant,
    requested: q.get('tenant'),
    dashboard: q.get('dashboard'),
    range,
    tv: q.get('tv') === '1',
    page,
    alert: q.get('alert'),
  };
}

function routeUrl(r: Route): string {
  const q = new URLSearchParams();
  if (r.tenant) q.set('tenant', r.tenant);
  if (r.dashboard) q.set('dashboard', r.dashboard);
  if (r.dashboard && r.range.kind === 'preset') q.set('range', r.range.label);
  if (r.dashboard && r.range.kind === 'custom') {
    q.set('from', new Date(r.range.from).toISOString());
    q.set('to', new Date(r.range.to).toISOString());
  }
  if (r.tv) q.set('tv', '1');
  if (r.alert) q.set('alert', r.alert);
  else if (r.page) q.set('page', r.page);
  const s = q.toString();
  return s ? `?${s}` : location.pathname;
}

function recentTenants(): string[] {
  try {
    const v: unknown = JSON.parse(safeGet(RECENT_KEY) ?? '[]');
    return Array.isArray(v)
      ? v.filter((x): x is string => typeof x === 'string' && TENANT_RE.test(x)).slice(0, 10)
      : [];
  } catch {
    return [];
  }
}

function rememberTenant(t: string): void {
  safeSet(TENANT_KEY, t);
  safeSet(RECENT_KEY, JSON.stringify([t, ...recentTenants().filter((x) => x !== t)].slice(0, 10)));
}

class App {
  constructor(private readonly session: SessionInfo) {}

  private route = readRoute();
  /** Repaints the custom range's label (after a time-zone change). */
  private paintRange: (() => void) | null = null;
  /** The first render may open the tenant's home dashboard; later navigation never does. */
  private firstRender = true;
  private view: DashboardView | ListView | AlertsView | AlertDetailView | PageView | null = null;
  private readonly main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  private readonly crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' });
  private readonly pill = h('span', {
    class: 'pill',
    role: 'status',
    'aria-live': 'polite',
    'data-testid': 'connection',
    hidden: true,
  });
  private readonly tenantInput = h('input', {
    type: 'text',
    class: 'tenant-input',
    name: 'tenant',
    list: 'tenant-list',
    autocomplete: 'off',
    spellcheck: 'false',
    pattern: '[A-Za-z0-9_\\-]{1,128}',
    placeholder: 'tenant id',
    'aria-label': 'Tenant',
    'data-testid': 'tenant-input',
  });
  private readonly tenantList = h('datalist', { id: 'tenant-list' });
  private readonly themeBtn = h('button', {
    class: 'icon-btn',
    type: 'button',
    'data-testid': 'theme-toggle',
    onclick: () => this.toggleTheme(),
  });
  private readonly tvBtn = h(
    'button',
    {
      class: 'icon-btn',
      type: 'button',
      'aria-pressed': 'false',
      'data-testid': 'tv-toggle',
      onclick: () => this.toggleTv(),
    },
    'TV',
  );

  /** An embedded dashboard (a dashboard link): that dashboard only, read-only, no navigation. */
  private get embedded(): boolean {
    return this.session.kind === 'link';
  }

  start(): void {
    applyTheme(storedTheme());
    // A tenant's key sees its own tenant only; a viewer key changes nothing.
    if (this.session.tenant_id) this.route.tenant = this.session.tenant_id;
    document.body.classList.toggle('readonly', !canEdit(this.session));
    document.body.classList.toggle('embed', this.embedded);
    const who =
      this.session.kind === 'operator'
        ? 'operator'
        : `${this.session.name ?? 'key'} (${this.session.role ?? '?'})`;
    const signOutBtn = h(
      'button',
      {
        class: 'btn btn-small',
        type: 'button',
        title: `Signed in as ${who}`,
        'data-testid': 'sign-out',
        onclick: () => {
          void signOut().then(() => location.reload());
        },
      },
      'Sign out',
    );
    window.addEventListener(SIGNED_OUT_EVENT, () => {
      this.view?.dispose();
      this.view = null;
      replace(this.crumbs);
      if (this.embedded) {
        replace(
          this.main,
          h(
            'section',
            { class: 'welcome', 'data-testid': 'link-ended' },
            h('h1', {}, 'This dashboard link no longer works'),
            h(
              'p',
              { class: 'muted' },
              'It was revoked or it expired. Ask whoever shared it for a new one.',
            ),
          ),
        );
        return;
      }
      replace(
        this.main,
        signInPage(
          () => location.reload(),
          'Your session ended (signed out, expired, or its key was revoked). Sign in again.',
        ),
      );
    });
    const tenantForm = h(
      'form',
      {
        class: 'tenant-form',
        role: 'search',
        onsubmit: (e: Event) => {
          e.preventDefault();
          const t = this.tenantInput.value.trim();
          if (!TENANT_RE.test(t))
            return toast('A tenant id is 1–128 characters from A–Z, a–z, 0–9, _ and -', 'error');
          this.navigate({ tenant: t, requested: t, dashboard: null });
        },
      },
      h('label', { class: 'tenant-label', for: 'tenant-input' }, 'Tenant'),
      this.tenantInput,
      this.tenantList,
      h('button', { class: 'btn btn-small', type: 'submit' }, 'Open'),
    );
    this.tenantInput.id = 'tenant-input';
    const header = h(
      'header',
      { class: 'topbar' },
      h('a', { class: 'skip', href: '#main' }, 'Skip to content'),
      h(
        'a',
        {
          class: 'brand',
          href: '?',
          onclick: (e: MouseEvent) => this.go(e, { dashboard: null, page: null }),
        },
        h('span', { class: 'brand-dot', 'aria-hidden': 'true' }),
        'rtdash',
      ),
      this.crumbs,
      h(
        'nav',
        { class: 'nav-links', 'aria-label': 'Pages' },
        h(
          'a',
          {
            class: 'nav-link',
            href: '?',
            'data-testid': 'nav-dashboards',
            onclick: (e: MouseEvent) => this.go(e, { dashboard: null }),
          },
          'Dashboards',
        ),
        h(
          'a',
          {
            class: 'nav-link',
            href: '?page=alerts',
            'data-testid': 'nav-alerts',
            onclick: (e: MouseEvent) => this.go(e, { dashboard: null, page: 'alerts' }),
          },
          'Alerts',
        ),
        PAGES.map((p) =>
          h(
            'a',
            {
              class: 'nav-link',
              href: `?page=${p.key}`,
              'data-testid': `nav-${p.key}`,
              onclick: (e: MouseEvent) => this.go(e, { dashboard: null, page: p.key }),
            },
            p.label,
          ),
        ),
      ),
      h('div', { class: 'spacer' }),
      this.pill,
      zoneControl(() => this.repaintTimes()),
      h('div', { class: 'edit-only' }, tenantForm),
      this.themeBtn,
      this.tvBtn,
      ...(this.embedded ? [] : [signOutBtn]),
    );
    document.body.append(header, this.main);
    window.addEventListener('popstate', () => {
      this.route = readRoute();
      this.render();
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.route.tv && !document.querySelector('dialog[open]'))
        this.toggleTv();
    });
    this.render();
  }

  private go(e: MouseEvent, change: Partial<Route>): void {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    this.navigate(change);
  }

  private navigate(change: Partial<Route>, replaceState = false): void {
    // Pages other than dashboards are left unless the change names them.
    this.route = { ...this.route, page: null, alert: null, requested: null, ...change };
    if (change.dashboard !== undefined && change.range === undefined && change.dashboard === null)
      this.route.range = { kind: 'widget' };
    const u = routeUrl(this.route);
    if (replaceState) history.replaceState(null, '', u);
    else history.pushState(null, '', u);
    this.render();
  }

  private toggleTheme(): void {
    const next = currentTheme() === 'dark' ? 'light' : 'dark';
    applyTheme(next);
    saveTheme(next);
    this.syncChrome();
    if (this.view instanceof DashboardView) this.view.repaint();
  }

  /** The time zone changed: times on the page are drawn again in it. */
  private repaintTimes(): void {
    if (this.view instanceof DashboardView) {
      this.view.repaint();
      this.paintRange?.();
    } else this.render();
  }

  private toggleTv(): void {
    this.route.tv = !this.route.tv;
    history.replaceState(null, '', routeUrl(this.route));
    this.syncChrome();
  }

  private syncChrome(): void {
    const dark = currentTheme() === 'dark';
    this.themeBtn.textContent = dark ? '☀' : '☾';
    this.themeBtn.title = dark ? 'Light theme' : 'Dark theme';
    this.themeBtn.setAttribute(
      'aria-label',
      dark ? 'Switch to light theme' : 'Switch to dark theme',
    );
    document.body.classList.toggle('tv', this.route.tv);
    this.tvBtn.setAttribute('aria-pressed', String(this.route.tv));
    this.tvBtn.title = this.route.tv
      ? 'Leave TV mode (Esc)'
      : 'TV mode: wall screen, no edit controls';
    this.tvBtn.setAttribute('aria-label', this.tvBtn.title);
  }

  private render(): void {
    this.view?.dispose();
    this.view = null;
    this.pill.hidden = true;
    delete this.pill.dataset.state;
    this.syncChrome();
    if (this.session.tenant_id) this.route.tenant = this.session.tenant_id;
    if (this.embedded && this.session.dashboard_id)
      this.route.dashboard = this.session.dashboard_id;
    const { tenant } = this.route;
    this.tenantInput.value = tenant ?? '';
    const refusal = tenantRefusal(this.session, this.route.requested);
    if (refusal) return this.showTenantProblem(refusal);
    replace(this.tenantList, ...recentTenants().map((t) => h('option', { value: t })));
    if (!tenant) {
      replace(this.crumbs);
      document.title = 'rtdash';
      replace(this.main, this.tenantPicker());
      return;
    }
    rememberTenant(tenant);
    replace(this.tenantList, ...recentTenants().map((t) => h('option', { value: t })));
    const home = this.firstRender && !this.route.dashboard;
    this.firstRender = false;
    if (this.route.alert) this.showAlert(tenant, this.route.alert);
    else if (this.route.page === 'alerts') this.showAlerts(tenant);
    else if (this.route.page && !this.route.dashboard) this.showPage(tenant, this.route.page);
    else if (this.route.dashboard) {
      safeSet(LAST_DASHBOARD_KEY + tenant, this.route.dashboard);
      this.showDashboard(tenant, this.route.dashboard);
    } else this.showList(tenant, home);
  }

  /** Says why the tenant cannot be shown, with a way on. */
  private showTenantProblem(message: string): void {
    replace(this.crumbs);
    document.title = 'Tenant not available · rtdash';
    const open = (t: string) => this.navigate({ tenant: t, requested: t, dashboard: null });
    replace(
      this.main,
      tenantNotice(message, this.session, open, () => this.tenantPicker()),
    );
  }

  /** The operator may name any tenant: one that does not exist is said so, not shown empty. */
  private checkTenant(tenant: string, view: NonNullable<App['view']>): void {
    void unknownTenant(this.session, tenant).then((problem) => {
      if (problem && this.view === view) this.showTenantProblem(problem);
    });
  }

  private tenantPicker(): HTMLElement {
    const input = h('input', {
      type: 'text',
      required: true,
      pattern: '[A-Za-z0-9_\\-]{1,128}',
      list: 'tenant-list',
      placeholder: 'e.g. acme',
      autocomplete: 'off',
      'data-testid': 'tenant-picker-input',
    });
    return h(
      'section',
      { class: 'welcome' },
      h('h1', {}, 'Choose a tenant'),
      h('p', { class: 'muted' }, 'Dashboards, metrics and alert rules belong to a tenant.'),
      h(
        'form',
        {
          class: 'welcome-form',
          onsubmit: (e: Event) => {
            e.preventDefault();
            const t = input.value.trim();
            if (TENANT_RE.test(t)) this.navigate({ tenant: t, requested: t, dashboard: null });
          },
        },
        field('Tenant id', input, 'Letters, digits, _ and -'),
        h('button', { class: 'btn btn-primary', type: 'submit' }, 'Open'),
      ),
    );
  }

  /**
   * The tenant's dashboards. With `home` (the app was opened without a dashboard), the
   * tenant's home dashboard opens instead: the one last viewed here, else its only one.
   */
  private showList(tenant: string, home = false): void {
    document.title = `Dashboards · ${tenant} · rtdash`;
    replace(this.crumbs, h('span', { class: 'crumb' }, tenant));
    const view = new ListView(
      tenant,
      (id) => this.navigate({ dashboard: id }),
      (dashboards) => {
        if (!home || this.view !== view) return false;
        const last = safeGet(LAST_DASHBOARD_KEY + tenant);
        const pick =
          dashboards.find((d) => d.dashboard_id === last) ??
          (dashboards.length === 1 ? dashboards[0] : undefined);
        if (!pick) return false;
        this.navigate({ dashboard: pick.dashboard_id }, true);
        return true;
      },
    );
    this.view = view;
    replace(this.main, view.root);
    void view.load();
    this.checkTenant(tenant, view);
  }

  private alertsCrumbs(tenant: string, current?: string): void {
    const link = h(
      'a',
      {
        class: 'crumb',
        href: `?tenant=${encodeURIComponent(tenant)}&page=alerts`,
        onclick: (e: MouseEvent) => this.go(e, { page: 'alerts' }),
      },
      'Alerts',
    );
    replace(
      this.crumbs,
      h('span', { class: 'crumb' }, tenant),
      h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/'),
      current ? link : h('span', { class: 'crumb', 'aria-current': 'page' }, 'Alerts'),
      current ? h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/') : null,
      current ? h('span', { class: 'crumb', 'aria-current': 'page' }, current) : null,
    );
  }

  /** The tenant's alert rules. */
  private showAlerts(tenant: string): void {
    document.title = `Alerts · ${tenant} · rtdash`;
    this.alertsCrumbs(tenant);
    const view = new AlertsView(tenant, (id) => this.navigate({ alert: id }));
    this.view = view;
    replace(this.main, view.root);
    void view.load();
  }

  /** One alert rule: state per series, history, test notification, silences. */
  private showAlert(tenant: string, id: string): void {
    this.alertsCrumbs(tenant, '…');
    const view = new AlertDetailView(tenant, id, {
      back: () => this.navigate({ page: 'alerts' }),
      loaded: (r) => {
        const name = r.name || r.alert_id;
        document.title = `${name} · Alerts · rtdash`;
        this.alertsCrumbs(tenant, name);
      },
    });
    this.view = view;
    replace(this.main, view.root);
    void view.load();
  }

  /** One of `PAGES`. */
  private showPage(tenant: string, key: PageKey): void {
    const page = pageOf(key);
    if (!page) return;
    document.title = `${page.label} · ${tenant} · rtdash`;
    replace(
      this.crumbs,
      h(
        'a',
        {
          class: 'crumb',
          href: `?tenant=${encodeURIComponent(tenant)}`,
          onclick: (e: MouseEvent) => this.go(e, { dashboard: null, page: null }),
        },
        tenant,
      ),
      h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/'),
      h('span', { class: 'crumb', 'aria-current': 'page' }, page.label),
    );
    const view = page.make(tenant, canEdit(this.session));
    this.view = view;
    replace(this.main, view.root);
    void view.load();
  }

  private showDashboard(tenant: string, id: string): void {
    const title = h('h1', { class: 'dash-title', 'data-testid': 'dashboard-title' }, '…');
    const rangeBar = this.rangeControls();
    const editWidget = (w?: Widget) => {
      openWidgetEditor({
        tenant,
        metrics: view.metricList,
        ...(w ? { widget: w } : {}),
        save: async (draft) => {
          if (w) await updateWidget(tenant, id, w.widget_id, draft);
          else await addWidget(tenant, id, draft);
          await view.reload();
        },
      });
    };
    const view: DashboardView = new DashboardView(tenant, id, this.route.range, {
      edit: (w) => editWidget(w),
      remove: (w) =>
        openDialog(
          'Remove widget',
          (form) => {
            form.append(
              h(
                'p',
                {},
                'Remove ',
                h('strong', {}, w.title || w.metric_name),
                ' from this dashboard?',
              ),
            );
            return async () => {
              await deleteWidget(tenant, id, w.widget_id);
              await view.reload();
              return true;
            };
          },
          { submitLabel: 'Remove', danger: true, testId: 'remove-dialog' },
        ),
      connection: (state, detail) => {
        this.pill.hidden = false;
        this.pill.title = detail;
        if (this.pill.dataset.state === state) return; // announced once per change (aria-live)
        this.pill.className = `pill pill-${state}`;
        this.pill.dataset.state = state;
        this.pill.textContent =
          state === 'open'
            ? 'live'
            : state === 'historical'
              ? 'historical'
              : state === 'connecting'
                ? 'connecting'
                : 'offline';
      },
      gone: () => {
        toast('This dashboard was deleted');
        this.navigate({ dashboard: null }, true);
      },
      loaded: (d: Dashboard) => {
        title.textContent = d.name;
        document.title = `${d.name} · rtdash`;
        replace(
          this.crumbs,
          h(
            'a',
            {
              class: 'crumb',
              href: `?tenant=${encodeURIComponent(tenant)}`,
              onclick: (e: MouseEvent) => this.go(e, { dashboard: null }),
            },
            tenant,
          ),
          h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/'),
          h('span', { class: 'crumb', 'aria-current': 'page' }, d.name),
        );
      },
    });
    this.view = view;
    // Disabled until the dashboard and the tenant's metrics are loaded: the widget editor
    // offers those metrics.
    const addWidgetBtn = h(
      'button',
      {
        class: 'btn btn-primary edit-only',
        type: 'button',
        disabled: true,
        title: 'Loading the dashboard…',
        'data-testid': 'add-widget',
        onclick: () => editWidget(),
      },
      '+ Add widget',
    );
    const toolbar = h(
      'div',
      { class: 'toolbar' },
      title,
      h(
        'div',
        { class: 'edit-only toolbar-group' },
        h(
          'button',
          {
            class: 'btn btn-small',
            type: 'button',
            'data-testid': 'rename-dashboard',
            onclick: () =>
              view.current &&
              openRenameDialog(tenant, view.current, (n) => {
                title.textContent = n;
                void view.reload();
              }),
          },
          'Rename',
        ),
        h(
          'button',
          {
            class: 'btn btn-small btn-danger-ghost',
            type: 'button',
            'data-testid': 'delete-dashboard',
            onclick: () =>
              view.current &&
              openDeleteDialog(tenant, view.current, () => {
                toast('Dashboard deleted');
                this.navigate({ dashboard: null });
              }),
          },
          'Delete',
        ),
      ),
      h('div', { class: 'spacer' }),
      rangeBar,
      addWidgetBtn,
    );
    replace(this.main, h('section', { class: 'dash-view' }, toolbar, view.grid));
    this.checkTenant(tenant, view);
    view
      .load()
      .then(() => {
        addWidgetBtn.disabled = false;
        addWidgetBtn.removeAttribute('title');
      })
      .catch((err: unknown) => {
        if (err instanceof DOMException && err.name === 'AbortError') return;
        const msg =
          err instanceof ApiError && err.status === 404
            ? `tenant “${tenant}” has no dashboard “${id}” (deleted, or a link of another tenant)`
            : err instanceof Error
              ? err.message
              : String(err);
        replace(
          this.main,
          h(
            'div',
            { class: 'empty' },
            h('p', { class: 'form-error', role: 'alert' }, `Could not open the dashboard: ${msg}`),
            h(
              'a',
              {
                href: `?tenant=${encodeURIComponent(tenant)}`,
                onclick: (e: MouseEvent) => this.go(e, { dashboard: null }),
              },
              'Back to dashboards',
            ),
          ),
        );
      });
  }

  private rangeControls(): HTMLElement {
    const group = h('div', { class: 'seg', role: 'group', 'aria-label': 'Time range' });
    const custom = h('span', { class: 'custom-range-label muted' });
    const set = (range: TimeRange) => {
      this.route.range = range;
      history.replaceState(null, '', routeUrl(this.route));
      if (this.view instanceof DashboardView) this.view.setRange(range);
      paint();
    };
    const buttons: [HTMLButtonElement, (r: TimeRange) => boolean][] = [];
    const add = (
      label: string,
      title: string,
      range: TimeRange | null,
      active: (r: TimeRange) => boolean,
    ) => {
      const b = h(
        'button',
        {
          class: 'seg-btn',
          type: 'button',
          title,
          'data-range': label,
          onclick: () => (range ? set(range) : this.customRange(set)),
        },
        label,
      );
      buttons.push([b, active]);
      group.append(b);
    };
    add('auto', "Each widget's own time window", { kind: 'widget' }, (r) => r.kind === 'widget');
    for (const p of PRESETS)
      add(
        p.label,
        `Last ${p.label}, live`,
        { kind: 'preset', ms: p.ms, label: p.label },
        (r) => r.kind === 'preset' && r.ms === p.ms,
      );
    add('custom…', 'A fixed historical range', null, (r) => r.kind === 'custom');
    const paint = () => {
      for (const [b, active] of buttons)
        b.setAttribute('aria-pressed', String(active(this.route.range)));
      const r = this.route.range;
      custom.textContent =
        r.kind === 'custom'
          ? `${formatDateTime(r.from)} – ${formatDateTime(r.to)} (${zoneName()})`
          : '';
    };
    this.paintRange = paint;
    paint();
    return h('div', { class: 'range' }, custom, group);
  }

  private customRange(set: (r: TimeRange) => void): void {
    const r = this.route.range;
    const now = Date.now();
    const from0 = r.kind === 'custom' ? r.from : now - 3_600_000;
    const to0 = r.kind === 'custom' ? r.to : now;
    openDialog(
      'Custom time range',
      (form) => {
        const from = h('input', {
          type: 'datetime-local',
          required: true,
          value: toLocalInput(from0),
          'data-testid': 'range-from',
        });
        const to = h('input', {
          type: 'datetime-local',
          required: true,
          value: toLocalInput(to0),
          'data-testid': 'range-to',
        });
        form.append(
          h(
            'p',
            { class: 'muted' },
            'A fixed range is queried from history; live updates pause until you pick a preset.',
          ),
          h('div', { class: 'field-row' }, field('From', from), field('To', to)),
        );
        return () => {
          const f = fromLocalInput(from.value);
          const t = fromLocalInput(to.value);
          if (f === null || t === null || t <= f) throw new Error('“To” must be after “From”');
          set({ kind: 'custom', from: f, to: t });
          return true;
        };
      },
      { submitLabel: 'Apply', testId: 'range-dialog' },
    );
  }
}

/** Signs in from `/#key=` if given, then starts the app, or shows the sign-in page. */
async function boot(): Promise<void> {
  // A `#key=` URL opened in a tab already showing the app changes only the fragment.
  window.addEventListener('hashchange', () => {
    const key = takeFragmentKey();
    if (key)
      signIn(key).then(
        () => location.reload(),
        (err: unknown) => toast(err instanceof Error ? err.message : String(err), 'error'),
      );
  });
  // An embedded dashboard authenticates with the link token in its address, never a session.
  const token = embedToken();
  if (token) useLinkToken(token);
  let notice: string | undefined;
  const key = token ? null : takeFragmentKey();
  if (key) {
    try {
      await signIn(key);
    } catch (err) {
      notice = err instanceof Error ? err.message : String(err);
    }
  }
  const session = await currentSession().catch(() => null);
  if (session) {
    new App(session).start();
    return;
  }
  if (!token) notice ??= endedSessionNotice() ?? undefined;
  applyTheme(storedTheme());
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  main.append(signInPage(() => location.reload(), notice));
  document.body.append(main);
}

applyStoredZone();
void boot();
