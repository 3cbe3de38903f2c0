// The web app's API types come from the gateway's OpenAPI document:
//   openapi.json       the document, as `cargo run -p gateway --example openapi` prints it
//   src/api-types.ts   the TypeScript generated from it by openapi-typescript
// Both are committed. `node scripts/api-types.mjs` regenerates them (npm run gen:api);
// `--check` fails when either differs from what the gateway's code gives now (npm test). Without
// cargo on PATH the check can only compare the types with the committed document, and says so.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import openapiTS, { astToString } from 'openapi-typescript';

const check = process.argv.includes('--check');
const documentPath = new URL('../openapi.json', import.meta.url);
const typesPath = new URL('../src/api-types.ts', import.meta.url);
const manifest = new URL('../../Cargo.toml', import.meta.url).pathname;

const HEADER = `/**
 * Generated from the gateway's OpenAPI document (web/openapi.json) by openapi-typescript:
 * do not edit. Regenerate with \`npm run gen:api\`; \`npm test\` fails when it is stale.
 */

`;

/** The document from the gateway's code, or null when cargo is not installed. */
function gatewayDocument() {
  try {
    return execFileSync(
      'cargo',
      ['run', '--quiet', '--manifest-path', manifest, '-p', 'gateway', '--example', 'openapi'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
    );
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
}

async function typesOf(document) {
  const ast = await openapiTS(JSON.parse(document), { enumValues: true, silent: true });
  return HEADER + astToString(ast);
}

const read = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

const stale = [];
let document = gatewayDocument();
if (document === null) {
  if (!check) throw new Error('cargo is needed to print the gateway OpenAPI document');
  console.warn('api-types: cargo not found; openapi.json not compared with the gateway code');
  document = read(documentPath) ?? '';
} else if (document !== read(documentPath)) {
  stale.push('openapi.json');
  if (!check) writeFileSync(documentPath, document);
}
const types = await typesOf(document);
if (types !== read(typesPath)) {
  stale.push('src/api-types.ts');
  if (!check) writeFileSync(typesPath, types);
}

if (check && stale.length > 0) {
  console.error(`api-types: ${stale.join(' and ')} stale: run \`npm run gen:api\` and commit`);
  process.exit(1);
}
console.log(
  check
    ? 'api-types: up to date'
    : `api-types: ${stale.length ? `wrote ${stale.join(', ')}` : 'unchanged'}`,
);
