'use strict';
// The Azure adapters from Node, against Azurite (started here on
// 127.0.0.1, in memory, stopped after): a repository in an Azurite
// container restored to page blobs byte-identical; a rerun sends only the
// footers; errors keep their codes and hold no secret.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const vmrestore = require('..');
const { ROOT, tmpdir } = require('./helpers');

const AZURITE = path.join(ROOT, 'bindings-node', 'node_modules', '.bin', 'azurite-blob');
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startAzurite() {
  assert.ok(fs.existsSync(AZURITE), `${AZURITE} is missing: run npm install in bindings-node`);
  const port = await freePort();
  const child = spawn(
    AZURITE,
    ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--skipApiVersionCheck', '--silent', '--disableTelemetry'],
    { cwd: tmpdir(), stdio: 'ignore' },
  );
  for (let i = 0; i < 600; i++) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); r(true); }).on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `http://127.0.0.1:${port}/${ACCOUNT}`, stop: () => child.kill() };
}

test('a repository in Azurite restores to page blobs, and reruns send only footers', async (t) => {
  const az = await startAzurite();
  t.after(az.stop);
  const dir = tmpdir();
  const demos = vmrestore.buildDemo(dir);
  const web01 = demos.find((d) => d.name === 'web01');
  const local = new vmrestore.Repository(path.join(dir, 'repository'));
  const plan = vmrestore.plan(web01.restore_point, web01.request, { profiles: ['azure-backup'] });
  const auth = { account: ACCOUNT, key: KEY };
  // The sink makes its container; the backup is then put beside the disks.
  const sink = new vmrestore.PageBlobSink(`${az.url}/restores`, auth);
  const first = await new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), local, {}, sink).run(plan);
  assert.equal(first.outcome, 'succeeded', JSON.stringify(first.error));
  const repo = new vmrestore.ObjectStoreRepository({ endpoint: az.url, account: ACCOUNT, key: KEY, container: 'restores', prefix: 'backups' });
  assert.ok((await repo.uploadFrom(local, web01.restore_point.id)) > 0);
  assert.deepEqual(await repo.list(), [web01.restore_point.id]);

  const sink2 = new vmrestore.PageBlobSink(`${az.url}/restores`, auth);
  const report = await new vmrestore.RestoreExecutor(new vmrestore.SimCloud(), repo, {}, sink2).run(plan);
  assert.equal(report.outcome, 'succeeded', JSON.stringify(report.error));
  for (const disk of plan.target.disks) {
    const data = await sink2.readDisk(disk.name);
    const src = fs.readFileSync(vmrestore.demoImagePath(dir, 'web01', disk.source_disk, null));
    const want = Buffer.concat([src, Buffer.alloc(disk.size_bytes - src.length)]);
    assert.ok(data.subarray(0, disk.size_bytes).equals(want), `${disk.name} differs`);
    assert.equal(data.subarray(disk.size_bytes, disk.size_bytes + 8).toString(), 'conectix');
    assert.equal(sink2.stats(disk.name).bytes_put, 512);
  }
});

test('Azure errors keep their codes and hold no secret', async (t) => {
  const az = await startAzurite();
  t.after(az.stop);
  const bad = new vmrestore.ObjectStoreRepository({ endpoint: az.url, account: ACCOUNT, key: 'c2VjcmV0LXNlbnRpbmVs', container: 'nowhere' });
  await assert.rejects(bad.list(), (e) => e.code === 'E_REPOSITORY' && !e.message.includes('c2VjcmV0LXNlbnRpbmVs'));
  assert.throws(() => new vmrestore.PageBlobSink(`${az.url}/x`, { account: ACCOUNT }), (e) => e.code === 'E_INVALID');
  assert.throws(() => new vmrestore.ObjectStoreRepository({}), (e) => e.code === 'E_INVALID');
  const arm = new vmrestore.ArmCloud({ subscriptionId: '22222222-2222-2222-2222-222222222222', token: 'tok-sentinel-77', endpoint: 'http://127.0.0.1:9' });
  await assert.rejects(arm.catalog(), (e) => e.code === 'E_CLOUD' && !e.message.includes('tok-sentinel-77'));
});

test('ARM credentials are a token or a named azure_identity credential', () => {
  const subscriptionId = '22222222-2222-2222-2222-222222222222';
  new vmrestore.ArmCloud({ subscriptionId, credential: 'azure-cli', endpoint: 'http://127.0.0.1:9' });
  new vmrestore.ArmCloud({ subscriptionId, credential: 'managed-identity', managedIdentityClientId: 'abc' });
  for (const [opts, expect] of [
    [{ token: 'tok-sentinel-78', credential: 'azure-cli' }, 'not both'],
    [{ credential: 'az' }, "unknown credential 'az'"],
    [{}, 'give a token or a credential'],
  ]) {
    assert.throws(() => new vmrestore.ArmCloud({ subscriptionId, ...opts }),
      (e) => e.code === 'E_INVALID' && e.message.includes(expect) && !e.message.includes('tok-sentinel-78'));
  }
});
