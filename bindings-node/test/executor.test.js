'use strict';
// The executor from Node: end to end byte-identical, progress as a
// callback and as an async iterator, AbortSignal cancellation with
// clean-up, faults and retries, local VHDs, and runs that cannot start.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vmrestore = require('..');
const { tmpdir } = require('./helpers');

const DIR = tmpdir();
const DEMOS = vmrestore.buildDemo(DIR);
const repo = () => new vmrestore.Repository(path.join(DIR, 'repository'));
const demo = (name) => DEMOS.find((d) => d.name === name);

function planFor(name, profile) {
  const d = demo(name);
  return vmrestore.plan(d.restore_point, d.request, { profiles: [profile] });
}

/** The source image of a target disk, padded with zeros to `size`. */
function image(vm, disk, size) {
  const data = fs.readFileSync(vmrestore.demoImagePath(DIR, vm, disk.source_disk, disk.volume_group ?? null));
  return Buffer.concat([data, Buffer.alloc(size - data.length)]);
}

test('a restore on SimCloud writes every disk byte-identical, with progress events', async () => {
  const plan = planFor('web01', 'commvault');
  assert.equal(plan.verdict, 'ready');
  const cloud = new vmrestore.SimCloud();
  const events = [];
  const report = await new vmrestore.RestoreExecutor(cloud, repo()).run(plan, {
    onProgress: (e) => events.push(e),
  });
  assert.equal(report.outcome, 'succeeded', JSON.stringify(report.error));
  assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
  assert.equal(report.disks.length, plan.target.disks.length);
  for (const disk of plan.target.disks) {
    const got = cloud.diskBytes(disk.name);
    assert.ok(got, `no disk ${disk.name}`);
    assert.ok(got.equals(image('web01', disk, got.length)), `${disk.name} differs from its source`);
  }
  assert.ok(report.disks.every((d) => d.verified));
  assert.deepEqual(cloud.dump().powered_on, [plan.target.vm_name]);
  // Callbacks arrive on the JS thread after the events happen; the last
  // ones may land just after the promise resolves.
  await new Promise((r) => setImmediate(r));
  const kinds = new Set(events.map((e) => e.event));
  for (const k of ['step_started', 'step_finished', 'bytes']) assert.ok(kinds.has(k), `no ${k} event`);
  const finished = new Set(events.filter((e) => e.event === 'step_finished').map((e) => e.step));
  for (const s of plan.steps) assert.ok(finished.has(s.id), `no step_finished for ${s.id}`);
  assert.equal(cloud.dump().resources.length, report.created.length);
});

test('progress as an async iterator to local VHD files; the stream ends with the run', async () => {
  const out = tmpdir();
  const plan = planFor('db01', 'veeam');
  const stream = new vmrestore.ProgressStream();
  const ex = new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), repo(), { outDir: out });
  const running = ex.run(plan, { progress: stream });
  const seen = [];
  for await (const e of stream) seen.push(e);
  const report = await running;
  assert.equal(report.outcome, 'succeeded', JSON.stringify(report.error));
  const bytes = seen.filter((e) => e.event === 'bytes');
  assert.ok(bytes.length > 0);
  for (const disk of plan.target.disks) {
    const vhd = path.join(out, `${disk.name}.vhd`);
    assert.equal(fs.statSync(vhd).size, disk.size_bytes + 512);
    const last = bytes.filter((e) => e.disk === disk.name).pop();
    assert.ok(last && last.done === last.total, `${disk.name}: progress did not reach its total`);
  }
  assert.ok(fs.existsSync(path.join(out, 'db01.template.json')));
  // One run per stream.
  assert.throws(() => ex.run(plan, { progress: stream }), (e) => e.code === 'E_INVALID' && /already used/.test(e.message));
  assert.throws(() => ex.run(plan, { progress: {} }), (e) => e.code === 'E_INVALID' && /ProgressStream/.test(e.message));
});

test('an AbortSignal cancels the run, which deletes what it created', async () => {
  const plan = planFor('web01', 'commvault');
  const cloud = new vmrestore.SimCloud({ writeLatencyMs: 20 });
  const ac = new AbortController();
  let aborted = false;
  const report = await new vmrestore.RestoreExecutor(cloud, repo()).run(plan, {
    signal: ac.signal,
    onProgress: (e) => {
      if (e.event === 'bytes' && !aborted) {
        aborted = true;
        ac.abort();
      }
    },
  });
  assert.ok(aborted, 'the data transfer never started');
  assert.equal(report.outcome, 'cancelled');
  assert.ok(report.cleaned_up.length > 0);
  assert.deepEqual(cloud.dump().resources, []);
  assert.deepEqual(cloud.dump().powered_on, []);
});

test('an AbortSignal aborted before the run starts nothing', async () => {
  const cloud = new vmrestore.SimCloud();
  const report = await new vmrestore.RestoreExecutor(cloud, repo()).run(planFor('web01', 'commvault'), {
    signal: AbortSignal.abort(),
  });
  assert.equal(report.outcome, 'cancelled');
  assert.deepEqual(cloud.dump().resources, []);
  // Options of the wrong type throw at once, like any bad argument.
  assert.throws(
    () => new vmrestore.RestoreExecutor(cloud, repo()).run(planFor('web01', 'commvault'), { signal: {} }),
    (e) => e.code === 'E_INVALID' && /options.signal/.test(e.message),
  );
});

test('transient faults are retried; the report keeps every attempt', async () => {
  const plan = planFor('web01', 'commvault');
  const cloud = new vmrestore.SimCloud({ seed: 7, faultProbability: 0.3, dataFaultProbability: 0.1 });
  const report = await new vmrestore.RestoreExecutor(cloud, repo(), { baseDelayMs: 1, maxAttempts: 20 }).run(plan);
  assert.equal(report.outcome, 'succeeded', JSON.stringify(report.error));
  assert.ok(cloud.faultsInjected() > 0);
  const attempts = report.steps.reduce((n, s) => n + s.attempts.length, 0);
  assert.ok(attempts > 0, 'no retry recorded');
  for (const disk of plan.target.disks) {
    const got = cloud.diskBytes(disk.name);
    assert.ok(got.equals(image('web01', disk, got.length)));
  }
});

test('a fault that persists fails the run, names the step and cleans up', async () => {
  // `act` is the conversion to managed disks, after the disks are written.
  const cloud = new vmrestore.SimCloud({ alwaysFail: ['act'] });
  const report = await new vmrestore.RestoreExecutor(cloud, repo(), { baseDelayMs: 1, maxAttempts: 2 }).run(
    planFor('web01', 'commvault'),
  );
  assert.equal(report.outcome, 'failed');
  assert.equal(report.error.step, 'convert');
  assert.equal(report.error.attempts.length, 2);
  assert.ok(report.cleaned_up.length >= 4, JSON.stringify(report.cleaned_up));
  assert.deepEqual(cloud.dump().resources, []);
});

test('runs that cannot start reject with the core error code', async () => {
  const ex = new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), repo());
  const d = demo('web01');
  const req = structuredClone(d.request);
  req.destination.region = 'germanynorth';
  const blocked = vmrestore.plan(d.restore_point, req, {
    rules: { rules: [{ id: 'T-01', when: 'true', outcome: 'block', message: 'no' }] },
  });
  assert.equal(blocked.verdict, 'blocked');
  await assert.rejects(ex.run(blocked), (e) => e instanceof Error && e.code === 'E_PLAN_BLOCKED');
  const stale = structuredClone(planFor('web01', 'commvault'));
  stale.fingerprint.restore_point = '0'.repeat(64);
  await assert.rejects(ex.run(stale), (e) => e.code === 'E_STALE_PLAN' && /restore point/.test(e.message));
  await assert.rejects(ex.run('{"format_version": 1}'), (e) => e.code === 'E_PARSE');
  assert.throws(() => new vmrestore.Repository(path.join(DIR, 'nowhere')), (e) => e.code === 'E_REPOSITORY');
  assert.throws(
    () => new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), repo(), { dataConcurrency: 0 }),
    (e) => e.code === 'E_INVALID' && /dataConcurrency/.test(e.message),
  );
  assert.throws(() => new vmrestore.SimCloud({ faultProbability: 2 }), (e) => e.code === 'E_INVALID');
});

test('a throwing progress callback does not break the restore', async () => {
  const cloud = new vmrestore.SimCloud();
  const report = await new vmrestore.RestoreExecutor(cloud, repo()).run(planFor('app01', 'veeam'), {
    onProgress: () => {
      throw new Error('portal bug');
    },
  });
  assert.equal(report.outcome, 'succeeded', JSON.stringify(report.error));
});

test('importRaw builds a repository from raw images', async () => {
  const d = demo('web01');
  const r = new vmrestore.Repository(path.join(tmpdir(), 'repo'), true);
  const images = {};
  for (const disk of d.restore_point.vm.disks) {
    images[disk.name] = vmrestore.demoImagePath(DIR, 'web01', disk.name, null);
  }
  const m = await r.importRaw(d.restore_point, images, 1 << 20);
  assert.equal(m.restore_point.id, d.restore_point.id);
  assert.deepEqual(r.list(), [d.restore_point.id]);
  await assert.rejects(
    new vmrestore.Repository(path.join(tmpdir(), 'repo2'), true).importRaw(d.restore_point, {}),
    (e) => e.code === 'E_REPOSITORY' && /no image for disk 'osdisk'/.test(e.message),
  );
});

test('options are validated as Python validates them (the core facade)', () => {
  for (const name of ['controlConcurrency', 'dataConcurrency', 'maxAttempts']) {
    assert.throws(
      () => new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), repo(), { [name]: 0 }),
      (e) => e.code === 'E_INVALID' && new RegExp(`at ${name}: must be at least 1`).test(e.message),
    );
  }
  for (const name of ['faultProbability', 'dataFaultProbability']) {
    assert.throws(
      () => new vmrestore.SimCloud({ [name]: 1.5 }),
      (e) => e.code === 'E_INVALID' && new RegExp(`at ${name}: 1.5 is not a probability`).test(e.message),
    );
  }
});
