'use strict';
// The shared JSON test vectors: the same cases the Rust and Python tests run.
const test = require('node:test');
const assert = require('node:assert/strict');
const vmrestore = require('..');
const { load, setPointer } = require('./helpers');

const BASES = load('bases.json');
const CASES = load('cases.json');
const CATALOG = vmrestore.builtinCatalog();

function runCase(c) {
  const doc = structuredClone(BASES[c.base]);
  doc.catalog = structuredClone(CATALOG);
  for (const [ptr, value] of Object.entries(c.set || {})) setPointer(doc, ptr, value);
  return vmrestore.plan(doc.restore_point, doc.request, {
    profiles: c.profiles || [],
    rules: c.custom_rules,
    catalog: doc.catalog,
  });
}

test('there are vectors to run', () => {
  assert.ok(CASES.length >= 100, `only ${CASES.length} cases`);
});

for (const c of CASES) {
  test(c.name, () => {
    const exp = c.expect;
    if ('error' in exp) {
      assert.throws(
        () => runCase(c),
        (e) => {
          assert.ok(e instanceof Error);
          assert.equal(e.code, exp.error);
          if (exp.error_contains) assert.ok(e.message.includes(exp.error_contains), e.message);
          return true;
        },
      );
      return;
    }
    const plan = runCase(c);
    if ('verdict' in exp) assert.equal(plan.verdict, exp.verdict);
    for (const r of exp.fired || []) assert.ok(plan.rules_applied.includes(r), `${r} did not fire`);
    for (const r of exp.not_fired || []) assert.ok(!plan.rules_applied.includes(r), `${r} fired`);
    const blocking = plan.findings.filter((f) => f.severity === 'block');
    for (const r of exp.blocked_by || []) {
      assert.ok(blocking.some((f) => f.rule_id === r), `${r} does not block`);
    }
    const kinds = new Set(plan.transformations.map((t) => t.kind));
    for (const k of exp.transformations || []) assert.ok(kinds.has(k), `no ${k} transformation`);
    const posts = new Set(plan.post_actions.map((p) => p.rule_id));
    for (const r of exp.post_actions || []) assert.ok(posts.has(r), `no ${r} post-action`);
    const ids = new Set(plan.steps.map((s) => s.id));
    for (const s of exp.steps || []) assert.ok(ids.has(s), `no step ${s}`);
    for (const s of exp.no_steps || []) assert.ok(!ids.has(s), `step ${s} present`);
    if ('disks' in exp) assert.equal(plan.target.disks.length, exp.disks);
    if ('zone' in exp) assert.equal(plan.target.zone, exp.zone);
  });
}
