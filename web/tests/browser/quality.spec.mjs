#!/usr/bin/env node
// Browser test of the data-quality page against a running stack (gateway serving web/dist,
// edge agent): a new tenant's page says nothing arrived; the test sends good events and a
// rejected one whose raw text holds markup; reached from the top bar, the page shows the
// source and event type with their exact counts, the rejection with its reason and count,
// and its sample, expanded, as text (the markup is not rendered); the range presets reload
// it. Screenshots (dark and light) go to test-artifacts/; any console error fails the test.
//
// Env: see harness.mjs.

import { setUp } from './harness.mjs';
import { sendEvents, shootBothThemes, waitForQualityRow, watchConsole } from './steps.mjs';

const { gateway, agent, artifacts, tenant, log, fail, createKey, run } = await setUp(
  'quality-test',
  'quality',
);
const viewerKey = await createKey('viewer', 'browser test');
const ingestKey = await createKey('ingest', 'browser test producer');
log(`tenant ${tenant}, gateway ${gateway}, agent ${agent}`);

await run('quality-failure.png', async ({ page, consoleErrors }) => {
  // Signed out, the page's `GET /v1/session` answers 401 on purpose.
  watchConsole(page, consoleErrors);

  await page.goto(`${gateway}/#key=${viewerKey}`);
  await page.getByTestId('sign-out').waitFor();
  log('signed in');

  // A new tenant: the page says nothing arrived.
  await page.goto(`${gateway}/?tenant=${encodeURIComponent(tenant)}`);
  await page.getByTestId('nav-quality').click();
  await page.waitForURL(/[?&]page=quality/);
  await page.getByTestId('quality-empty').waitFor();
  const empty = await page.getByTestId('quality-empty').textContent();
  if (!empty.includes('No events arrived')) fail(`empty state: ${empty}`);
  log('empty state shown');

  // 3 good events and a rejected one (a number as occurred_at) whose text holds markup.
  const markup = '<img src=x onerror="window.__injected=1"><b>bold</b>';
  const good = () => ({
    tenant_id: tenant,
    source: 'shop',
    event_type: 'purchase',
    properties: { amount: 5 },
    occurred_at: new Date().toISOString(),
  });
  const bad = {
    tenant_id: tenant,
    source: 'shop',
    event_type: 'purchase',
    properties: { note: markup },
    occurred_at: 12,
  };
  const { reply } = await sendEvents(agent, ingestKey, [good(), good(), good(), bad], fail);
  if (reply.accepted !== 3 || reply.errors?.[0]?.code !== 'wrong_type')
    fail(`edge agent answered ${JSON.stringify(reply)}`);
  log('sent 3 good events and 1 rejected (wrong_type)');

  // Windows reach storage within seconds: refresh until the row has its exact counts.
  const row = await waitForQualityRow(
    page,
    'shop',
    'purchase',
    { accepted: '3', rejected: '1', late: '0' },
    fail,
  );
  log('row shop / purchase: 3 accepted, 1 rejected, 0 late');

  const rejection = page.locator(
    '[data-testid="rejection"][data-reason="wrong_type"][data-source="shop"]',
  );
  await rejection.waitFor();
  const count = await rejection.getByTestId('rejection-count').textContent();
  if (count !== '1') fail(`wrong_type count: ${count}`);
  const sample = rejection.getByTestId('sample').first();
  await sample.locator('summary').click();
  const raw = sample.getByTestId('sample-raw');
  await raw.waitFor();
  const rawText = await raw.textContent();
  if (!rawText.includes('<img src=x') || JSON.parse(rawText).properties.note !== markup)
    fail(`the sample is not the raw item as text: ${rawText}`);
  if ((await rejection.locator('img, b').count()) !== 0) fail('the sample was rendered as HTML');
  if (await page.evaluate(() => window.__injected)) fail('the sample ran script');
  const detail = await sample.getByTestId('sample-detail').textContent();
  if (!detail.includes('occurred_at')) fail(`sample detail: ${detail}`);
  log('rejection wrong_type with its sample, shown as text');

  // A preset reloads the page for that range.
  await page.locator('[data-range="7d"]').click();
  await page.locator('[data-range="7d"][aria-pressed="true"]').waitFor();
  await row.waitFor();
  log('7d preset reloads');

  // Screenshots in both themes, the sample expanded.
  await page.locator('[data-range="1h"]').click();
  await rejection.getByTestId('sample').first().locator('summary').click();
  await rejection.getByTestId('sample-raw').first().waitFor();
  const shots = await shootBothThemes(page, artifacts, 'quality');
  log(`screenshots in ${artifacts}: ${shots.join(', ')}`);
});
