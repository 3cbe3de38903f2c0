// What every browser spec shares: the stack it runs against, the checks made before chromium
// starts, a tenant of its own with keys the stack's operator key creates, chromium itself, and
// the end of a run (console errors fail it, a failure leaves a screenshot, chromium and its
// profile are removed whatever happened).
//
// Env: RTDASH_GATEWAY_URL (default http://127.0.0.1:8080), RTDASH_AGENT_URL (default
// http://127.0.0.1:8081), RTDASH_CHROMIUM (default /usr/bin/chromium), RTDASH_TEST_ARTIFACTS
// (default <repo>/test-artifacts), RTDASH_OPERATOR_KEY_FILE (default <repo>/.rtdash/operator.key,
// where ./deploy/up.sh writes it). When neither service answers, a spec skips (exit 0) unless
// RTDASH_BROWSER_TEST_REQUIRED is set: then it fails.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

async function reachable(base) {
  try {
    await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks the stack, creates the spec's tenant (`<tenantPrefix>-<random>`) and starts chromium.
 * `name` prefixes every line the spec prints. Returns what the spec uses: `gateway`, `agent`,
 * `artifacts`, `tenant`, `context`, `log(msg)`, `fail(msg)` (throws), `createKey(role, name)`,
 * `operatorKey` (the stack's), and `run(failureShot, body, cleanup?)`.
 */
export async function setUp(name, tenantPrefix) {
  const gateway = (process.env.RTDASH_GATEWAY_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
  const agent = (process.env.RTDASH_AGENT_URL || 'http://127.0.0.1:8081').replace(/\/$/, '');
  const required = Boolean(process.env.RTDASH_BROWSER_TEST_REQUIRED);
  const chromiumPath = process.env.RTDASH_CHROMIUM || '/usr/bin/chromium';
  const artifacts =
    process.env.RTDASH_TEST_ARTIFACTS || path.resolve(here, '../../../test-artifacts');
  const started = Date.now();
  const log = (msg) =>
    console.log(`[${name} +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
  const fail = (msg) => {
    console.error(`[${name}] FAILED: ${msg}`);
    process.exitCode = 1;
    throw new Error(msg);
  };
  /** Before the browser starts: report and exit. */
  const abort = (msg) => {
    console.error(`[${name}] FAILED: ${msg}`);
    process.exit(1);
  };

  const [gatewayUp, agentUp] = await Promise.all([reachable(gateway), reachable(agent)]);
  if (!gatewayUp && !agentUp && !required) {
    console.log(
      `[${name}] SKIPPED: no stack at RTDASH_GATEWAY_URL=${gateway} or RTDASH_AGENT_URL=${agent}. Start one (./deploy/up.sh) or set RTDASH_BROWSER_TEST_REQUIRED=1 to make this a failure.`,
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

  const tenant = `${tenantPrefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
  const operatorKeyFile =
    process.env.RTDASH_OPERATOR_KEY_FILE || path.resolve(here, '../../../.rtdash/operator.key');
  if (!existsSync(operatorKeyFile))
    abort(`no operator key at ${operatorKeyFile} (set RTDASH_OPERATOR_KEY_FILE)`);
  const operatorKey = readFileSync(operatorKeyFile, 'utf8').trim();
  /** A new key of the spec's tenant (the secret). */
  const createKey = async (role, keyName) => {
    const res = await fetch(`${gateway}/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operatorKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: tenant, role, name: keyName }),
    });
    if (res.status !== 201) fail(`POST /v1/keys answered ${res.status}: ${await res.text()}`);
    return (await res.json()).key;
  };

  const userDataDir = mkdtempSync(path.join(tmpdir(), 'rtdash-chromium-'));
  mkdirSync(artifacts, { recursive: true });
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

  /**
   * Runs `body({ page, consoleErrors })` on the first page: console errors it collected fail
   * the run at its end; a failure saves `failureShot` (a file name in `artifacts`). Chromium,
   * its profile and what `cleanup` releases are gone afterwards.
   */
  const run = async (failureShot, body, cleanup = () => {}) => {
    const consoleErrors = [];
    let page;
    try {
      page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(15_000);
      await body({ page, consoleErrors });
      if (consoleErrors.length) fail(`console errors:\n  ${consoleErrors.join('\n  ')}`);
      log(`PASSED in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    } catch (err) {
      if (!process.exitCode) {
        process.exitCode = 1;
        console.error(`[${name}] FAILED: ${err instanceof Error ? err.message : err}`);
        if (consoleErrors.length) console.error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
      }
      try {
        await page?.screenshot({ path: path.join(artifacts, failureShot), fullPage: true });
        console.error(`[${name}] screenshot: ${path.join(artifacts, failureShot)}`);
      } catch {
        /* page gone */
      }
    } finally {
      await context.close().catch(() => {});
      await cleanup();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  };

  return { gateway, agent, artifacts, tenant, context, log, fail, createKey, operatorKey, run };
}
