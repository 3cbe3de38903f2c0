#!/usr/bin/env node
// The whole product in the browser, as a newcomer meets it, against a running stack (gateway
// serving web/dist, edge agent, aggregator), from an empty tenant. The test calls no API
// except the edge agent (sending events, as a producer would) and its own webhook receiver
// (the stack must allow 127.0.0.1 as a webhook destination: deploy/test.sh starts it so); the
// tenant's admin key is made with the operator key, as every spec's tenant is.
//  1. Sign in through the sign-in page's form with the admin key.
//  2. Send checkouts (an amount and a plan) 31 to 49 minutes old, and one invalid checkout
//     (refused by the agent: wrong_type).
//  3. The metrics page lists the event type and its properties (schema discovery); a metric
//     of it, split by plan, is defined with the pickers and "compute the past 1 hour": its
//     card shows the job's progress until past windows are computed.
//  4. A dashboard with a line chart, a counter and a table of the metric: the table's windows
//     are exactly the past checkouts per minute; checkouts sent now make the counter, the line
//     chart's newest point and the table's newest window exactly their number.
//  5. An alert rule on the metric (plan=pro) with a webhook to the receiver fires in the UI
//     and its notification arrives; a silence of the series is shown on it.
//  6. The data-quality page shows the exact accepted count and the rejection with its reason.
// Screenshots of every page visited (sign-in, metrics, dashboard, alert, alerts, quality) in
// both themes go to test-artifacts/newcomer-*.png; any console error fails the test.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import {
  addWidget,
  createDashboard,
  sendEvents,
  shootBothThemes,
  signInThroughForm,
  startReceiver,
  silenceForAnHour,
  tableValues,
  waitForEventType,
  waitForFreshWindow,
  waitForPastComputed,
  waitForQualityRow,
  watchConsole,
} from './steps.mjs';
import path from 'node:path';

/** How long the pipeline may take to fire a rule on provisional windows. */
const FIRE_WITHIN_MS = 60_000;
const WINDOW_MS = 60_000; // the metric's window: the editor's default, 1m
const { gateway, agent, artifacts, tenant, log, fail, createKey, run } = await setUp(
  'newcomer-test',
  'newcomer',
);
const adminKey = await createKey('admin', 'newcomer browser test');
const ingestKey = await createKey('ingest', 'newcomer browser test producer');
const receiver = await startReceiver('/hook/newcomer', fail);
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}, receiver ${receiver.url}`);

const checkout = (i, occurredAt) => ({
  tenant_id: tenant,
  source: 'shop',
  event_type: 'checkout',
  properties: { amount: 5 + i, plan: i % 2 ? 'pro' : 'free' },
  occurred_at: new Date(occurredAt).toISOString(),
});
/** The windows' counts of `events`, keyed by window start. */
const perWindow = (events) => {
  const counts = new Map();
  for (const e of events) {
    const start = Math.floor(Date.parse(e.occurred_at) / WINDOW_MS) * WINDOW_MS;
    counts.set(start, (counts.get(start) ?? 0) + 1);
  }
  return counts;
};
const sorted = (values) => [...values].sort((a, b) => a - b);

await run(
  'newcomer-failure.png',
  async ({ page, consoleErrors }) => {
    watchConsole(page, consoleErrors);
    const shoot = async (name) => {
      const files = await shootBothThemes(page, artifacts, `newcomer-${name}`);
      log(`screenshots: ${files.join(', ')}`);
    };

    // 1. The sign-in page (in the browser's theme, dark, then light), signed in through it.
    await page.goto(`${gateway}/`);
    await page.getByTestId('signin').waitFor();
    for (const colorScheme of ['dark', 'light']) {
      await page.emulateMedia({ colorScheme });
      await page.reload();
      await page.getByTestId('signin').waitFor();
      await page.screenshot({ path: path.join(artifacts, `newcomer-signin-${colorScheme}.png`) });
    }
    await page.emulateMedia({ colorScheme: 'dark' });
    await signInThroughForm(page, adminKey);
    const shownTenant = await page.getByTestId('tenant-input').inputValue();
    if (shownTenant !== tenant) fail(`signed in to tenant "${shownTenant}", not ${tenant}`);
    log('signed in through the sign-in page; the tenant is the key’s');

    // 2. The past: checkouts 49 to 31 minutes old (only the raw-event archive holds them), and
    // one whose occurred_at is a number (refused).
    const now = Date.now();
    const past = Array.from({ length: 24 }, (_, i) => checkout(i, now - 49 * 60_000 + i * 45_000));
    const invalid = { ...checkout(99, now), occurred_at: 12 };
    const { reply } = await sendEvents(agent, ingestKey, [...past, invalid], fail);
    if (reply.accepted !== past.length || reply.errors?.[0]?.code !== 'wrong_type')
      fail(`the agent answered ${JSON.stringify(reply)}`);
    log(`sent ${past.length} checkouts 31-49 minutes old and 1 invalid (wrong_type)`);

    // 3. Schema discovery, then the metric with its past computed.
    await page.getByTestId('nav-metrics').click();
    await page.waitForURL(/[?&]page=metrics/);
    const typeRow = await waitForEventType(page, 'checkout', fail);
    for (const [property, kind] of [
      ['amount', 'number'],
      ['plan', 'string'],
    ]) {
      const shown = await typeRow
        .locator(`tr[data-property="${property}"] td`)
        .nth(1)
        .textContent();
      if (shown !== kind) fail(`${property} shown as ${shown}, not ${kind}`);
    }
    const seen = await typeRow.locator('summary').textContent();
    if (!seen.includes(` · ${past.length} events`))
      fail(`the event type says "${seen}", not ${past.length} events`);
    log(`the metrics page lists "${seen}" with amount (number) and plan (string)`);
    await page.getByTestId('new-metric').click();
    const dlg = page.getByTestId('metric-dialog');
    await dlg.getByTestId('metric-name').fill('checkouts');
    await dlg.getByTestId('metric-event-type').selectOption('checkout');
    await dlg
      .getByTestId('metric-field')
      .locator('option[value="amount"]')
      .waitFor({ state: 'attached' });
    await dlg.getByTestId('metric-field').selectOption('amount');
    await dlg.getByTestId('metric-dim-plan').check();
    await dlg.getByTestId('metric-backfill').selectOption('1');
    await dlg.getByTestId('dialog-submit').click();
    await dlg.waitFor({ state: 'detached' });
    const card = page.getByTestId('metric-checkouts');
    const cardText = await card.textContent();
    for (const part of ['checkout', 'amount', 'plan', '1m'])
      if (!cardText.includes(part)) fail(`the metric's card lacks ${part}: ${cardText}`);
    const progress = page.getByTestId('backfill-checkouts');
    await progress.waitFor();
    log(`metric checkouts defined; progress shown: ${await progress.textContent()}`);
    const computed = await waitForPastComputed(page, 'checkouts', fail);
    log(`past windows computed: ${computed}`);
    await shoot('metrics');

    // 4. The dashboard: a line chart, a counter and a table of the metric.
    await page.getByTestId('nav-dashboards').click();
    await createDashboard(page, 'Checkouts');
    const widget = (viz, title, timeWindow) =>
      addWidget(page, { metric: 'checkouts', stat: 'count', viz, title, timeWindow });
    const line = await widget('line_chart', 'Checkouts, last hour', 'last_1h');
    const counter = await widget('counter', 'Checkouts now', 'last_15m');
    const table = await widget('table', 'Checkouts per minute', 'last_1h');
    await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
    log('dashboard with a line chart, a counter and a table of checkouts');

    // The table's windows are the past checkouts per minute, exactly.
    const pastCounts = sorted(perWindow(past).values());
    const tableMatches = async (want, within) => {
      const deadline = Date.now() + within;
      for (;;) {
        const shown = sorted(await tableValues(table));
        if (JSON.stringify(shown) === JSON.stringify(want)) return;
        if (Date.now() > deadline)
          fail(`the table's windows hold ${shown.join(',')}, not ${want.join(',')}`);
        await page.waitForTimeout(250);
      }
    };
    await tableMatches(pastCounts, 20_000);
    log(`the table shows the ${pastCounts.length} past windows: ${past.length} checkouts`);

    // Checkouts now, in a fresh minute (so that the counter's window holds all of them).
    await waitForFreshWindow(page, WINDOW_MS, 10_000);
    const before = await counter.getByTestId('counter-value').getAttribute('data-value');
    if (Number(before || 0) !== 0) fail(`the counter shows ${before} before any live checkout`);
    const LIVE = 8;
    const live = Array.from({ length: LIVE }, (_, i) => checkout(100 + i, Date.now()));
    await sendEvents(agent, ingestKey, live, fail);
    log(`sent ${LIVE} checkouts now`);
    const liveShown = await page
      .waitForFunction(
        (want) => {
          const value = document
            .querySelector(
              '[data-testid="widget"][data-viz="counter"] [data-testid="counter-value"]',
            )
            ?.getAttribute('data-value');
          const latest = document
            .querySelector('[data-testid="widget"][data-viz="line_chart"]')
            ?.getAttribute('data-latest');
          return value === String(want) && latest === String(want);
        },
        LIVE,
        { timeout: 15_000, polling: 100 },
      )
      .then(() => true)
      .catch(() => false);
    if (!liveShown)
      fail(
        `counter ${await counter.getByTestId('counter-value').getAttribute('data-value')}, line chart's newest ${await line.getAttribute('data-latest')}, not ${LIVE}`,
      );
    await tableMatches(sorted([...pastCounts, LIVE]), 15_000);
    const newest = (await tableValues(table))[0];
    if (newest !== LIVE) fail(`the table's newest window holds ${newest}, not ${LIVE}`);
    log(
      `counter and line chart show ${LIVE}; the table adds up to ${past.length + LIVE}, newest window ${LIVE}`,
    );
    await shoot('dashboard');

    // 5. An alert rule: more than 3 pro checkouts a minute, notified to the receiver.
    await page.getByTestId('nav-alerts').click();
    await page.getByTestId('alerts-page').waitFor();
    await page.getByTestId('no-rules').waitFor();
    await page.getByTestId('new-rule').click();
    const rule = page.getByTestId('rule-editor');
    await rule
      .getByTestId('rule-metric')
      .locator('option[value="checkouts"]')
      .waitFor({ state: 'attached' });
    await rule.getByTestId('rule-metric').selectOption('checkouts');
    await rule.getByTestId('rule-stat').selectOption('count');
    await rule.getByTestId('rule-name').fill('Busy pro checkouts');
    await rule.getByTestId('rule-dim-plan').fill('pro');
    await rule.getByTestId('rule-condition').selectOption('gt');
    await rule.getByTestId('rule-threshold').fill('3');
    await rule.getByTestId('rule-for').fill('1');
    await rule.getByTestId('rule-evaluate-on').selectOption('provisional');
    await rule.getByTestId('rule-webhook').fill(receiver.url);
    await rule.getByTestId('dialog-submit').click();
    await rule.waitFor({ state: 'detached' });
    await page.getByTestId('alert-detail').waitFor();
    const alertId = new URL(page.url()).searchParams.get('alert');
    log(`rule ${alertId} created`);
    // The minute of the checkouts above may have closed meanwhile: 4 more pro checkouts now.
    const more = Array.from({ length: 4 }, (_, i) => checkout(201 + 2 * i, Date.now()));
    await sendEvents(agent, ingestKey, more, fail);
    await page
      .locator('[data-testid="rule-state-slot"] [data-testid="alert-state"][data-state="firing"]')
      .waitFor({ timeout: FIRE_WITHIN_MS });
    await page
      .locator('[data-testid="series-row"][data-state="firing"]')
      .filter({ hasText: 'plan=pro' })
      .waitFor();
    const firing = await receiver.waitReceived(
      (r) => r.body?.status === 'firing',
      'the firing notification',
      FIRE_WITHIN_MS,
    );
    if (
      firing.body.commonLabels.plan !== 'pro' ||
      firing.body.commonLabels.alertname !== 'Busy pro checkouts'
    )
      fail(`firing notification labels: ${JSON.stringify(firing.body.commonLabels)}`);
    log(`firing in the UI and at the receiver: ${firing.body.text.split('\n')[0]}`);

    await silenceForAnHour(page, 'plan=pro', 'newcomer test');
    log('silence active and shown on the series');
    await shoot('alert-detail');
    await page.getByTestId('nav-alerts').click();
    await page
      .locator(
        `[data-testid="rule-row"][data-alert="${alertId}"] [data-testid="alert-state"][data-state="firing"]`,
      )
      .waitFor();
    await shoot('alerts');

    // 6. Data quality. `accepted` is the built-in events metric, which counts the live
    // checkouts; the 24 old ones arrived late, beyond the correction horizon (for every metric
    // but the backfilled one); the invalid one is rejected with its reason.
    const want = {
      accepted: String(live.length + more.length),
      rejected: '1',
      late: String(past.length),
      'beyond-horizon': String(past.length),
    };
    await page.getByTestId('nav-quality').click();
    await page.waitForURL(/[?&]page=quality/);
    await waitForQualityRow(page, 'shop', 'checkout', want, fail);
    const rejection = page.locator(
      '[data-testid="rejection"][data-reason="wrong_type"][data-source="shop"]',
    );
    await rejection.waitFor();
    const rejected = await rejection.getByTestId('rejection-count').textContent();
    if (rejected !== '1') fail(`wrong_type count: ${rejected}`);
    const reason = await rejection.textContent();
    if (!reason.includes('wrong_type')) fail(`the rejection does not name its reason: ${reason}`);
    const sample = rejection.getByTestId('sample').first();
    await sample.locator('summary').click();
    const detail = await sample.getByTestId('sample-detail').textContent();
    if (!detail.includes('`occurred_at` must be an RFC 3339 timestamp'))
      fail(`the rejected checkout's detail: ${detail}`);
    log(`quality: ${JSON.stringify(want)}, the rejection wrong_type: ${detail}`);
    await shoot('quality');
  },
  () => receiver.close(),
);
