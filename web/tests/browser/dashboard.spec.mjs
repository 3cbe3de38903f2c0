#!/usr/bin/env node
// Browser test of the rtdash web UI against a running stack (gateway serving web/dist, edge
// agent): creates a dashboard with a line-chart and a single-value widget through the page,
// sends events to the edge agent, and checks both widgets change within 5 s, with no console
// errors, and that a widget split by source shows the events' source live; then adds a 7-day
// widget (the editor offers only the windows the gateway accepts,
// `auto` picks 1h, shown on the widget); opens the dashboard through a dashboard link (embed
// mode: read-only, live, no navigation) and sees the revoked link refused. Screenshots (dark
// and light, and the embed) go to test-artifacts/.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import path from 'node:path';

const CHANGE_WITHIN_MS = 5000;
const { gateway, agent, artifacts, tenant, context, log, fail, createKey, run } = await setUp(
  'browser-test',
  'webtest',
);
const editorKey = await createKey('editor', 'browser test');
const adminKey = await createKey('admin', 'browser test links');
const ingestKey = await createKey('ingest', 'browser test producer');
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}`);

await run('dashboard-failure.png', async ({ page, consoleErrors }) => {
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
});
