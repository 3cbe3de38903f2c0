#!/usr/bin/env node
// Browser test of the alerts pages against a running stack (gateway serving web/dist, edge
// agent, aggregator), with a webhook receiver the test runs on loopback (the stack must allow
// 127.0.0.1 as a webhook destination: deploy/test.sh starts it so). Through the page only: a
// refused webhook shows its error next to the field; a rule is created and listed with state
// `ok`; it is edited (the write-only webhook left empty is kept); a test notification arrives
// at the receiver; events make the rule fire (`firing` in the UI, the notification at the
// receiver); a silence is created, mutes the series, and is expired; the dashboard shows the rule's served state on a widget of its metric. Screenshots
// of the alerts page and the rule page (dark and light) go to test-artifacts/; any console
// error fails the test.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import {
  addWidget,
  createDashboard,
  sendEvents,
  shootBothThemes,
  silenceForAnHour,
  startReceiver,
  watchConsole,
} from './steps.mjs';

/** How long the pipeline may take to fire a rule on provisional windows. */
const FIRE_WITHIN_MS = 60_000;
const { gateway, agent, artifacts, tenant, log, fail, createKey, run } = await setUp(
  'alerts-test',
  'alerttest',
);
const editorKey = await createKey('editor', 'alerts browser test');
const ingestKey = await createKey('ingest', 'alerts browser test producer');
// The webhook receiver: records every request (path, Idempotency-Key, JSON body), answers 200.
const receiver = await startReceiver('/hook/alerts-test', fail);
const hook = receiver.url;
const waitReceived = receiver.waitReceived;

log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}, receiver ${hook}`);

await run(
  'alerts-failure.png',
  async ({ page, consoleErrors }) => {
    // The refused webhook's 400 is on purpose; Chromium logs failed requests as errors.
    watchConsole(
      page,
      consoleErrors,
      (text) => text.includes('status of 401') || text.includes('status of 400'),
    );

    await page.goto(`${gateway}/#key=${editorKey}`);
    await page.getByTestId('sign-out').waitFor();
    await page.goto(`${gateway}/?tenant=${encodeURIComponent(tenant)}`);
    await page.getByTestId('nav-alerts').click();
    await page.getByTestId('alerts-page').waitFor();
    await page.getByTestId('no-rules').waitFor();
    log('signed in; alerts page empty');

    // The editor: the metric picker offers the tenant's metrics, the stat picker its stats.
    await page.getByTestId('new-rule').click();
    const dlg = page.getByTestId('rule-editor');
    await dlg.getByTestId('rule-metric').locator('option[value="events"]').waitFor({
      state: 'attached',
    });
    await dlg.getByTestId('rule-metric').selectOption('events');
    await dlg.getByTestId('rule-stat').selectOption('count');
    await dlg.getByTestId('rule-name').fill('Alert test: busy source');
    await dlg.getByTestId('rule-description').fill('More than 5 events a minute from alert-test.');
    await dlg.getByTestId('rule-labels').fill('severity=page, team=web');
    await dlg.getByTestId('rule-dim-source').fill('alert-test');
    await dlg.getByTestId('rule-condition').selectOption('gt');
    await dlg.getByTestId('rule-threshold').fill('5');
    await dlg.getByTestId('rule-for').fill('1');
    await dlg.getByTestId('rule-evaluate-on').selectOption('provisional');
    // A webhook to the cloud metadata address: refused, the message next to the field.
    await dlg.getByTestId('rule-webhook').fill('http://169.254.169.254/latest/meta-data/');
    await dlg.getByTestId('dialog-submit').click();
    const webhookError = dlg.getByTestId('rule-error-notify_channel');
    await webhookError.waitFor();
    const refused = await webhookError.textContent();
    if (!refused?.includes('link-local')) fail(`webhook error: ${refused}`);
    log(`refused webhook shown at its field: ${refused}`);
    await dlg.getByTestId('rule-webhook').fill(hook);
    await dlg.getByTestId('dialog-submit').click();
    await dlg.waitFor({ state: 'detached' });
    await page.getByTestId('alert-detail').waitFor();
    const alertId = new URL(page.url()).searchParams.get('alert');
    if (!alertId) fail(`no rule in the address: ${page.url()}`);
    log(`rule ${alertId} created`);

    // Listed with its served state `ok`.
    await page.getByTestId('nav-alerts').click();
    const row = page.locator(`[data-testid="rule-row"][data-alert="${alertId}"]`);
    await row.locator('[data-testid="alert-state"][data-state="ok"]').waitFor();
    const rowText = await row.textContent();
    if (
      !rowText?.includes('Alert test: busy source') ||
      !rowText.includes('count {source=alert-test} > 5')
    )
      fail(`rule row: ${rowText}`);
    log('listed with state ok');

    // Rule page: edit the threshold, leaving the write-only webhook empty (kept, as the test
    // notification below proves).
    await row.getByTestId('rule-link').click();
    await page.getByTestId('alert-detail').waitFor();
    await page.getByTestId('edit-rule').click();
    const edit = page.getByTestId('rule-editor');
    await edit.getByTestId('rule-stat').locator('option[value="count"]').waitFor({
      state: 'attached',
    });
    if ((await edit.getByTestId('rule-webhook').inputValue()) !== '')
      fail('the webhook was read back into the editor');
    await edit.getByTestId('rule-threshold').fill('6');
    await edit.getByTestId('dialog-submit').click();
    await edit.waitFor({ state: 'detached' });
    await page
      .getByTestId('rule-condition-text')
      .filter({ hasText: 'count {source=alert-test} > 6' })
      .waitFor();
    log('rule edited (threshold 6), webhook kept');

    // A test notification reaches the receiver.
    await page.getByTestId('send-test').click();
    await page.locator('[data-testid="test-result"][data-outcome="delivered"]').waitFor();
    const test = await waitReceived(
      (r) => r.body?.commonLabels?.test === 'true',
      'the test notification',
      5000,
    );
    if (test.body.commonLabels.alertname !== 'Alert test: busy source')
      fail(`test notification labels: ${JSON.stringify(test.body.commonLabels)}`);
    await page.locator('[data-testid="history-row"][data-kind="test"]').first().waitFor();
    log(`test notification delivered (${test.key}) and listed in the history`);

    // Events that breach: 10 from the watched source.
    const now = new Date().toISOString();
    const events = Array.from({ length: 10 }, () => ({
      tenant_id: tenant,
      source: 'alert-test',
      event_type: 'page_view',
      properties: {},
      occurred_at: now,
    }));
    await sendEvents(agent, ingestKey, events, fail);
    log(`sent ${events.length} events`);
    await page
      .locator('[data-testid="rule-state-slot"] [data-testid="alert-state"][data-state="firing"]')
      .waitFor({ timeout: FIRE_WITHIN_MS });
    await page
      .locator('[data-testid="series-row"][data-state="firing"]')
      .filter({ hasText: 'source=alert-test' })
      .waitFor();
    const firing = await waitReceived(
      (r) => r.body?.status === 'firing' && r.body?.commonLabels?.test === undefined,
      'the firing notification',
      FIRE_WITHIN_MS,
    );
    if (firing.body.commonLabels.source !== 'alert-test')
      fail(`firing notification labels: ${JSON.stringify(firing.body.commonLabels)}`);
    log(`firing in the UI and at the receiver: ${firing.body.text.split('\n')[0]}`);

    // A silence of the series for 1 hour: listed active, the series shows it mutes it.
    await silenceForAnHour(page, 'source=alert-test', 'browser test');
    log('silence active and shown on the series');

    // Screenshots of both pages in both themes (the rule page shows state, silence, history).
    await shootBothThemes(page, artifacts, 'alert-detail');
    await page.getByTestId('nav-alerts').click();
    await row.locator('[data-testid="alert-state"][data-state="firing"]').waitFor();
    await shootBothThemes(page, artifacts, 'alerts');
    log(`screenshots in ${artifacts}: alerts-*.png, alert-detail-*.png`);

    // Expire the silence.
    await row.getByTestId('rule-link').click();
    await page.locator('[data-testid="silence-row"][data-status="active"]').waitFor();
    await page.getByTestId('expire-silence').click();
    await page.getByTestId('expire-dialog').getByTestId('dialog-submit').click();
    await page.locator('[data-testid="silence-row"][data-status="expired"]').waitFor();
    log('silence expired');

    // The dashboard shows the rule's served state on a widget of its metric.
    await page.getByTestId('nav-dashboards').click();
    await createDashboard(page, 'Alerts test');
    await addWidget(page, { viz: 'counter', title: 'Events' });
    await page
      .locator(`[data-testid="badge-alert"][data-alert="${alertId}"][data-state="firing"]`)
      .waitFor();
    log('dashboard widget shows the rule firing');
    await page.getByTestId('delete-dashboard').click();
    await page.getByTestId('delete-dialog').getByTestId('dialog-submit').click();
    await page.waitForURL((u) => !u.searchParams.has('dashboard'));

    // Delete the rule, with confirmation.
    await page.getByTestId('nav-alerts').click();
    await row.getByTestId('rule-link').click();
    await page.getByTestId('delete-rule').click();
    await page.getByTestId('delete-rule-dialog').getByTestId('dialog-submit').click();
    await page.getByTestId('no-rules').waitFor();
    log('rule deleted');
  },
  receiver.close,
);
