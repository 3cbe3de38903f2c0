#!/usr/bin/env node
// Browser test of the rtdash web UI against a running stack (gateway serving web/dist, edge
// agent): creates a dashboard with a line-chart and a single-value widget through the page
// (both say "No data" while the new tenant has none), sends events to the edge agent, and
// checks both widgets change within 5 s, with no console errors, that the single value compares
// like with like (from 0 to 7, saying against what), and that a widget split by source shows
// the events' source live; then adds a 7-day widget (the editor offers only the windows the
// gateway accepts, `auto` picks 1h, shown on the widget; its axis labels carry dates, the
// 15-minute chart's only times), a widget filtered on a source that does not exist (it names
// the filter and offers the existing source), switches the time zone (browser local, emulated
// as Asia/Kolkata, and UTC; remembered across a reload), sends a late event and opens the
// revised mark's explanation by keyboard and by tap; checks that a refused tenant and an unknown
// one say so; opens the dashboard through a dashboard link (embed mode: read-only, live, no
// navigation) and sees the revoked link refused. Screenshots (dark and light, and the embed)
// go to test-artifacts/.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import {
  addWidget as addWidgetThroughPage,
  createDashboard,
  sendEvents,
  shootBothThemes,
  waitForFreshWindow,
  watchConsole,
} from './steps.mjs';
import path from 'node:path';

const CHANGE_WITHIN_MS = 5000;
const { gateway, agent, artifacts, tenant, context, log, fail, createKey, operatorKey, run } =
  await setUp('browser-test', 'webtest');
const editorKey = await createKey('editor', 'browser test');
const adminKey = await createKey('admin', 'browser test links');
const ingestKey = await createKey('ingest', 'browser test producer');
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}`);

await run('dashboard-failure.png', async ({ page, consoleErrors }) => {
  // Signed out, the page's `GET /v1/session` and the wrong key's sign-in answer 401 on
  // purpose; Chromium logs those as errors.
  watchConsole(page, consoleErrors);
  // A browser zone that is not UTC (and off by half an hour), so that the two choices differ.
  const browserZone = 'Asia/Kolkata';
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setTimezoneOverride', { timezoneId: browserZone });

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
  const dashboardId = await createDashboard(page, 'Browser test');
  await page.getByTestId('empty-dashboard').waitFor();
  log(`dashboard ${dashboardId} created`);

  const addWidget = (title, viz, timeWindow = 'last_15m', inEditor = async () => {}) =>
    addWidgetThroughPage(page, { title, viz, timeWindow, inEditor });
  const line = await addWidget('Events (line)', 'line_chart');
  const counter = await addWidget('Events now', 'counter');
  // A split widget: a row per source, fed live by the same stream.
  const split = await addWidget('Events by source', 'table', 'last_15m', async (dlg) => {
    await dlg.getByTestId('widget-split').selectOption('source');
    await dlg.getByTestId('widget-limit').fill('5');
  });
  log('widgets added');

  // Live: the stream is open and both widgets got their snapshot. The new tenant has no data
  // yet: the charts say so rather than drawing nothing or a zero line.
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  await page.locator('[data-testid="widget"][data-loaded="1"]').nth(2).waitFor();
  for (const w of [line, counter]) {
    const empty = w.getByTestId('no-data-title');
    await empty.waitFor();
    if ((await empty.textContent()) !== 'No data')
      fail(`an empty widget says "${await empty.textContent()}", not "No data"`);
    if (await w.locator('canvas').first().isVisible())
      fail('an empty widget still draws its chart');
  }
  log('empty widgets say No data');
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
  const waited = await waitForFreshWindow(page, windowMs, 4000);
  if (waited) log(`waited ${waited} ms for the next ${windowMs / 1000}s window`);
  // Without `occurred_at`: the events happened when the agent received them.
  const events = Array.from({ length: 7 }, (_, i) => ({
    tenant_id: tenant,
    source: 'web-test',
    event_type: 'page_view',
    properties: { region: i % 2 ? 'eu' : 'us' },
  }));
  const sentAt = Date.now();
  const { status } = await sendEvents(agent, ingestKey, events, fail);
  log(`sent ${events.length} events (${status})`);

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
  await line.locator('canvas').first().waitFor();
  if (await line.getByTestId('no-data').isVisible()) fail('the line chart still says No data');

  // The single value compares like with like: the open window so far against the previous
  // window at the same point (it had no events: 0), or, once the window closed, the closed
  // window against the one before; never a zero-to-zero comparison beside the 7.
  const windowLabel = windowMs % 60_000 === 0 ? `${windowMs / 60_000}m` : `${windowMs / 1000}s`;
  const comparison = counter.getByTestId('counter-comparison');
  await comparison.waitFor();
  const kind = await comparison.getAttribute('data-kind');
  const compared = (await comparison.textContent()).trim();
  const expected =
    kind === 'same-point'
      ? `vs same point of previous ${windowLabel} (0 → 7)`
      : `vs previous ${windowLabel}, closed (0 → 7)`;
  if (compared !== expected) fail(`single value compares "${compared}", expected "${expected}"`);
  const change = await counter.getByTestId('counter-change').textContent();
  if (change !== '▲ +7') fail(`single value change "${change}", expected "▲ +7"`);
  log(`single value: ${change} ${compared}`);

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

  // Axis labels: times only within a day (the widgets' own 15 minutes), dates on a range of
  // a day or more (the 24h preset: `Dec 6` or `Dec 6 14:00`).
  const ticksMatch = async (w, pattern, what) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ticks = (await w.locator('.viz-host').getAttribute('data-x-ticks'))?.split('|') ?? [];
      if (ticks.length >= 2 && ticks.every((t) => pattern.test(t))) return ticks;
      if (Date.now() > deadline) fail(`${what} axis labels: ${ticks.join(', ')}`);
      await page.waitForTimeout(100);
    }
  };
  const lineTicks = await ticksMatch(line, /^\d\d:\d\d$/, '15-minute');
  await page.locator('button[data-range="24h"]').click();
  const dayTicks = await ticksMatch(line, /^[A-Z][a-z]{2} \d{1,2}( \d\d:\d\d)?$/, '24-hour');
  await page.locator('button[data-range="auto"]').click();
  await ticksMatch(line, /^\d\d:\d\d$/, '15-minute again');
  log(`axis labels: 15 minutes ${lineTicks.join(', ')}; 24 hours ${dayTicks.join(', ')}`);

  // A filter matching no series names itself and offers the closest existing value. The
  // events must be stored first (the suggestions come from GET /v1/metrics/events/series).
  const seriesDeadline = Date.now() + 20_000;
  for (;;) {
    const r = await fetch(
      `${gateway}/v1/metrics/events/series?tenant_id=${encodeURIComponent(tenant)}`,
      { headers: { authorization: `Bearer ${editorKey}` } },
    );
    if (r.ok && ((await r.json()).dimensions?.source ?? []).includes('web-test')) break;
    if (Date.now() > seriesDeadline) fail('the series listing never showed the source web-test');
    await new Promise((r) => setTimeout(r, 500));
  }
  const filtered = await addWidget('Events from a typo', 'line_chart', 'last_15m', (dlg) =>
    dlg.getByTestId('widget-dim-source').fill('WEB-TSET'),
  );
  const filteredWidget = filtered;
  await filteredWidget.getByTestId('no-data-title').waitFor();
  const noDataTitle = await filteredWidget.getByTestId('no-data-title').textContent();
  if (noDataTitle !== 'No data for source=WEB-TSET') fail(`filtered widget says "${noDataTitle}"`);
  await filteredWidget.getByTestId('no-data-suggestion').first().waitFor();
  const suggested = await filteredWidget.getByTestId('no-data-suggestion').allTextContents();
  if (suggested.join(',') !== 'web-test') fail(`suggested ${suggested.join(',')}, not web-test`);
  if (await filtered.locator('canvas').first().isVisible())
    fail('the filtered widget draws a chart (a flat zero line) for a filter matching nothing');
  log(`filtered widget: "${noDataTitle}", closest: ${suggested.join(', ')}`);

  // The time zone: the browser's by default, UTC when chosen; remembered across a reload.
  const clockIn = (ms, timeZone) =>
    new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).format(ms);
  const zone = page.getByTestId('zone-select');
  if ((await zone.inputValue()) !== 'local') fail('the time zone is not the browser’s by default');
  // The page's own name of the zone (ICU may spell Asia/Kolkata as Asia/Calcutta).
  const pageZone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  const localOption = await zone.locator('option[value="local"]').textContent();
  if (localOption !== `Local (${pageZone})`)
    fail(`the local choice says "${localOption}", not the browser's zone ${pageZone}`);
  const counterWindow = async (timeZone) => {
    const value = counter.getByTestId('counter-value');
    await page.waitForFunction(
      ({ timeZone }) => {
        const el = document.querySelector(
          '[data-testid="widget"][data-viz="counter"] [data-testid="counter-value"]',
        );
        const start = Number(el?.getAttribute('data-window-start'));
        const meta = document.querySelector(
          '[data-testid="widget"][data-viz="counter"] [data-testid="counter-meta"]',
        )?.textContent;
        const clock = new Intl.DateTimeFormat('en-GB', {
          timeZone,
          hour: '2-digit',
          minute: '2-digit',
          hourCycle: 'h23',
        }).format(start);
        return start > 0 && meta?.includes(`window ${clock}`);
      },
      { timeZone },
    );
    const start = Number(await value.getAttribute('data-window-start'));
    return clockIn(start, timeZone);
  };
  const localClock = await counterWindow(browserZone);
  await zone.selectOption('utc');
  const utcClock = await counterWindow('UTC');
  if (localClock === utcClock) fail(`local and UTC clocks agree (${localClock})`);
  await page.reload();
  await page.locator('[data-testid="widget"][data-loaded="1"]').nth(4).waitFor();
  if ((await page.getByTestId('zone-select').inputValue()) !== 'utc')
    fail('the UTC choice was not remembered across a reload');
  await counterWindow('UTC');
  log(`time zone: window at ${localClock} (${browserZone}), ${utcClock} (UTC), remembered`);

  // A late event revises a closed window: a calm mark on the line chart whose explanation
  // opens by keyboard (focus) and by tap, and closes with Escape.
  const lateAt = new Date(Date.now() - 3 * windowMs - 30_000).toISOString();
  await sendEvents(
    agent,
    ingestKey,
    { tenant_id: tenant, source: 'web-test', event_type: 'page_view', occurred_at: lateAt },
    fail,
  );
  const revisedLine = page.locator('[data-testid="widget"][data-viz="line_chart"]').first();
  const mark = revisedLine.getByTestId('badge-revised');
  await mark.waitFor({ timeout: 20_000 });
  const markText = await mark.textContent();
  if (markText !== 'revised ×1') fail(`revised mark says "${markText}"`);
  const colours = await mark.evaluate((el) => {
    const css = getComputedStyle(document.documentElement);
    return {
      mark: getComputedStyle(el).color,
      alarms: ['--warn', '--danger'].map((v) => {
        const probe = document.createElement('span');
        probe.style.color = css.getPropertyValue(v);
        document.body.append(probe);
        const c = getComputedStyle(probe).color;
        probe.remove();
        return c;
      }),
    };
  });
  if (colours.alarms.includes(colours.mark))
    fail(`the revised mark is in an alarm colour (${colours.mark})`);
  const tip = revisedLine.locator('.tip-pop');
  await mark.focus();
  await tip.waitFor({ state: 'visible' });
  if (!(await tip.textContent()).includes('corrected by late data after they were final'))
    fail(`revised explanation: ${await tip.textContent()}`);
  await page.keyboard.press('Escape');
  await tip.waitFor({ state: 'hidden' });
  await mark.evaluate((el) => el.blur());
  await page.mouse.move(0, 0);
  await tip.waitFor({ state: 'hidden' });
  await mark.click(); // a tap: focus, then click
  await tip.waitFor({ state: 'visible' });
  log(`late event: "${markText}" mark (${colours.mark}), explained on focus and tap`);

  // Screenshots in both themes (with the empty, filtered and revised states on the page).
  const shots = await shootBothThemes(page, artifacts, 'dashboard');
  log(`screenshots in ${artifacts}: ${shots.join(', ')}`);

  // Deep link opens the same dashboard with both widgets.
  await page.goto(
    `${gateway}/?tenant=${encodeURIComponent(tenant)}&dashboard=${encodeURIComponent(dashboardId)}`,
  );
  await page.locator('[data-testid="widget"]').nth(3).waitFor();
  if ((await page.locator('[data-testid="widget"]').count()) !== 5)
    fail('deep link did not show the five widgets');

  // Tenants this page cannot show say so: another tenant than the key's, an invalid id.
  const refusedTenant = async (asked, expected) => {
    await page.goto(`${gateway}/?tenant=${encodeURIComponent(asked)}`);
    const problem = page.getByTestId('tenant-problem').getByRole('alert');
    await problem.waitFor();
    const text = await problem.textContent();
    if (text !== expected) fail(`tenant ${asked}: "${text}", expected "${expected}"`);
  };
  await refusedTenant(
    'someone-else',
    `This key belongs to tenant “${tenant}”: it cannot open tenant “someone-else”.`,
  );
  await refusedTenant(
    'no such tenant!',
    '“no such tenant!” is not a tenant id: an id is 1–128 characters from A–Z, a–z, 0–9, _ and -.',
  );
  await page.getByRole('link', { name: `Open tenant “${tenant}”` }).click();
  // The way on opens the key's tenant (its home: the dashboard last viewed).
  await page.getByTestId('dashboard-title').filter({ hasText: 'Browser test' }).waitFor();
  if ((await page.getByTestId('tenant-problem').count()) !== 0) fail('the refusal stayed');
  log('another tenant and an invalid id are refused by name');

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

  // A key that stops working: the next start says the session ended and why.
  const doomedKey = await createKey('viewer', 'browser test, revoked');
  await page.goto(`${gateway}/#key=${doomedKey}`);
  await page.getByTestId('sign-out').waitFor();
  const doomedId = doomedKey.split('_')[1];
  const revokedKey = await fetch(`${gateway}/v1/keys/${doomedId}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${adminKey}` },
  });
  if (revokedKey.status !== 204) fail(`DELETE /v1/keys answered ${revokedKey.status}`);
  await page.waitForTimeout(6000); // revocation reaches every gateway within 5 s
  await page.goto(`${gateway}/`);
  await page
    .getByTestId('signin')
    .getByText('the key it was opened with no longer works')
    .waitFor();
  log('a revoked key: the sign-in page says the session ended and why');

  // The operator may name any tenant; one that does not exist is said so, not shown empty.
  const nobody = `nobody-${Date.now().toString(36)}`;
  await page.goto(`${gateway}/#key=${operatorKey}`);
  await page.getByTestId('sign-out').waitFor();
  await page.goto(`${gateway}/?tenant=${nobody}`);
  const unknown = await page.getByTestId('tenant-problem').getByRole('alert').textContent();
  if (!unknown.startsWith(`There is no tenant “${nobody}”: it has no keys and no dashboards.`))
    fail(`unknown tenant: "${unknown}"`);
  await page.getByTestId('tenant-picker-input').waitFor();
  await page.getByTestId('sign-out').click();
  await page.getByTestId('signin').waitFor();
  log('an unknown tenant is said so to the operator');
});
