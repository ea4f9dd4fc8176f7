'use strict';
// The Node examples: the HTTP endpoint answered over loopback (plan, SSE
// progress, cancel, errors), and the restore script exiting by itself.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { ROOT, tmpdir } = require('./helpers');
const { createServer } = require(path.join(ROOT, 'examples', 'node', 'server.js'));

function request(port, method, url, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method, path: url }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    if (data !== undefined) req.end(data);
    else req.end();
  });
}

/** Reads a server-sent event stream to its end: [{event, data}]. */
function events(port, url, onEvent = () => {}) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: url }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let buf = '';
        const out = [];
        res.setEncoding('utf8');
        res.on('data', (c) => {
          buf += c;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = { event: 'message', data: '' };
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) ev.event = line.slice(7);
              if (line.startsWith('data: ')) ev.data += line.slice(6);
            }
            ev.data = JSON.parse(ev.data);
            out.push(ev);
            onEvent(ev);
          }
        });
        res.on('end', () => resolve(out));
      })
      .on('error', reject);
  });
}

async function withServer(options, fn) {
  const server = createServer({ dataDir: tmpdir(), ...options });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await fn(server.address().port);
  } finally {
    server.close();
  }
}

test('the endpoint plans, streams a run as server-sent events and reports errors', async () => {
  await withServer({}, async (port) => {
    const demos = (await request(port, 'GET', '/demo')).body;
    const web01 = demos.find((d) => d.name === 'web01');
    const body = { restore_point: web01.restore_point, request: web01.request, profiles: ['commvault'] };

    const planned = await request(port, 'POST', '/plan', body);
    assert.equal(planned.status, 200);
    assert.equal(planned.body.plan.verdict, 'ready');
    assert.ok(planned.body.mermaid.startsWith('flowchart TD'));
    assert.match(planned.body.text, /Plan:/);

    const bad = await request(port, 'POST', '/plan', '{"restore_point": ');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_PARSE');
    const wrongRegion = structuredClone(body);
    wrongRegion.request.destination.region = 'mars';
    const invalid = await request(port, 'POST', '/plan', wrongRegion);
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error.code, 'E_INVALID');
    assert.match(invalid.body.error.message, /region/);

    const started = await request(port, 'POST', '/runs', body);
    assert.equal(started.status, 202);
    const evs = await events(port, started.body.events);
    const last = evs.pop();
    assert.equal(last.event, 'report');
    assert.equal(last.data.outcome, 'succeeded');
    assert.ok(evs.every((e) => e.event === 'progress'));
    assert.ok(evs.some((e) => e.data.event === 'bytes'));
    const finished = evs.filter((e) => e.data.event === 'step_finished').map((e) => e.data.step);
    assert.deepEqual(new Set(finished), new Set(planned.body.plan.steps.map((s) => s.id)));
    // A late subscriber gets the whole run again.
    const again = await events(port, started.body.events);
    assert.equal(again.length, evs.length + 1);
  });
});

test('DELETE cancels a run through its AbortSignal; a blocked plan is refused', async () => {
  await withServer({ cloudOptions: { writeLatencyMs: 30 } }, async (port) => {
    const demos = (await request(port, 'GET', '/demo')).body;
    const web01 = demos.find((d) => d.name === 'web01');
    const body = { restore_point: web01.restore_point, request: web01.request, profiles: ['commvault'] };
    const started = await request(port, 'POST', '/runs', body);
    let cancelled = false;
    const evs = await events(port, started.body.events, (e) => {
      if (!cancelled && e.data.event === 'bytes') {
        cancelled = true;
        request(port, 'DELETE', `/runs/${started.body.id}`);
      }
    });
    const report = evs.pop();
    assert.equal(report.event, 'report');
    assert.equal(report.data.outcome, 'cancelled');
    assert.ok(report.data.cleaned_up.length > 0);

    const blocked = await request(port, 'POST', '/runs', {
      ...body,
      profiles: ['azure-backup@2016'],
    });
    assert.equal(blocked.status, 409);
    assert.equal(blocked.body.plan.verdict, 'blocked');
  });
});

test('the restore script restores with progress and the process exits by itself', async () => {
  const out = tmpdir();
  const child = spawn(process.execPath, [path.join(ROOT, 'examples', 'node', 'restore.js'), '--out', out], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code, signal] = await new Promise((r) => child.on('exit', (c, s) => r([c, s])));
  clearTimeout(timer);
  assert.equal(signal, null, 'the process had to be killed: it did not exit by itself');
  assert.equal(code, 0, stdout);
  assert.match(stdout, /web01: succeeded/);
  assert.match(stdout, /verified true/);
});
