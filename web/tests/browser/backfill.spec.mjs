#!/usr/bin/env node
// Browser test of a backfill against a running stack (gateway serving web/dist, edge agent,
// aggregator): orders 30 to 32 minutes old are sent to the agent before any metric counts
// them (they are only in the raw-event archive); a metric is defined through the form with
// "Compute the past 1 hour"; its card shows the job's progress until the past windows are
// computed (those 30 minutes old are past the correction horizon, so the job's first phase
// rewrites them); then a table of the metric's windows over the last hour shows them,
// adding up to exactly the orders sent. Screenshot to test-artifacts/; any console error fails the test.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import {
  addWidget,
  createDashboard,
  sendEvents,
  tableValues,
  themeOf,
  waitForPastComputed,
  watchConsole,
} from './steps.mjs';
import path from 'node:path';

const { gateway, agent, artifacts, tenant, log, fail, createKey, run } = await setUp(
  'browser-test',
  'backfill',
);
const editorKey = await createKey('editor', 'browser test');
const ingestKey = await createKey('ingest', 'browser test producer');
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}`);

await run('backfill-failure.png', async ({ page, consoleErrors }) => {
  // Signed out, the page's `GET /v1/session` answers 401 on purpose.
  watchConsole(page, consoleErrors);
  const failShot = path.join(artifacts, 'backfill-failure.png');

  // The archived past: 36 orders 30 to 32 minutes ago, before any metric counts them.
  const SENT = 36;
  const now = Date.now();
  const orders = Array.from({ length: SENT }, (_, i) => ({
    tenant_id: tenant,
    source: 'shop',
    event_type: 'order',
    properties: { amount: i },
    occurred_at: new Date(now - 32 * 60_000 + i * 3_000).toISOString(),
  }));
  await sendEvents(agent, ingestKey, orders, fail);
  log(`sent ${SENT} orders 30 to 32 minutes old`);

  await page.goto(`${gateway}/#key=${editorKey}`);
  await page.getByTestId('sign-out').waitFor();
  await page.goto(`${gateway}/?tenant=${encodeURIComponent(tenant)}&page=metrics`);
  await page.getByTestId('metric-events').waitFor();

  // The metric, with its past computed.
  await page.getByTestId('new-metric').click();
  const dlg = page.getByTestId('metric-dialog');
  await dlg.getByTestId('metric-name').fill('orders');
  await dlg.getByTestId('metric-event-type').selectOption('*');
  await dlg.getByTestId('metric-backfill').selectOption('1');
  await dlg.getByTestId('dialog-submit').click();
  await dlg.waitFor({ state: 'detached' });
  const progress = page.getByTestId('backfill-orders');
  await progress.waitFor();
  log(`progress shown: ${await progress.textContent()}`);
  const computed = await waitForPastComputed(page, 'orders', fail);
  await page.screenshot({
    path: path.join(artifacts, `backfill-${await themeOf(page)}.png`),
    fullPage: true,
  });
  log(`past windows computed: ${computed}`);

  // A table of the metric's windows over the last hour: the orders sent before it existed.
  await page.goto(`${gateway}/?tenant=${encodeURIComponent(tenant)}`);
  await createDashboard(page, 'Orders');
  const table = await addWidget(page, {
    metric: 'orders',
    stat: 'count',
    timeWindow: 'last_1h',
    viz: 'table',
    title: 'Orders, last hour',
  });
  const total = async () => (await tableValues(table)).reduce((sum, v) => sum + v, 0);
  const deadline = Date.now() + 20_000;
  let shown = await total();
  while (shown !== SENT && Date.now() < deadline) {
    await page.waitForTimeout(250);
    shown = await total();
  }
  if (shown !== SENT) {
    await page.screenshot({ path: failShot, fullPage: true });
    fail(`the table of the orders windows adds up to ${shown}, not the ${SENT} orders sent`);
  }
  await page.screenshot({ path: path.join(artifacts, 'backfill-table.png'), fullPage: true });
  log(`the past windows of the backfilled metric add up to exactly ${SENT}`);
});
