// Steps the browser specs share beyond the harness: what a producer does (send events to the
// edge agent), a webhook receiver on loopback, the console watch, screenshots in both themes,
// and the page's own ways of signing in, making a dashboard and adding a widget.

import { createServer } from 'node:http';
import path from 'node:path';

/**
 * Sends `events` to the edge agent as a producer would (`POST /v1/events` with an ingest
 * key). Returns the status and the parsed answer; `fail` is called when the agent does not
 * answer 202.
 */
export async function sendEvents(agent, ingestKey, events, fail) {
  const res = await fetch(`${agent}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestKey}` },
    body: JSON.stringify(events),
  });
  const text = await res.text();
  if (res.status !== 202) fail(`edge agent answered ${res.status}: ${text.slice(0, 300)}`);
  return { status: res.status, reply: JSON.parse(text) };
}

/**
 * Collects the page's console errors and uncaught exceptions into `consoleErrors` (the
 * harness fails the run on any). `expected(text)` says which error lines are on purpose:
 * by default a 401 (signed out, `GET /v1/session` answers it), which Chromium logs as an error.
 */
export function watchConsole(
  page,
  consoleErrors,
  expected = (text) => text.includes('status of 401'),
) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expected(msg.text()))
      consoleErrors.push(`console.error: ${msg.text()} (${msg.location().url ?? ''})`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
}

/**
 * A webhook receiver on 127.0.0.1 (the stack must allow loopback as a webhook destination:
 * deploy/test.sh starts it so). Records every request (`path`, `key` = its Idempotency-Key,
 * JSON `body`) and answers 200. Returns `url` (of `hookPath`), `received`,
 * `waitReceived(predicate, what, withinMs)` and `close()`.
 */
export async function startReceiver(hookPath, fail) {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let json = null;
      try {
        json = JSON.parse(body);
      } catch {
        /* recorded as null */
      }
      received.push({ path: req.url, key: req.headers['idempotency-key'] ?? '', body: json });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const waitReceived = async (predicate, what, within) => {
    const deadline = Date.now() + within;
    while (Date.now() < deadline) {
      const found = received.find(predicate);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    fail(
      `${what} not received within ${within} ms; got ${JSON.stringify(received.map((r) => r.body?.text))}`,
    );
  };
  return {
    url: `http://127.0.0.1:${server.address().port}${hookPath}`,
    received,
    waitReceived,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The page's theme, `dark` or `light`. */
export const themeOf = (page) => page.evaluate(() => document.documentElement.dataset.theme);

/**
 * Screenshots of the page as it is in both themes (`<name>-dark.png`, `<name>-light.png` in
 * `artifacts`), switched with the top bar's toggle and switched back. Returns the file names.
 */
export async function shootBothThemes(page, artifacts, name, { fullPage = true } = {}) {
  const files = [];
  for (let i = 0; i < 2; i++) {
    const before = await themeOf(page);
    if (i > 0) {
      await page.getByTestId('theme-toggle').click();
      await page.waitForFunction((t) => document.documentElement.dataset.theme !== t, before);
    }
    await page.waitForTimeout(100); // charts repaint in the new theme's colours
    const file = `${name}-${await themeOf(page)}.png`;
    await page.screenshot({ path: path.join(artifacts, file), fullPage });
    files.push(file);
  }
  const now = await themeOf(page);
  await page.getByTestId('theme-toggle').click();
  await page.waitForFunction((t) => document.documentElement.dataset.theme !== t, now);
  return files;
}

/** Signs in through the sign-in page's form with `key`; resolves once signed in. */
export async function signInThroughForm(page, key) {
  await page.getByTestId('signin').waitFor();
  await page.getByTestId('signin-key').fill(key);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('sign-out').waitFor();
}

/** Creates a dashboard named `name` through the page; resolves on its (empty) page. */
export async function createDashboard(page, name) {
  await page.getByTestId('new-dashboard').click();
  const dlg = page.getByTestId('create-dialog');
  await dlg.getByTestId('dashboard-name').fill(name);
  await dlg.getByTestId('dialog-submit').click();
  await page.waitForURL(/[?&]dashboard=/);
  return new URL(page.url()).searchParams.get('dashboard');
}

/**
 * Adds a widget through the Add-widget dialog: `metric` (waited for among the options),
 * `stat`, `viz`, `title`, optionally `timeWindow` and `inEditor(dialog)` for more fields.
 * Returns the widget (the article named by its title).
 */
export async function addWidget(
  page,
  { metric = 'events', stat = 'count', viz, title, timeWindow, inEditor = async () => {} },
) {
  await page.getByTestId('add-widget').click();
  const dlg = page.getByTestId('widget-editor');
  await dlg
    .getByTestId('widget-metric')
    .locator(`option[value="${metric}"]`)
    .waitFor({ state: 'attached' });
  await dlg.getByTestId('widget-metric').selectOption(metric);
  await dlg.getByTestId('widget-stat').selectOption(stat);
  if (timeWindow) await dlg.getByTestId('widget-time-window').selectOption(timeWindow);
  await dlg.getByTestId('widget-viz').selectOption(viz);
  await inEditor(dlg);
  await dlg.getByTestId('widget-title').fill(title);
  await dlg.getByTestId('dialog-submit').click();
  await dlg.waitFor({ state: 'detached' });
  const widget = page.getByRole('article', { name: title, exact: true });
  await widget.waitFor();
  return widget;
}

/**
 * Reloads the metrics page until schema discovery lists `eventType` (the agents publish what
 * they saw every 10 s), at most `withinMs`. Returns the event type's row.
 */
export async function waitForEventType(page, eventType, fail, withinMs = 40_000) {
  const deadline = Date.now() + withinMs;
  const row = page.locator(`[data-testid="event-types"] [data-event-type="${eventType}"]`);
  for (;;) {
    await page.reload();
    await page.getByTestId('metric-list').waitFor();
    if (await row.count()) return row;
    if (Date.now() > deadline)
      fail(`the event type ${eventType} never appeared on the metrics page`);
    await page.waitForTimeout(1000);
  }
}

/** The values of a table widget's windows, newest first (numbers as shown, separators removed). */
export function tableValues(widget) {
  return widget
    .locator('tbody tr td.num')
    .evaluateAll((tds) => tds.map((td) => Number(td.textContent?.replace(/[^0-9.-]/g, '') || 0)));
}

/**
 * Waits, if fewer than `minLeftMs` are left of the current `windowMs` window, for the next one:
 * events sent then all fall into the window a single value shows.
 */
export async function waitForFreshWindow(page, windowMs, minLeftMs) {
  const left = windowMs - (Date.now() % windowMs);
  if (left < minLeftMs) await page.waitForTimeout(left + 200);
  return left < minLeftMs ? left + 200 : 0;
}

/**
 * Waits until the metric's card on the metrics page shows its backfill job with past windows
 * computed (`data-windows-done` > 0), at most `withinMs`. Returns the progress line.
 */
export async function waitForPastComputed(page, metric, fail, withinMs = 60_000) {
  const progress = page.getByTestId(`backfill-${metric}`);
  await progress.waitFor();
  const computed = await page
    .waitForFunction(
      (testId) =>
        Number(
          document.querySelector(`[data-testid="${testId}"]`)?.getAttribute('data-windows-done') ??
            0,
        ) > 0,
      `backfill-${metric}`,
      { timeout: withinMs, polling: 250 },
    )
    .then(() => true)
    .catch(() => false);
  if (!computed) fail(`the past windows were not computed: ${await progress.textContent()}`);
  return progress.textContent();
}

/**
 * On a rule's page: silences the series `matchers` select for 1 hour through the silence
 * dialog, then waits for the silence listed active and shown on a series it mutes.
 */
export async function silenceForAnHour(page, matchers, comment) {
  await page.getByTestId('new-silence').click();
  const dlg = page.getByTestId('silence-dialog');
  await dlg.getByTestId('silence-preset-1h').click();
  await dlg.getByTestId('silence-matchers').fill(matchers);
  await dlg.getByTestId('silence-comment').fill(comment);
  await dlg.getByTestId('dialog-submit').click();
  await dlg.waitFor({ state: 'detached' });
  await page.locator('[data-testid="silence-row"][data-status="active"]').waitFor();
  await page
    .locator('[data-testid="series-row"] [data-testid="silenced-by"] .badge')
    .first()
    .waitFor();
}

/**
 * On the data-quality page: refreshes until the row of `source` and `eventType` shows `want`
 * (column test id → text, e.g. `{ accepted: '3', rejected: '1' }`), at most `withinMs` (the
 * windows reach storage within seconds). Returns the row.
 */
export async function waitForQualityRow(page, source, eventType, want, fail, withinMs = 30_000) {
  const row = page.locator(
    `[data-testid="quality-row"][data-source="${source}"][data-type="${eventType}"]`,
  );
  const loaded = page.locator('[data-testid="quality-table"], [data-testid="quality-empty"]');
  const deadline = Date.now() + withinMs;
  for (;;) {
    await loaded.first().waitFor();
    const shown = {};
    if ((await row.count()) === 1)
      for (const column of Object.keys(want))
        shown[column] = await row.getByTestId(column).textContent();
    if (JSON.stringify(shown) === JSON.stringify(want)) return row;
    if (Date.now() > deadline)
      fail(
        `the quality page shows ${JSON.stringify(shown)} for ${source} / ${eventType}, not ${JSON.stringify(want)}`,
      );
    await page.waitForTimeout(1000);
    await page.getByTestId('quality-refresh').click();
  }
}
