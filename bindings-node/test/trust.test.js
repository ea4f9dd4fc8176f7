'use strict';
// Trust boundaries from Node (issue 12): numbers JSON cannot hold, trailing
// data after a JSON document, credentials in endpoint URLs, and the tracing
// bridge (setLogger, or stderr with RUST_LOG).
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const util = require('node:util');
const { spawnSync } = require('node:child_process');
const vmrestore = require('..');
const { coded, load } = require('./helpers');

const win = load('bases.json').windows;
const clone = (v) => JSON.parse(JSON.stringify(v));
const P = { profiles: ['commvault'] };

function inputs() {
  return { rp: clone(win.restore_point), req: clone(win.request), cat: vmrestore.builtinCatalog() };
}

// --- 13: NaN and ±Infinity ---------------------------------------------------

test('NaN, Infinity and -Infinity in plan() inputs are refused with their JSON path', async () => {
  const cases = [
    ['restore point', NaN, (i, v) => { i.rp.vm.disks[0].size_bytes = v; }, '$.vm.disks[0].size_bytes', 'NaN'],
    ['restore point', Infinity, (i, v) => { i.rp.vm.disks[1].allocated_bytes = v; }, '$.vm.disks[1].allocated_bytes', 'Infinity'],
    ['request', -Infinity, (i, v) => { i.req.destination.zone = v; }, '$.destination.zone', '-Infinity'],
    ['request', NaN, (i, v) => { i.req.destination.tags = { 'cost centre': [1, v] }; }, '$.destination.tags["cost centre"][1]', 'NaN'],
    ['catalog', Infinity, (i, v) => { i.cat.regions[2].zones[1] = v; }, '$.regions[2].zones[1]', 'Infinity'],
    ['catalog', -Infinity, (i, v) => { i.cat.vm_sizes[0].memory_gib = v; }, '$.vm_sizes[0].memory_gib', '-Infinity'],
  ];
  for (const [doc, value, set, path, shown] of cases) {
    const i = inputs();
    set(i, value);
    const expected = new RegExp(`${path.replace(/[$.[\]"]/g, '\\$&')}: not a finite number \\(${shown}\\)`);
    const check = coded('E_PARSE', expected);
    assert.throws(() => vmrestore.plan(i.rp, i.req, { profiles: ['commvault'], catalog: i.cat }), check, `${doc} ${shown}`);
    await assert.rejects(vmrestore.planAsync(i.rp, i.req, { ...P, catalog: i.cat }), check, `${doc} ${shown} (async)`);
    if (doc !== 'catalog') {
      assert.throws(() => vmrestore.planMany([{ restorePoint: i.rp, request: i.req, profile: 'veeam' }]), check);
    } else {
      assert.throws(() => vmrestore.planMany([], i.cat), check);
      assert.throws(() => new vmrestore.SimCloud({ catalog: i.cat }), check);
    }
  }
  // Whole floats beyond 32 bits still reach u64 fields as integers.
  const ok = inputs();
  ok.rp.vm.disks[0].size_bytes = 2 ** 37;
  assert.equal(vmrestore.plan(ok.rp, ok.req, P).target.disks[0].size_bytes, 2 ** 37);
});

test('non-JSON values in documents name their path; undefined properties are absent', () => {
  const i = inputs();
  i.rp.vm.disks[0].label = () => 1;
  assert.throws(() => vmrestore.plan(i.rp, i.req, P), coded('E_PARSE', /\$\.vm\.disks\[0\]\.label: a function is not a JSON value/));
  const j = inputs();
  j.rp.vm.disks = [j.rp.vm.disks[0], undefined];
  assert.throws(() => vmrestore.plan(j.rp, j.req, P), coded('E_PARSE', /\$\.vm\.disks\[1\]: undefined is not a JSON value/));
  const k = inputs();
  k.rp.vm.disks[0].not_a_field = undefined; // as JSON.stringify: absent
  assert.deepEqual(vmrestore.plan(k.rp, k.req, P), vmrestore.plan(win.restore_point, win.request, P));
  const cyclic = inputs();
  cyclic.req.destination.self = cyclic.req.destination;
  assert.throws(() => vmrestore.plan(cyclic.rp, cyclic.req, P), coded('E_PARSE', /nested deeper than 128 levels/));
});

test('NaN or Infinity in a plan given to render() or run() names its path', async () => {
  const plan = vmrestore.plan(win.restore_point, win.request, { profiles: ['commvault'] });
  const bad = clone(plan);
  bad.target.disks[0].size_bytes = NaN;
  assert.throws(() => vmrestore.render(bad), coded('E_PARSE', /\$\.target\.disks\[0\]\.size_bytes: not a finite number \(NaN\)/));
  const ex = new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), new vmrestore.Repository(require('./helpers').tmpdir(), true));
  await assert.rejects(ex.run(bad), coded('E_PARSE', /\$\.target\.disks\[0\]\.size_bytes: not a finite number/));
});

test('number options that are NaN, Infinity, negative or fractional are refused by name', () => {
  const repo = new vmrestore.Repository(require('./helpers').tmpdir(), true);
  const sim = new vmrestore.SimCloud();
  for (const [name, value, shown] of [
    ['maxAttempts', NaN, /not a finite number \(NaN\)/],
    ['controlConcurrency', Infinity, /not a finite number \(Infinity\)/],
    // napi's own u32 made 4294967295 of -1 and 0 of NaN, without a word.
    ['dataConcurrency', -1, /-1 is not a whole number/],
    ['baseDelayMs', 1.5, /1.5 is not a whole number/],
  ]) {
    assert.throws(() => new vmrestore.RestoreExecutor(sim, repo, { [name]: value }), coded('E_INVALID', new RegExp(`${name}: ${shown.source}`)));
  }
  assert.throws(() => new vmrestore.SimCloud({ latencyMs: -Infinity }), coded('E_INVALID', /latencyMs: not a finite number \(-Infinity\)/));
  assert.throws(() => new vmrestore.SimCloud({ seed: NaN }), coded('E_INVALID', /seed/));
  assert.throws(() => new vmrestore.ArmCloud({ subscriptionId: 's', token: 't', pollIntervalMs: NaN }), coded('E_INVALID', /pollIntervalMs: not a finite number/));
  // The defaults and valid values still work.
  new vmrestore.RestoreExecutor(sim, repo, { maxAttempts: 3, baseDelayMs: 0 });
  new vmrestore.SimCloud({ seed: -7, latencyMs: 0, writeRate: 100 });
});

// --- 13: trailing data after a JSON text (the core's `model::from_json`) ------

test('trailing data after a JSON text document is refused', () => {
  // Passes once the core's model::from_json refuses trailing data (lead's fix).
  const rp = JSON.stringify(win.restore_point);
  const req = JSON.stringify(win.request);
  const cat = JSON.stringify(vmrestore.builtinCatalog());
  for (const tail of ['{"id":"other"}', ']]]', '\u0000garbage', ' x']) {
    assert.throws(() => vmrestore.plan(rp + tail, req, P), coded('E_PARSE'), `restore point + ${JSON.stringify(tail)}`);
    assert.throws(() => vmrestore.plan(rp, req + tail, P), coded('E_PARSE'), `request + ${JSON.stringify(tail)}`);
    assert.throws(() => vmrestore.plan(rp, req, { ...P, catalog: cat + tail }), coded('E_PARSE'), `catalog + ${JSON.stringify(tail)}`);
    assert.throws(() => new vmrestore.SimCloud({ catalog: cat + tail }), coded('E_PARSE'), `sim catalog + ${JSON.stringify(tail)}`);
  }
  // Trailing whitespace is not data.
  assert.deepEqual(vmrestore.plan(`${rp}\n  `, `${req}\r\n`, { ...P, catalog: `${cat}\t` }), vmrestore.plan(win.restore_point, win.request, P));
});

// --- 6: credentials in endpoint URLs ----------------------------------------

test('an endpoint URL with user info shows no password in inspect, toString or errors', async () => {
  // Errors pass once the core redacts user info in endpoint URLs (lead's fix).
  const PASSWORD = 'pw-SENTINEL-url-4f1e';
  const cloud = new vmrestore.ArmCloud({ subscriptionId: 's', token: 't', endpoint: `http://user:${PASSWORD}@127.0.0.1:9`, pollIntervalMs: 1 });
  const shown = [util.inspect(cloud, { depth: 10, showHidden: true }), String(cloud), `${Object.keys(cloud)}`];
  const sink = new vmrestore.PageBlobSink(`http://acct:${PASSWORD}@127.0.0.1:9/devstoreaccount1/c`);
  shown.push(util.inspect(sink, { depth: 10, showHidden: true }), String(sink));
  try {
    await cloud.catalog();
    assert.fail('the catalog of a closed port succeeded');
  } catch (e) {
    shown.push(`${e} ${e.stack} ${util.inspect(e, { depth: 10 })}`);
  }
  for (const s of shown) assert.ok(!s.includes(PASSWORD), `the password shows: ${s.slice(0, 300)}`);
});

// --- 6: the tracing bridge ---------------------------------------------------

/** A server that refuses everything, and its URL. */
async function refusingServer(t) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'InvalidAuthenticationToken', message: 'no' } }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return { port: server.address().port, url: `http://127.0.0.1:${server.address().port}` };
}

/** Lets queued logger calls run. */
const settle = () => new Promise((r) => setTimeout(r, 50));

test('setLogger receives the library\'s tracing events (level, target, message) and null removes it', async (t) => {
  const { port, url } = await refusingServer(t);
  const logs = [];
  vmrestore.setLogger((level, target, message) => logs.push({ level, target, message }), 'debug');
  t.after(() => vmrestore.setLogger(null));
  const cloud = new vmrestore.ArmCloud({ subscriptionId: 's', token: 'tok', endpoint: url, pollIntervalMs: 1 });
  await assert.rejects(cloud.catalog());
  await settle();
  const connect = logs.find((l) => l.message.includes(`connecting to 127.0.0.1:${port}`));
  assert.ok(connect, `no connection event among ${logs.length}: ${JSON.stringify(logs).slice(0, 500)}`);
  assert.equal(connect.level, 'debug');
  assert.match(connect.target, /^hyper_util::/);
  for (const l of logs) {
    assert.ok(['error', 'warn', 'info', 'debug', 'trace'].includes(l.level), l.level);
    assert.equal(typeof l.target, 'string');
    assert.notEqual(l.level, 'trace', 'the filter lets trace events through');
  }

  // A stricter filter: no debug events.
  logs.length = 0;
  vmrestore.setLogger((level, target, message) => logs.push({ level, target, message }), 'warn');
  await assert.rejects(new vmrestore.ArmCloud({ subscriptionId: 's', token: 'tok', endpoint: url }).catalog());
  await settle();
  assert.deepEqual(logs.filter((l) => l.level === 'debug'), []);

  // Removed: nothing more arrives.
  vmrestore.setLogger((level, target, message) => logs.push({ level, target, message }), 'trace');
  vmrestore.setLogger(null);
  logs.length = 0;
  await assert.rejects(new vmrestore.ArmCloud({ subscriptionId: 's', token: 'tok', endpoint: url }).catalog());
  await settle();
  assert.deepEqual(logs, []);
});

test('setLogger refuses a bad filter; a throwing logger breaks nothing', async (t) => {
  assert.throws(() => vmrestore.setLogger(() => {}, 'restore_core=loud'), coded('E_INVALID', /filter/));
  const { url } = await refusingServer(t);
  let calls = 0;
  vmrestore.setLogger(() => { calls += 1; throw new Error('logger failure'); }, 'debug');
  t.after(() => vmrestore.setLogger(null));
  await assert.rejects(new vmrestore.ArmCloud({ subscriptionId: 's', token: 'tok', endpoint: url }).catalog(), (e) => e.code !== undefined);
  await settle();
  assert.ok(calls > 0);
});

/** Runs `code` in a child Node with `env`; returns its result. */
function child(code, env) {
  return spawnSync(process.execPath, ['-e', code], {
    cwd: __dirname,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 20000,
  });
}

test('a registered logger never keeps the process alive', () => {
  const r = child(`require('..').setLogger(() => {}, 'trace'); setTimeout(() => console.log('done'), 10);`, {});
  assert.equal(r.error, undefined, 'the child did not exit by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'done');
});

test('with RUST_LOG and no logger, events go to stderr; a logger takes them over', async (t) => {
  const { port, url } = await refusingServer(t);
  const run = `const v = require('..');
    const logs = [];
    if (process.env.WITH_LOGGER) v.setLogger((l, t, m) => logs.push(m));
    new v.ArmCloud({ subscriptionId: 's', token: 'tok', endpoint: ${JSON.stringify(url)} }).catalog()
      .catch(() => new Promise((r) => setTimeout(r, 50)))
      .then(() => console.log(JSON.stringify(logs)));`;
  // The child talks to this process's server: spawnSync would block it.
  const { spawn } = require('node:child_process');
  const go = (env) => new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', run], { cwd: __dirname, env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('close', (status) => resolve({ status, out, err }));
  });
  const needle = `connecting to 127.0.0.1:${port}`;
  const plain = await go({ RUST_LOG: 'debug', WITH_LOGGER: '' });
  assert.equal(plain.status, 0, plain.err);
  assert.ok(plain.err.includes(needle), `stderr: ${plain.err.slice(0, 500)}`);
  const quiet = await go({ RUST_LOG: '', WITH_LOGGER: '' });
  assert.equal(quiet.err, '', 'no RUST_LOG, no logger: nothing on stderr');
  const taken = await go({ RUST_LOG: 'debug', WITH_LOGGER: '1' });
  assert.equal(taken.status, 0, taken.err);
  assert.ok(!taken.err.includes(needle), 'a logger takes the events from stderr');
  assert.ok(JSON.parse(taken.out).some((m) => m.includes(needle)), taken.out);
});

test('a cloud that cannot run a step refuses the plan before any change; a plan for it is blocked (VMR-07)', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmr-caps-'));
  try {
    const restores = vmrestore.buildDemo(dir);
    const r = restores.find((x) => x.name === 'web01');
    const arm = new vmrestore.ArmCloud({ subscriptionId: '00000000-0000-0000-0000-000000000001', token: 't', endpoint: 'http://127.0.0.1:9' });
    const caps = arm.capabilities();
    assert.equal(caps.cloud, 'arm');
    assert.ok(!caps.step_kinds.includes('boot_fix'));
    const sim = new vmrestore.SimCloud({ capabilities: caps });
    assert.deepEqual(sim.capabilities(), caps);
    const plan = vmrestore.plan(r.restore_point, r.request, { profiles: ['veeam'] });
    assert.equal(plan.verdict, 'ready');
    const ex = new vmrestore.RestoreExecutor(sim, new vmrestore.Repository(path.join(dir, 'repository')));
    await assert.rejects(ex.run(plan), (e) => {
      assert.equal(e.code, 'E_UNSUPPORTED');
      for (const s of plan.steps.filter((s) => !caps.step_kinds.includes(s.kind))) assert.match(e.message, new RegExp(s.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      return true;
    });
    const blocked = vmrestore.plan(r.restore_point, r.request, { profiles: ['veeam'], capabilities: caps });
    assert.equal(blocked.verdict, 'blocked');
    assert.ok(blocked.findings.some((f) => f.rule_id === 'VMR-07' && /boot_fix/.test(f.message)));
    assert.throws(() => vmrestore.plan(r.restore_point, r.request, { profiles: ['veeam'], capabilities: { cloud: 1 } }), (e) => e.code === 'E_PARSE');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
