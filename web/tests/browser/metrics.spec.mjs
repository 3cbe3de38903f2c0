#!/usr/bin/env node
// Browser test of the metrics page against a running stack (gateway serving web/dist, edge
// agent), the newcomer's path with no API call from the page's side: sign in, make a
// dashboard whose Add-widget dialog (only `events` exists) links to the metrics page; send
// events of a new type from the test; see the type and its properties offered (schema
// discovery), a property with 1,200 distinct values flagged as a dimension; a 4xx shown next
// to the field it names; define a metric through the form; see it listed and offered in the
// Add-widget dialog; see a counter of it count exactly the events sent after it exists (the
// 1,200 before it are not counted: no backfill); edit and delete it. Screenshots (dark and
// light) go to test-artifacts/; any console error fails the test.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import {
  addWidget,
  createDashboard,
  sendEvents,
  shootBothThemes,
  waitForEventType,
  waitForFreshWindow,
  watchConsole,
} from './steps.mjs';
import path from 'node:path';

const { gateway, agent, artifacts, tenant, log, fail, createKey, run } = await setUp(
  'browser-test',
  'metrics',
);
const editorKey = await createKey('editor', 'browser test');
const ingestKey = await createKey('ingest', 'browser test producer');
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}`);
let refusalPending = false;

await run('metrics-failure.png', async ({ page, consoleErrors }) => {
  // Signed out, the page's `GET /v1/session` answers 401 on purpose; the refused metric name
  // below answers 400 on purpose (allowed exactly once).
  watchConsole(page, consoleErrors, (text) => {
    if (text.includes('status of 400') && refusalPending) {
      refusalPending = false;
      return true;
    }
    return text.includes('status of 401');
  });

  const failShot = path.join(artifacts, 'metrics-failure.png');
  await page.goto(`${gateway}/#key=${editorKey}`);
  await page.getByTestId('sign-out').waitFor();
  log('signed in');

  // A new tenant's dashboard: the Add-widget dialog says how to get another metric.
  await page.goto(`${gateway}/?tenant=${encodeURIComponent(tenant)}`);
  await createDashboard(page, 'Purchases');
  const dashboardUrl = page.url();
  await page.getByTestId('add-widget').click();
  const hint = page.getByTestId('widget-editor').getByTestId('widget-more-metrics');
  await hint.waitFor();
  await hint.getByTestId('widget-metrics-link').click();
  await page.waitForURL(/[?&]page=metrics/);
  await page.getByTestId('metric-events').waitFor();
  log('the Add-widget dialog links to the metrics page; the built-in events metric is listed');

  // Events of a new type, sent by the test as a producer would.
  const send = (events) => sendEvents(agent, ingestKey, events, fail);
  const purchase = (i) => ({
    tenant_id: tenant,
    source: 'shop',
    event_type: 'purchase',
    properties: { amount: 10 + i, plan: i % 2 ? 'pro' : 'free', user: `u${i}` },
    occurred_at: new Date().toISOString(),
  });
  // 1,200 users: more distinct values than a dimension should have (the editor warns).
  await send(Array.from({ length: 1200 }, (_, i) => purchase(i)));
  log('sent 1,200 purchase events');

  // Schema discovery publishes every 10 s: reload until the type is listed.
  const typeRow = await waitForEventType(page, 'purchase', fail);
  for (const p of ['amount', 'plan', 'user'])
    await typeRow.locator(`tr[data-property="${p}"]`).waitFor();
  const amountKind = await typeRow.locator('tr[data-property="amount"] td').nth(1).textContent();
  if (amountKind !== 'number') fail(`amount shown as ${amountKind}`);
  log('the event type and its properties are shown');

  // The form: pickers fed by the event types seen.
  await page.getByTestId('new-metric').click();
  const dlg = page.getByTestId('metric-dialog');
  await dlg.getByTestId('metric-event-type').selectOption('purchase');
  await dlg
    .getByTestId('metric-field')
    .locator('option[value="amount"]')
    .waitFor({ state: 'attached' });
  if (await dlg.getByTestId('metric-field').locator('option[value="plan"]').count())
    fail('a string property is offered as the numeric value field');
  await dlg
    .getByTestId('metric-unique')
    .locator('option[value="user"]')
    .waitFor({ state: 'attached' });
  await dlg.getByTestId('metric-dim-plan').waitFor();
  await dlg.getByTestId('cardinality-warning-user').waitFor();
  if (await dlg.getByTestId('cardinality-warning-plan').count())
    fail('a dimension with 2 values is flagged as high cardinality');
  log('user (1,200 distinct values) is flagged as a high-cardinality dimension, plan is not');
  // A name the gateway refuses: its message next to the name field.
  await dlg.getByTestId('metric-name').fill('not a name!');
  refusalPending = true;
  await dlg.getByTestId('dialog-submit').click();
  const nameError = dlg.getByTestId('metric-error-name');
  await nameError.waitFor();
  log(`refused name shown at its field: ${await nameError.textContent()}`);
  await dlg.getByTestId('metric-name').fill('purchases');
  await dlg.getByTestId('metric-field').selectOption('amount');
  await dlg.getByTestId('metric-unique').selectOption('user');
  await dlg.getByTestId('metric-dim-plan').check();
  await dlg.getByTestId('metric-rollup-plan').waitFor();
  const editorTheme = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.screenshot({ path: path.join(artifacts, `metrics-editor-${editorTheme}.png`) });
  await dlg.getByTestId('dialog-submit').click();
  await dlg.waitFor({ state: 'detached' });
  const card = page.getByTestId('metric-purchases');
  await card.waitFor();
  const shown = await card.textContent();
  for (const part of ['purchase', 'amount', 'user', 'plan', '1m'])
    if (!shown.includes(part)) fail(`the new metric's card lacks ${part}: ${shown}`);
  log('metric purchases defined through the form and listed');

  // Screenshots in both themes.
  const shots = await shootBothThemes(page, artifacts, 'metrics');
  log(`screenshots in ${artifacts}: ${shots.join(', ')}`);

  // The metric in the Add-widget dialog, as a counter.
  await page.goto(dashboardUrl);
  const counter = await addWidget(page, {
    metric: 'purchases',
    stat: 'count',
    timeWindow: 'last_15m',
    viz: 'counter',
    title: 'Purchases now',
    inEditor: async (editor) => {
      if (await editor.getByTestId('widget-more-metrics').count())
        fail('the Add-widget dialog still says only events exists');
    },
  });
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  await page.locator('[data-testid="widget"][data-loaded="1"]').waitFor();

  // Events sent after the metric exists are counted (the 1,200 before it are not). Start in a
  // fresh minute so that all of them fall into the window the counter shows.
  await waitForFreshWindow(page, 60_000, 8000);
  const before = await counter.getByTestId('counter-value').getAttribute('data-value');
  if (Number(before ?? 0) !== 0) fail(`the purchases counter shows ${before} before any event`);
  const SENT = 5;
  await send(Array.from({ length: SENT }, (_, i) => purchase(100 + i)));
  log(`sent ${SENT} purchase events after the metric exists`);
  const counted = await page
    .waitForFunction(
      (want) => {
        const el = document.querySelector(
          '[data-testid="widget"][data-viz="counter"] [data-testid="counter-value"]',
        );
        return Number(el?.getAttribute('data-value') ?? 0) === want;
      },
      SENT,
      { timeout: 15_000, polling: 100 },
    )
    .then(() => true)
    .catch(() => false);
  if (!counted) {
    const value = await counter.getByTestId('counter-value').getAttribute('data-value');
    await page.screenshot({ path: failShot, fullPage: true });
    fail(`the purchases counter shows ${value}, not ${SENT}`);
  }
  log(`the purchases counter shows exactly ${SENT}`);

  // Edit (a description) and delete through the page.
  await page.getByTestId('nav-metrics').click();
  await page.getByTestId('edit-metric-purchases').click();
  const edit = page.getByTestId('metric-dialog');
  await edit.getByTestId('metric-description').fill('Shop purchases');
  await edit.getByTestId('dialog-submit').click();
  await edit.waitFor({ state: 'detached' });
  await page.getByTestId('metric-purchases').filter({ hasText: 'Shop purchases' }).waitFor();
  if (!(await page.getByTestId('metric-purchases').textContent()).includes('amount'))
    fail('editing the description lost the value field');
  await page.getByTestId('delete-metric-purchases').click();
  await page.getByTestId('delete-metric-dialog').getByTestId('dialog-submit').click();
  await page.getByTestId('metric-purchases').waitFor({ state: 'detached' });
  await page.getByTestId('metric-events').waitFor();
  log('metric edited and deleted through the page');
});
