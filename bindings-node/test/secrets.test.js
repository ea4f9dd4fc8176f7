'use strict';
// The secrets sentinel, from Node: an ARM access token, a storage account
// key, a SAS and object-store credentials, each a unique sentinel, are
// given to every binding entry point that takes a secret and used against
// a server on 127.0.0.1 that refuses them. The server sees them (so they
// were really used); no error, inspected object, plan, report, progress
// event or output of the process holds any of them, neither does the
// tracing output at TRACE: on stderr (RUST_LOG, no logger) or given to a
// logger (setLogger). Both must have captured events (a request to the
// server among them), or the check proves nothing.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const util = require('node:util');
const { spawn } = require('node:child_process');
const vmrestore = require('..');
const { tmpdir } = require('./helpers');

const TOKEN = 'tok-SENTINEL-js-5e2b';
const KEY_RAW = 'key-SENTINEL-js-8a41-0123456789abcdef';
const KEY = Buffer.from(KEY_RAW).toString('base64');
const SAS = 'sv=2024-08-04&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=SAS-SENTINEL-js-19c7';
const OPT_KEY = Buffer.from('opt-SENTINEL-js-6d03').toString('base64');
const SENTINELS = [TOKEN, KEY, KEY_RAW, 'SAS-SENTINEL-js-19c7', SAS, OPT_KEY, 'SENTINEL-js'];
const SUB = '22222222-2222-2222-2222-222222222222';

// The scenario runs in a child process so that everything it prints can be
// checked too.
async function scenario(server, dir) {
  const texts = [];
  const errText = (e) => `${e} ${e && e.stack} ${util.inspect(e, { depth: 5 })} ${e && e.code}`;
  const demos = vmrestore.buildDemo(dir);
  const web01 = demos.find((d) => d.name === 'web01');
  const repo = new vmrestore.Repository(path.join(dir, 'repository'));
  const plan = vmrestore.plan(web01.restore_point, web01.request, { profiles: ['commvault'] });
  const events = [];
  const onProgress = (e) => events.push(e);

  const cloud = new vmrestore.ArmCloud({ subscriptionId: SUB, token: TOKEN, endpoint: server, pollIntervalMs: 10 });
  texts.push(util.inspect(cloud, { depth: 5, showHidden: true }));
  try { await cloud.catalog(); texts.push('catalog succeeded?'); } catch (e) { texts.push(errText(e)); }
  try {
    const report = await new vmrestore.RestoreExecutor(cloud, repo, { maxAttempts: 2, baseDelayMs: 1 }).run(plan, { onProgress });
    if (report.outcome === 'succeeded') throw new Error('the refused run succeeded');
    texts.push(JSON.stringify(report), util.inspect(report, { depth: 10 }));
  } catch (e) { texts.push(errText(e)); }
  texts.push(JSON.stringify(plan), vmrestore.render(plan, 'text'), vmrestore.render(plan, 'mermaid'));

  for (const auth of [{ account: 'devstoreaccount1', key: KEY }, { sas: SAS }]) {
    const sink = new vmrestore.PageBlobSink(`${server}/devstoreaccount1/restores`, auth);
    texts.push(util.inspect(sink, { depth: 5, showHidden: true }));
    try {
      const r = await new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), repo, { maxAttempts: 2, baseDelayMs: 1 }, sink).run(plan, { onProgress });
      if (r.outcome === 'succeeded') throw new Error('the refused upload succeeded');
      texts.push(JSON.stringify(r));
    } catch (e) { texts.push(errText(e)); }
    try { await sink.readDisk('web01-dr-osdisk'); } catch (e) { texts.push(errText(e)); }
  }

  for (const opts of [
    { endpoint: `${server}/devstoreaccount1`, account: 'devstoreaccount1', key: KEY, container: 'backups' },
    { url: 'az://backups', options: { azure_storage_account_name: 'devstoreaccount1', azure_storage_access_key: OPT_KEY, azure_storage_endpoint: `${server}/devstoreaccount1`, azure_allow_http: 'true' } },
  ]) {
    const obj = new vmrestore.ObjectStoreRepository(opts);
    texts.push(util.inspect(obj, { depth: 5, showHidden: true }));
    try { await obj.list(); texts.push('list succeeded?'); } catch (e) { texts.push(errText(e)); }
  }
  texts.push(JSON.stringify(events));
  return texts;
}

if (process.env.VMRESTORE_SECRETS_CHILD) {
  const [server, dir, mode] = JSON.parse(process.env.VMRESTORE_SECRETS_CHILD);
  const logs = [];
  if (mode === 'logger') vmrestore.setLogger((level, target, message) => logs.push(`${level} ${target} ${message}`), 'trace');
  scenario(server, dir).then(async (texts) => {
    await new Promise((r) => setTimeout(r, 100)); // queued logger calls
    // Everything the scenario saw, printed: the parent checks it with the rest of the output.
    console.log(JSON.stringify({ texts, logs }));
  }, (e) => { console.error('scenario failed', e); process.exit(1); });
} else {
  for (const mode of ['stderr', 'logger']) test(`no secret reaches errors, objects, plans, reports, events or output (tracing to ${mode})`, async (t) => {
    const seen = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}\n${JSON.stringify(req.headers)}`);
      req.resume();
      req.on('end', () => {
        if (req.url.startsWith('/subscriptions') || req.url.startsWith('/providers')) {
          res.writeHead(401, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' } }));
        } else {
          res.writeHead(403, { 'Content-Type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>');
        }
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const url = `http://127.0.0.1:${server.address().port}`;
    // The child talks to this process's server: run it without blocking the event loop.
    const child = spawn(process.execPath, [__filename], {
      env: { ...process.env, VMRESTORE_SECRETS_CHILD: JSON.stringify([url, tmpdir(), mode]), RUST_LOG: 'trace', RUST_BACKTRACE: '1' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(code, 0, err);
    const { texts, logs } = JSON.parse(out.trim().split('\n').pop());
    assert.ok(texts.length >= 12, `${texts.length} texts`);
    // The capture works: the log holds events, the connections to this
    // server among them (stderr, or the logger, which then has them all).
    const log = mode === 'stderr' ? err : logs.join('\n');
    const needle = `connecting to 127.0.0.1:${server.address().port}`;
    assert.ok(log.length > 0, `nothing captured (${mode})`);
    assert.ok(log.includes(needle), `no "${needle}" in ${log.length} bytes of log (${mode}): ${log.slice(0, 300)}`);
    if (mode === 'logger') assert.ok(!err.includes(needle), 'with a logger, nothing goes to stderr');
    for (const text of [...texts, ...logs, out, err]) {
      for (const s of SENTINELS) {
        assert.ok(!text.includes(s), `a secret leaked: ${text.slice(0, 300)}`);
      }
    }
    const all = seen.join('\n');
    assert.ok(all.includes(`Bearer ${TOKEN}`), 'the token reached ARM');
    assert.ok(all.includes('SAS-SENTINEL-js-19c7'), 'the SAS reached storage');
    assert.ok(all.includes('SharedKey devstoreaccount1:'), 'the key signed requests');
  });
}
