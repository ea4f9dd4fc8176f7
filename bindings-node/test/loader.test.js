'use strict';
// The hand-written loader (index.js): its export list is the addon's own,
// ESM named imports see every name, and a missing addon is a clear error.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { pathToFileURL } = require('node:url');

const LOADER = path.join(__dirname, '..', 'index.js');
const ADDON = path.join(__dirname, '..', `vmrestore.${process.platform}-${process.arch}-gnu.node`);

const addonNames = () => Object.keys(require(ADDON)).sort();

test("the loader lists exactly the addon's exports", () => {
  const listed = [...fs.readFileSync(LOADER, 'utf8').matchAll(/^module\.exports\.(\w+) = nativeBinding\.(\w+);$/gm)];
  for (const [, name, from] of listed) assert.equal(name, from);
  assert.deepEqual(listed.map((m) => m[1]).sort(), addonNames());
  assert.deepEqual(Object.keys(require('..')).sort(), addonNames());
});

test('ESM named imports see every export', async () => {
  const ns = await import(pathToFileURL(LOADER).href);
  assert.deepEqual(Object.keys(ns).filter((k) => k !== 'default').sort(), addonNames());
  assert.equal(ns.plan, require('..').plan);
});

test('a missing addon is an Error naming the platform', () => {
  const missing = path.join(__dirname, 'no-such-addon.node');
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(LOADER)})`], {
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: missing },
    encoding: 'utf8',
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`Error: vmrestore: cannot load the native addon for ${process.platform}-${process.arch} `));
  assert.ok(r.stderr.includes(missing), r.stderr);
});
