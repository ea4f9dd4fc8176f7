'use strict';
// Planning from Node: inputs, outputs a portal can send as they are,
// renderings, custom rules, schemas and errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vmrestore = require('..');
const { ROOT, coded, load } = require('./helpers');

const BASES = load('bases.json');
const win = BASES.windows;

test('a plan is a plain object that survives JSON as it is', () => {
  const plan = vmrestore.plan(win.restore_point, win.request, { profiles: ['commvault'] });
  assert.equal(plan.verdict, 'ready');
  assert.equal(plan.format_version, '2.0');
  assert.equal(Object.getPrototypeOf(plan), Object.prototype);
  assert.deepEqual(JSON.parse(JSON.stringify(plan)), plan);
  // The same document the core's stable JSON gives.
  assert.deepEqual(JSON.parse(vmrestore.render(plan, 'json')), plan);
  assert.ok(plan.steps.length > 3);
  for (const s of plan.steps) {
    for (const d of s.depends_on) assert.ok(plan.steps.some((x) => x.id === d), `${s.id} -> ${d}`);
  }
  assert.equal(plan.estimates.to_create, plan.steps.filter((s) => s.action === 'create').length);
  assert.equal(typeof plan.target.disks[0].size_bytes, 'number');
});

test('inputs as JSON text give the same plan as objects, deterministically', () => {
  const a = vmrestore.plan(win.restore_point, win.request, { profiles: ['veeam'] });
  const b = vmrestore.plan(JSON.stringify(win.restore_point), JSON.stringify(win.request), {
    profiles: ['veeam'],
    catalog: JSON.stringify(vmrestore.builtinCatalog()),
  });
  assert.deepEqual(a, b);
  assert.equal(a.fingerprint.combined, b.fingerprint.combined);
});

test('renderings: text, JSON, Mermaid and DOT, from the object or its JSON', () => {
  const plan = vmrestore.plan(win.restore_point, win.request, { profiles: ['commvault'] });
  assert.match(vmrestore.render(plan), /Plan:/);
  assert.equal(vmrestore.render(plan, 'text'), vmrestore.render(JSON.stringify(plan), 'text'));
  const mermaid = vmrestore.render(plan, 'mermaid');
  assert.ok(mermaid.startsWith('flowchart TD'));
  for (const s of plan.steps) assert.ok(mermaid.includes(s.resource), `${s.id} not in the graph`);
  assert.equal((mermaid.match(/ s\d+\["/g) || []).length, plan.steps.length);
  assert.ok(vmrestore.render(plan, 'dot').startsWith('digraph plan'));
  assert.throws(() => vmrestore.render(plan, 'svg'), coded('E_INVALID', /unknown format 'svg'/));
  assert.throws(() => vmrestore.render({ verdict: 'ready' }), coded('E_PARSE', /missing field/));
});

test('planAsync resolves to the same plan and rejects with a code', async () => {
  const sync = vmrestore.plan(win.restore_point, win.request, { profiles: ['commvault'] });
  const async_ = await vmrestore.planAsync(win.restore_point, win.request, { profiles: ['commvault'] });
  assert.deepEqual(async_, sync);
  await assert.rejects(vmrestore.planAsync('{"vm":', win.request), coded('E_PARSE'));
  await assert.rejects(
    vmrestore.planAsync(win.restore_point, win.request, { profiles: ['nope'] }),
    coded('E_UNKNOWN_PROFILE', /unknown profile 'nope'/),
  );
});

test('planMany plans a fleet against one catalog', () => {
  const items = ['commvault', 'veeam', 'azure-backup'].map((profile) => ({
    restorePoint: win.restore_point,
    request: win.request,
    profile,
  }));
  const plans = vmrestore.planMany(items);
  assert.deepEqual(
    plans.map((p) => p.profiles[0]),
    ['commvault', 'veeam', 'azure-backup'],
  );
  assert.throws(
    () => vmrestore.planMany([{ restorePoint: win.restore_point, request: win.request, profile: 'x' }]),
    coded('E_UNKNOWN_PROFILE'),
  );
});

test('custom rules from TOML text, a file and an object', () => {
  const toml = fs.readFileSync(path.join(ROOT, 'examples', 'rules', 'acme.toml'), 'utf8');
  const ids = vmrestore.checkRules(toml);
  assert.ok(ids.includes('ACME-01'));
  const rules = {
    name: 'portal',
    rules: [{ id: 'P-01', when: "destination.region == 'northeurope'", outcome: 'block', message: 'not there' }],
  };
  assert.deepEqual(vmrestore.checkRules(rules), ['P-01']);
  const req = structuredClone(win.request);
  req.destination.region = 'northeurope';
  const plan = vmrestore.plan(win.restore_point, req, { rules });
  assert.equal(plan.verdict, 'blocked');
  assert.ok(plan.findings.some((f) => f.rule_id === 'P-01' && f.severity === 'block'));
  assert.deepEqual(plan.steps, []);
  assert.throws(
    () => vmrestore.checkRules({ rules: [{ id: 'B-01', when: 'vm.nmae == 1', outcome: 'warn', message: 'm' }] }),
    coded('E_RULE', /nmae/),
  );
  // Issue 12, item 12: eight nested maps (10^8 iterations) are refused by
  // the load-time cost estimate, naming the rule, instead of running.
  let when = 'x7';
  for (let i = 7; i >= 0; i--) when = `[0,1,2,3,4,5,6,7,8,9].map(x${i}, ${when})`;
  assert.throws(
    () => vmrestore.checkRules({ rules: [{ id: 'COST-1', when: `size(${when}) > 0`, outcome: 'warn', message: 'm' }] }),
    coded('E_RULE', /COST-1.*more than the limit/),
  );
});

test('bad input throws an Error with a code and the field, never crashes', () => {
  assert.throws(() => vmrestore.plan('{not json', win.request), coded('E_PARSE'));
  const rp = structuredClone(win.restore_point);
  rp.vm.disks[0].size_bytes = 'big';
  assert.throws(() => vmrestore.plan(rp, win.request, { profiles: ['veeam'] }), coded('E_PARSE', /size_bytes/));
  const req = structuredClone(win.request);
  req.destination.region = 'westeurop';
  assert.throws(() => vmrestore.plan(win.restore_point, req, { profiles: ['veeam'] }), coded('E_INVALID', /westeurope/));
  assert.throws(() => vmrestore.plan(win.restore_point, win.request), coded('E_INVALID', /profile/));
  const neg = structuredClone(win.restore_point);
  neg.vm.disks[0].size_bytes = -1;
  assert.throws(() => vmrestore.plan(neg, win.request, { profiles: ['veeam'] }), coded('E_PARSE', /size_bytes/));
  const frac = structuredClone(win.restore_point);
  frac.vm.disks[0].size_bytes = 1.5;
  assert.throws(() => vmrestore.plan(frac, win.request, { profiles: ['veeam'] }), coded('E_PARSE', /size_bytes/));
  // Wrong JavaScript types for the options are napi's own argument errors.
  assert.throws(() => vmrestore.plan(win.restore_point, win.request, { profiles: 'commvault' }), Error);
  assert.throws(() => vmrestore.plan(undefined, win.request), Error);
});

test('schemas of the inputs and outputs come with the package', () => {
  for (const name of ['restore_point', 'restore_request', 'catalog', 'plan', 'report', 'event']) {
    const s = vmrestore.schema(name);
    const file = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', `${name}.schema.json`), 'utf8'));
    assert.deepEqual(s, file, `${name} differs from schema/`);
  }
  assert.throws(() => vmrestore.schema('vm'), coded('E_INVALID', /no schema 'vm'/));
  assert.deepEqual(vmrestore.builtinProfiles(), ['commvault', 'veeam', 'azure-backup@2016', 'azure-backup']);
  assert.ok(vmrestore.builtinCatalog().regions.some((r) => r.name === 'westeurope'));
});
