#!/usr/bin/env node
// A small plan-and-restore endpoint for a portal, on Node's own `http`
// module, listening on 127.0.0.1 only.
//
//   node examples/node/server.js [--port 8080] [--data DIR]
//
//   POST /plan               {restore_point, request, profiles?, rules?}
//                            -> 200 {plan, mermaid, text}   (400 {error: {code, message}})
//   POST /runs               same body -> 202 {id, events: "/runs/<id>/events"}
//                            (409 with the plan when it is blocked)
//   GET  /runs/<id>/events   server-sent events: `progress` per event, then `report`
//   DELETE /runs/<id>        cancels the run (it cleans up)
//   GET  /demo               the demo restores (restore_point and request) to try it with
//
// Runs go to the simulated Azure over the demo repository (built in --data).
'use strict';
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const vmrestore = require('../../bindings-node');

const MAX_BODY = 16 << 20;

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function fail(res, status, e) {
  send(res, status, { error: { code: e.code || 'E_REQUEST', message: e.message } });
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error(`body over ${MAX_BODY} bytes`), { code: 'E_REQUEST', status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch (e) {
        reject(Object.assign(new Error(`malformed JSON body: ${e.message}`), { code: 'E_PARSE' }));
      }
    });
    req.on('error', reject);
  });
}

/** Plans a request body; throws vmrestore's coded errors on bad input. */
async function planOf(body) {
  if (!body.restore_point || !body.request) {
    throw Object.assign(new Error('the body needs restore_point and request'), { code: 'E_REQUEST' });
  }
  return vmrestore.planAsync(body.restore_point, body.request, {
    profiles: body.profiles ?? (body.rules ? [] : ['commvault']),
    rules: body.rules,
  });
}

/**
 * The server. `dataDir` holds the demo repository; `cloudOptions` are the
 * SimCloud's (latencies, faults).
 */
function createServer({ dataDir, cloudOptions = {} } = {}) {
  dataDir = dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'vmrestore-server-'));
  const demos = vmrestore.buildDemo(dataDir);
  const repository = new vmrestore.Repository(path.join(dataDir, 'repository'));
  const runs = new Map();

  function startRun(plan) {
    const id = randomUUID();
    const run = { id, events: [], listeners: new Set(), report: null, controller: new AbortController() };
    const emit = (name, data) => {
      const item = { name, data };
      run.events.push(item);
      for (const l of run.listeners) l(item);
    };
    const cloud = new vmrestore.SimCloud(cloudOptions);
    const executor = new vmrestore.RestoreExecutor(cloud, repository);
    executor
      .run(plan, { onProgress: (e) => emit('progress', e), signal: run.controller.signal })
      .then(
        (report) => {
          run.report = report;
          // Let the last progress callbacks land before the report.
          setImmediate(() => emit('report', report));
        },
        (e) => emit('error', { code: e.code, message: e.message }),
      );
    runs.set(id, run);
    return run;
  }

  function streamEvents(req, res, run) {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const write = (item) => {
      res.write(`event: ${item.name}\ndata: ${JSON.stringify(item.data)}\n\n`);
      if (item.name !== 'progress') {
        run.listeners.delete(write);
        res.end();
      }
    };
    run.listeners.add(write);
    for (const item of [...run.events]) {
      if (!run.listeners.has(write)) break;
      write(item);
    }
    req.on('close', () => run.listeners.delete(write));
  }

  return http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const m = url.pathname.match(/^\/runs\/([0-9a-f-]+)(\/events)?$/);
    try {
      if (req.method === 'GET' && url.pathname === '/demo') {
        return send(res, 200, demos);
      }
      if (req.method === 'POST' && url.pathname === '/plan') {
        const plan = await planOf(await readJson(req));
        return send(res, 200, {
          plan,
          mermaid: vmrestore.render(plan, 'mermaid'),
          text: vmrestore.render(plan, 'text'),
        });
      }
      if (req.method === 'POST' && url.pathname === '/runs') {
        const plan = await planOf(await readJson(req));
        if (plan.verdict !== 'ready') {
          return send(res, 409, { error: { code: 'E_PLAN_BLOCKED', message: 'the plan is blocked' }, plan });
        }
        const run = startRun(plan);
        return send(res, 202, { id: run.id, events: `/runs/${run.id}/events` });
      }
      if (m && runs.has(m[1])) {
        const run = runs.get(m[1]);
        if (req.method === 'GET' && m[2]) return streamEvents(req, res, run);
        if (req.method === 'DELETE' && !m[2]) {
          run.controller.abort();
          return send(res, 202, { id: run.id, cancelling: true });
        }
      }
      return fail(res, 404, Object.assign(new Error(`no route ${req.method} ${url.pathname}`), { code: 'E_NOT_FOUND' }));
    } catch (e) {
      return fail(res, e.status || (e.code && e.code.startsWith('E_') ? 400 : 500), e);
    }
  });
}

module.exports = { createServer };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const port = Number(opt('--port', 8080));
  const server = createServer({ dataDir: opt('--data'), cloudOptions: { latencyMs: 20, writeLatencyMs: 2 } });
  server.listen(port, '127.0.0.1', () => {
    console.log(`vmrestore endpoint on http://127.0.0.1:${server.address().port}`);
    console.log('try: curl -s 127.0.0.1:%d/demo | node -e ...; see the header of this file', server.address().port);
  });
}
