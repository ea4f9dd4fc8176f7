'use strict';
// Shared helpers of the Node tests.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const VECTORS = path.join(ROOT, 'tests', 'vectors');

function load(name) {
  return JSON.parse(fs.readFileSync(path.join(VECTORS, name), 'utf8'));
}

/** Sets `value` at JSON pointer `ptr`, creating objects; index == length appends. */
function setPointer(doc, ptr, value) {
  const parts = ptr
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let cur = doc;
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    if (Array.isArray(cur)) {
      const idx = Number(part);
      if (idx === cur.length) cur.push({});
      if (last) cur[idx] = value;
      else cur = cur[idx];
    } else if (last) {
      cur[part] = value;
    } else {
      if (!(part in cur)) cur[part] = {};
      cur = cur[part];
    }
  });
}

/** For `assert.throws` / `assert.rejects`: the error is an Error with `code` (and a message matching `pattern`). */
function coded(code, pattern) {
  return (e) => {
    assert.ok(e instanceof Error, 'not an Error');
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

// Temporary directories of this test process, removed when it exits (demo
// repositories hold gigabytes of sparse images).
const made = [];
process.on('exit', () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

function tmpdir(prefix = 'vmrestore-node-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

module.exports = { ROOT, coded, load, setPointer, tmpdir };
