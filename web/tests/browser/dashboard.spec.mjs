#!/usr/bin/env node
// Browser test of the rtdash web UI against a running stack (gateway serving web/dist, edge
// agent): creates a dashboard with a line-chart and a single-value widget through the page,
// sends events to the edge agent, and checks both widgets change within 5 s, with no console
// errors, and that a widget split by source shows the events' source live; then adds a 7-day
// widget (the editor offers only the windows the gateway accepts,
// `auto` picks 1h, shown on the widget). Screenshots (dark and light) go to test-artifacts/.
//
// Env: RTDASH_GATEWAY_URL (default http://127.0.0.1:8080), RTDASH_AGENT_URL (default
// http://127.0.0.1:8081), RTDASH_CHROMIUM (default /usr/bin/chromium), RTDASH_TEST_ARTIFACTS
// (default <repo>/test-artifacts). When neither service answers the test skips (exit 0),
// unless RTDASH_BROWSER_TEST_REQUIRED is set: then it fails.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const gateway = (process.env.RTDASH_GATEWAY_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const agent = (process.env.RTDASH_AGENT_URL || 'http://127.0.0.1:8081').replace(/\/$/, '');
const required = Boolean(process.env.RTDASH_BROWSER_TEST_REQUIRED);
const chromiumPath = process.env.RTDASH_CHROMIUM || '/usr/bin/chromium';
const artifacts =
  process.env.RTDASH_TEST_ARTIFACTS || path.resolve(here, '../../../test-artifacts');
const CHANGE_WITHIN_MS = 5000;
const started = Date.now();

const log = (msg) =>
  console.log(`[browser-test +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
function fail(msg) {
  console.error(`[browser-test] FAILED: ${msg}`);
  process.exitCode = 1;
  throw new Error(msg);
}

/** Before the browser starts: report and exit. */
function abort(msg) {
  console.error(`[browser-test] FAILED: ${msg}`);
  process.exit(1);
}

async function reachable(base) {
  try {
    await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

const [gatewayUp, agentUp] = await Promise.all([reachable(gateway), reachable(agent)]);
if (!gatewayUp && !agentUp && !required) {
  console.log(
    `[browser-test] SKIPPED: no stack at RTDASH_GATEWAY_URL=${gateway} or RTDASH_AGENT_URL=${agent}. Start one (./deploy/up.sh) or set RTDASH_BROWSER_TEST_REQUIRED=1 to make this a failure.`,
  );
  process.exit(0);
}
if (!gatewayUp) abort(`gateway not reachable at ${gateway} (RTDASH_GATEWAY_URL)`);
if (!agentUp) abort(`edge agent not reachable at ${agent} (RTDASH_AGENT_URL)`);
if (!existsSync(chromiumPath))
  abort(
    `chromium not found at ${chromiumPath} (apt-get install -y chromium, or set RTDASH_CHROMIUM)`,
  );

// The gateway must serve the built app, not its "not built" page.
const index = await (await fetch(`${gateway}/`)).text();
if (!/<script[^>]+type="module"/.test(index))
  abort(
    `${gateway}/ does not serve the built web app: build it (\`npm ci && npm run build\` in web/) before starting the gateway, which picks web/dist up at startup`,
  );

const tenant = `webtest-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

// Keys: the test creates its own with the stack's operator key (RTDASH_OPERATOR_KEY_FILE,
// default ../.rtdash/operator.key, where ./deploy/up.sh writes it).
const operatorKeyFile =
  process.env.RTDASH_OPERATOR_KEY_FILE || path.resolve(here, '../../../.rtdash/operator.key');
if (!existsSync(operatorKeyFile))
  abort(`no operator key at ${operatorKeyFile} (set RTDASH_OPERATOR_KEY_FILE)`);
const operatorKey = readFileSync(operatorKeyFile, 'utf8').trim();
async function createKey(role, name) {
  const res = await fetch(`${gateway}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${operatorKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant_id: tenant, role, name }),
  });
  if (res.status !== 201) fail(`POST /v1/keys answered ${res.status}: ${await res.text()}`);
  return (await res.json()).key;
}
const editorKey = await createKey('editor', 'browser test');
const adminKey = await createKey('admin', 'browser test links');
const ingestKey = await createKey('ingest', 'browser test producer');
const userDataDir = mkdtempSync(path.join(tmpdir(), 'rtdash-chromium-'));
mkdirSync(artifacts, { recursive: true });
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}`);

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: chromiumPath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1440, height: 900 },
  colorScheme: 'dark',
});

const consoleErrors = [];
let page;
try {
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.on('console', (msg) => {
    // Signed out, the page's `GET /v1/session` and the wrong key's sign-in answer 401 on
    // purpose; Chromium logs those as errors.
    if (msg.type() === 'error' && !msg.text().includes('status of 401'))
      consoleErrors.push(`console.error: ${msg.text()} (${msg.location().url ?? ''})`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));

  // Signed out: the sign-in page. A wrong key is refused with a message; `/#key=` signs in
  // and leaves no key in the address bar.
  await page.goto(`${gateway}/`);
  await page.getByTestId('signin').waitFor();
  await page.getByTestId('signin-key').fill('rtd_0000000000000000_not-a-key');
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('signin-error').waitFor();
  await page.goto(`${gateway}/#key=${editorKey}`);
  await page.getByTestId('sign-out').waitFor();
  if (page.url().includes('key=')) fail(`the key stayed in the address bar: ${page.url()}`);
  log('signed in with a key the test created');
  await page.goto(`${gateway}/?tenant=${encodeURIComponent(tenant)}`);
  await page.getByTestId('new-dashboard').click();
  await page.getByTestId('create-dialog').getByTestId('dashboard-name').fill('Browser test');
  await page.getByTestId('create-dialog').getByTestId('dialog-submit').click();
  await page.waitForURL(/[?&]dashboard=/);
  await page.getByTestId('empty-dashboard').waitFor();
  const dashboardId = new URL(page.url()).searchParams.get('dashboard');
  log(`dashboard ${dashboardId} created`);

  async function addWidget(title, viz, timeWindow = 'last_15m', inEditor = async () => {}) {
    await page.getByTestId('add-widget').click();
    const dlg = page.getByTestId('widget-editor');
    await dlg.getByTestId('widget-metric').selectOption('events');
    await dlg.getByTestId('widget-stat').selectOption('count');
    await dlg.getByTestId('widget-time-window').selectOption(timeWindow);
    await dlg.getByTestId('widget-viz').selectOption(viz);
    await inEditor(dlg);
    await dlg.getByTestId('widget-title').fill(title);
    await dlg.getByTestId('dialog-submit').click();
    await dlg.waitFor({ state: 'detached' });
    const w = page.locator(`[data-testid="widget"][data-viz="${viz}"]`);
    await w.waitFor();
    return w;
  }
  const line = await addWidget('Events (line)', 'line_chart');
  const counter = await addWidget('Events now', 'counter');
  // A split widget: a row per source, fed live by the same stream.
  const split = await addWidget('Events by source', 'table', 'last_15m', async (dlg) => {
    await dlg.getByTestId('widget-split').selectOption('source');
    await dlg.getByTestId('widget-limit').fill('5');
  });
  log('widgets added');

  // Live: the stream is open and both widgets got their snapshot.
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  await page.locator('[data-testid="widget"][data-loaded="1"]').nth(2).waitFor();
  await line.locator('canvas').first().waitFor();
  const before = {
    line: await line.getAttribute('data-latest'),
    lineVersion: await line.getAttribute('data-version'),
    counter: await counter.getByTestId('counter-value').textContent(),
  };
  log(`live; before: ${JSON.stringify(before)}`);

  // The single value shows the current window. Events sent in the last moments of a window
  // would be shown in it, then the widget would move on to the next (empty) window: start in a
  // fresh window instead (waits at most 4 s, once).
  const metricsRes = await fetch(`${gateway}/v1/metrics?tenant_id=${encodeURIComponent(tenant)}`, {
    headers: { authorization: `Bearer ${editorKey}` },
  });
  const windowMs =
    (((await metricsRes.json()).metrics ?? []).find((m) => m.name === 'events')?.window_secs ??
      60) * 1000;
  const left = windowMs - (Date.now() % windowMs);
  if (left < 4000) {
    log(`waiting ${left} ms for the next ${windowMs / 1000}s window`);
    await new Promise((r) => setTimeout(r, left + 100));
  }
  const now = new Date().toISOString();
  const events = Array.from({ length: 7 }, (_, i) => ({
    tenant_id: tenant,
    source: 'web-test',
    event_type: 'page_view',
    properties: { region: i % 2 ? 'eu' : 'us' },
    occurred_at: now,
  }));
  const sentAt = Date.now();
  const res = await fetch(`${agent}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestKey}` },
    body: JSON.stringify(events),
  });
  if (!res.ok) fail(`edge agent answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  log(`sent ${events.length} events (${res.status})`);

  const changed = await page
    .waitForFunction(
      ({ before }) => {
        const lineEl = document.querySelector('[data-testid="widget"][data-viz="line_chart"]');
        const counterEl = document.querySelector(
          '[data-testid="widget"][data-viz="counter"] [data-testid="counter-value"]',
        );
        const latest = lineEl?.getAttribute('data-latest') ?? '';
        const lineChanged = latest !== '' && latest !== before.line && Number(latest) > 0;
        const text = counterEl?.textContent ?? '';
        const counterChanged =
          text !== before.counter && Number(counterEl?.getAttribute('data-value') || 0) > 0;
        return lineChanged && counterChanged ? { latest, text } : false;
      },
      { before },
      { timeout: CHANGE_WITHIN_MS, polling: 50 },
    )
    .then((h) => h.jsonValue())
    .catch(() => null);
  const elapsed = Date.now() - sentAt;
  if (!changed) {
    await page.screenshot({ path: path.join(artifacts, 'dashboard-failure.png'), fullPage: true });
    fail(
      `widgets did not both change within ${CHANGE_WITHIN_MS} ms of sending events (line data-latest=${await line.getAttribute('data-latest')}, counter=${await counter.getByTestId('counter-value').textContent()}); screenshot in ${artifacts}`,
    );
  }
  log(
    `both widgets changed after ${elapsed} ms: line latest=${changed.latest}, counter=${changed.text}`,
  );

  // The split widget has a row for the events' source, its newest window holding all 7.
  await split
    .locator('[data-testid="group-row"][data-group="web-test"] td:nth-child(3)', {
      hasText: /^7$/,
    })
    .waitFor({ timeout: CHANGE_WITHIN_MS });
  log('split widget shows the source web-test with 7 events');

  // Resolution: widgets without a window are served at the one `auto` picks for their range,
  // shown on the widget (15 minutes of a 1-minute metric: 1m).
  const lineResolution = await line.getByTestId('widget-resolution').textContent();
  if (lineResolution !== '1m · auto') fail(`line widget resolution: ${lineResolution}`);
  // A 7-day widget: the editor offers only the windows the gateway accepts for 7 days (1m
  // windows would be 10,080: disabled) and says what auto picks; the widget is served hourly.
  const week = await addWidget('Events this week', 'area_chart', 'last_7d', async (dlg) => {
    const select = dlg.getByTestId('widget-window');
    await select.locator('option', { hasText: 'auto (1h for this range)' }).waitFor({
      state: 'attached',
    });
    if (!(await select.locator('option[value="1m"]').isDisabled()))
      fail('the editor offers 1m windows for 7 days');
    if (await select.locator('option[value="1h"]').isDisabled())
      fail('the editor refuses 1h windows for 7 days');
  });
  await page.locator('[data-testid="widget"][data-loaded="1"]').nth(3).waitFor();
  await week.getByTestId('widget-resolution').filter({ hasText: '1h · auto' }).waitFor();
  if (await week.locator('.panel-message').isVisible())
    fail(`7-day widget: ${await week.locator('.panel-message').textContent()}`);
  log('7-day widget served at 1h (auto)');

  // Screenshots in both themes.
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  const first = await theme();
  await page.screenshot({ path: path.join(artifacts, `dashboard-${first}.png`), fullPage: true });
  await page.getByTestId('theme-toggle').click();
  await page.waitForFunction((t) => document.documentElement.dataset.theme !== t, first);
  await page.locator('[data-testid="widget"][data-viz="line_chart"] canvas').first().waitFor();
  const second = await theme();
  await page.waitForTimeout(100); // one frame for the charts to repaint in the new colours
  await page.screenshot({ path: path.join(artifacts, `dashboard-${second}.png`), fullPage: true });
  log(`screenshots: ${artifacts}/dashboard-${first}.png, dashboard-${second}.png`);

  // Deep link opens the same dashboard with both widgets.
  await page.goto(
    `${gateway}/?tenant=${encodeURIComponent(tenant)}&dashboard=${encodeURIComponent(dashboardId)}`,
  );
  await page.locator('[data-testid="widget"]').nth(3).waitFor();
  if ((await page.locator('[data-testid="widget"]').count()) !== 4)
    fail('deep link did not show the four widgets');

  // A dashboard link opens the same dashboard embedded: read-only, no navigation, no sign-out,
  // live; revoked, the page says so.
  const linkRes = await fetch(`${gateway}/v1/dashboards/${dashboardId}/links`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: '{}',
  });
  if (linkRes.status !== 201)
    fail(`POST links answered ${linkRes.status}: ${await linkRes.text()}`);
  const link = await linkRes.json();
  const embed = await context.newPage();
  let linkRevoked = false; // after the revocation, the page's refused calls are expected
  embed.on('console', (msg) => {
    if (linkRevoked) return;
    if (msg.type() === 'error') consoleErrors.push(`embed: ${msg.text()} ${msg.location().url}`);
  });
  await embed.goto(`${gateway}${link.url}`);
  await embed.locator('[data-testid="widget"]').nth(3).waitFor();
  if (!(await embed.evaluate(() => document.body.classList.contains('embed'))))
    fail('the link page is not in embed mode');
  if ((await embed.getByTestId('sign-out').count()) !== 0) fail('the embed shows sign-out');
  if (await embed.getByTestId('delete-dashboard').isVisible())
    fail('the embed offers to delete the dashboard');
  await embed.locator('[data-testid="connection"][data-state="open"]').waitFor();
  await embed.screenshot({ path: path.join(artifacts, 'embed.png'), fullPage: true });
  linkRevoked = true;
  const revoked = await fetch(`${gateway}/v1/dashboards/${dashboardId}/links/${link.link_id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${adminKey}` },
  });
  if (revoked.status !== 204) fail(`DELETE link answered ${revoked.status}`);
  await embed.waitForTimeout(6000); // revocation reaches every gateway within 5 s
  await embed.reload();
  await embed.getByText('This dashboard link does not work').waitFor();
  await embed.close();
  log('embedded through a dashboard link, then revoked');

  // Delete it through the page.
  await page.getByTestId('delete-dashboard').click();
  await page.getByTestId('delete-dialog').getByTestId('dialog-submit').click();
  await page.waitForURL((u) => !u.searchParams.has('dashboard'));
  log('deep link and delete ok');

  // Sign out: back to the sign-in page, and the API answers 401 to this browser again.
  await page.getByTestId('sign-out').click();
  await page.getByTestId('signin').waitFor();
  const after = await page.evaluate(async () => (await fetch('/v1/session')).status);
  if (after !== 401) fail(`GET /v1/session answered ${after} after signing out`);
  log('signed out');

  if (consoleErrors.length) fail(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  log(`PASSED in ${((Date.now() - started) / 1000).toFixed(1)}s`);
} catch (err) {
  if (!process.exitCode) {
    process.exitCode = 1;
    console.error(`[browser-test] FAILED: ${err instanceof Error ? err.message : err}`);
    if (consoleErrors.length) console.error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
    try {
      await page?.screenshot({
        path: path.join(artifacts, 'dashboard-failure.png'),
        fullPage: true,
      });
      console.error(`[browser-test] screenshot: ${path.join(artifacts, 'dashboard-failure.png')}`);
    } catch {
      /* page gone */
    }
  }
} finally {
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
