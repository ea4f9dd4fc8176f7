#!/usr/bin/env node
// Restores one demo VM with a progress display, then exits by itself.
//
//   node examples/node/restore.js [--vm web01] [--profile commvault] [--out DIR]
//
// The disks go to fixed VHD files in DIR (with an ARM template and the
// report); Ctrl-C cancels the restore, which then deletes what it created.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const vmrestore = require('../../bindings-node');

function bar(done, total, width = 30) {
  const filled = Math.floor((width * done) / Math.max(total, 1));
  return `[${'='.repeat(filled)}${' '.repeat(width - filled)}]`;
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const vm = opt('--vm', 'web01');
  const profile = opt('--profile', 'commvault');
  const out = opt('--out', fs.mkdtempSync(path.join(os.tmpdir(), 'vmrestore-restore-')));

  const demos = vmrestore.buildDemo(path.join(out, 'demo'));
  const demo = demos.find((d) => d.name === vm);
  if (!demo) throw new Error(`no demo VM '${vm}' (${demos.map((d) => d.name).join(', ')})`);

  const plan = vmrestore.plan(demo.restore_point, demo.request, { profiles: [profile] });
  console.log(vmrestore.render(plan));
  if (plan.verdict !== 'ready') {
    for (const f of plan.findings.filter((f) => f.severity === 'block')) console.error(`  ${f.rule_id}: ${f.message}`);
    process.exitCode = 2;
    return;
  }

  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const totals = new Map();
  const tty = process.stderr.isTTY;
  const executor = new vmrestore.RestoreExecutor(
    new vmrestore.SimCloud({ latencyMs: 10 }),
    new vmrestore.Repository(path.join(out, 'demo', 'repository')),
    { outDir: path.join(out, vm) },
  );
  const report = await executor.run(plan, {
    signal: controller.signal,
    onProgress: (e) => {
      if (e.event === 'bytes') {
        totals.set(e.disk, [e.done, e.total]);
        let done = 0;
        let total = 0;
        for (const [d, t] of totals.values()) {
          done += d;
          total += t;
        }
        const line = `${vm}: ${bar(done, total)} ${done >> 20}/${total >> 20} MiB`;
        if (tty) process.stderr.write(`\r${line}`);
      } else if (e.event === 'step_finished') {
        if (!tty) console.error(`  done ${e.step} (${e.elapsed_ms} ms)`);
      } else if (e.event === 'step_retried') {
        console.error(`\n  retry ${e.step} #${e.attempt}: ${e.error}`);
      }
    },
  });
  if (tty) process.stderr.write('\n');
  console.log(`${vm}: ${report.outcome} in ${report.elapsed_ms} ms`);
  for (const d of report.disks) {
    console.log(`  ${d.name}: ${d.bytes_written} bytes written, verified ${d.verified}`);
  }
  for (const p of report.post_actions) console.log(`  after the restore (${p.rule_id}): ${p.message}`);
  if (report.error) console.error(`  failed at ${report.error.step}: ${report.error.message}`);
  console.log(`output in ${path.join(out, vm)}`);
  process.exitCode = report.outcome === 'succeeded' ? 0 : 1;
}

main().catch((e) => {
  console.error(`error${e.code ? ` ${e.code}` : ''}: ${e.message}`);
  process.exitCode = 1;
});
