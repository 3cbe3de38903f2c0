#!/usr/bin/env node
// Browser test of a 30-day dashboard: seeds 30 days of the 1h and 1d rollup tiers for a
// metric of 4 regions x 3 hosts (`rtdash-loadgen seed-tiers`, the rows and mergeable states
// the aggregators write), creates a dashboard of 8 widgets over the last 30 days (counts,
// percentiles, distinct users per day, a split by region as lines and as a table), opens it
// three times and checks that every widget is drawn with data at the resolution `auto` picks
// (a chart, a value or rows; no message), that the split widgets show one series per region,
// and how long each open took until every widget was drawn (written to
// test-artifacts/longrange-open.json; the figure in BENCHMARKS.md comes from there).
//
// Env: see harness.mjs; besides, RTDASH_LOADGEN (default <target>/debug/rtdash-loadgen) and
// RTDASH_QUESTDB_HTTP (default: the stack's QuestDB HTTP port, 9000 shifted as the gateway's
// 8080 is). QuestDB's admin password is read from the stack's state directory (the operator
// key file's directory, secrets/questdb.env).

import { setUp } from './harness.mjs';
import { watchConsole } from './steps.mjs';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const REGIONS = ['region-00', 'region-01', 'region-02', 'region-03'];
const OPENS = 3;

const { gateway, artifacts, tenant, log, fail, createKey, run } = await setUp(
  'long-range',
  'longrange',
);
const editorKey = await createKey('editor', 'long-range browser test');
const metric = 'latency';

// 30 days of tier rows, written as the aggregators write them.
const stateDir = path.dirname(
  process.env.RTDASH_OPERATOR_KEY_FILE || path.join(root, '.rtdash/operator.key'),
);
const secrets = Object.fromEntries(
  readFileSync(path.join(stateDir, 'secrets/questdb.env'), 'utf8')
    .split('\n')
    .map((line) => line.match(/^\s*(?:export\s+)?([A-Z_]+)=['"]?([^'"]*)['"]?\s*$/))
    .filter(Boolean)
    .map((m) => [m[1], m[2]]),
);
const gatewayPort = Number(new URL(gateway).port || 80);
const questdb = process.env.RTDASH_QUESTDB_HTTP || `127.0.0.1:${gatewayPort - 8080 + 9000}`;
const loadgen =
  process.env.RTDASH_LOADGEN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug/rtdash-loadgen');
const operatorKey = readFileSync(
  process.env.RTDASH_OPERATOR_KEY_FILE || path.join(stateDir, 'operator.key'),
  'utf8',
).trim();
const seeded = execFileSync(
  loadgen,
  [
    '--key',
    operatorKey,
    'seed-tiers',
    '--gateway',
    gateway,
    '--questdb',
    questdb,
    '--tenant',
    tenant,
    '--metric',
    metric,
    '--days',
    '30',
    '--regions',
    String(REGIONS.length),
    '--hosts',
    '3',
    '--events-per-hour',
    '20',
    '--users',
    '2000',
  ],
  { env: { ...process.env, ...secrets }, encoding: 'utf8', timeout: 300_000 },
);
log(`seeded: ${seeded.trim().split('\n').slice(-2).join(' / ')}`);

// Eight widgets over the last 30 days.
const widget = (title, stat, viz_type, extra = {}) => ({
  title,
  metric_name: metric,
  stat,
  time_window: 'last_30d',
  viz_type,
  ...extra,
});
const widgets = [
  widget('Requests', 'count', 'line_chart'),
  widget('p99 latency', 'p99', 'line_chart'),
  widget('Users per day', 'unique', 'bar_chart', { window: '1d' }),
  widget('Mean latency', 'avg', 'area_chart'),
  widget('p99 by region', 'p99', 'line_chart', { group_by: ['region'] }),
  widget('Requests by region', 'count', 'table', { group_by: ['region'] }),
  widget('Slowest request', 'max', 'counter', { window: '1d' }),
  widget('Median latency', 'p50', 'counter', { window: '1d' }),
];
const created = await fetch(`${gateway}/v1/dashboards`, {
  method: 'POST',
  headers: { authorization: `Bearer ${editorKey}`, 'content-type': 'application/json' },
  body: JSON.stringify({ tenant_id: tenant, name: 'Last 30 days', widgets }),
});
if (created.status !== 201)
  fail(`POST /v1/dashboards answered ${created.status}: ${await created.text()}`);
const dashboardId = (await created.json()).dashboard_id;
log(`dashboard ${dashboardId} with ${widgets.length} widgets over 30 days`);

await run('longrange-failure.png', async ({ page, consoleErrors }) => {
  watchConsole(page, consoleErrors, () => false);
  await page.goto(`${gateway}/#key=${editorKey}`);
  await page.getByTestId('sign-out').waitFor();

  const url = `${gateway}/?tenant=${encodeURIComponent(tenant)}&dashboard=${encodeURIComponent(dashboardId)}`;
  const panels = page.locator('[data-testid="widget"]');
  const opens = [];
  for (let open = 1; open <= OPENS; open++) {
    const started = Date.now();
    await page.goto(url);
    await panels.nth(widgets.length - 1).waitFor();
    // Every widget drawn: loaded with data, nothing in its message line.
    await page.waitForFunction(
      (count) => {
        const all = [...document.querySelectorAll('[data-testid="widget"]')];
        return all.length === count && all.every((w) => w.dataset.loaded === '1');
      },
      widgets.length,
      { timeout: 30_000 },
    );
    opens.push(Date.now() - started);
    log(`open ${open}: every widget drawn in ${opens.at(-1)} ms`);
  }
  for (let i = 0; i < widgets.length; i++) {
    const panel = panels.nth(i);
    const title = widgets[i].title;
    if (await panel.locator('.panel-message').isVisible())
      fail(`${title}: ${await panel.locator('.panel-message').textContent()}`);
    const resolution = await panel.getByTestId('widget-resolution').textContent();
    const expected = widgets[i].window ? /^1d$/ : /^\d+[hd] · auto$/;
    if (!expected.test(resolution ?? '')) fail(`${title}: resolution ${resolution}`);
  }
  // The split widgets: a table row and a line per region.
  const table = panels.nth(5);
  for (const region of REGIONS)
    await table.locator('tr', { hasText: region }).first().waitFor({ timeout: 5_000 });
  const lines = await panels.nth(4).textContent();
  for (const region of REGIONS)
    if (!lines?.includes(region)) fail(`p99 by region: no series for ${region}`);
  await page.screenshot({ path: path.join(artifacts, 'longrange.png'), fullPage: true });
  const sorted = [...opens].sort((a, b) => a - b);
  writeFileSync(
    path.join(artifacts, 'longrange-open.json'),
    JSON.stringify(
      { widgets: widgets.length, days: 30, opens_ms: opens, median_ms: sorted[1] },
      null,
      2,
    ),
  );
  log(`opens (ms): ${opens.join(', ')}; median ${sorted[1]} ms`);
});
