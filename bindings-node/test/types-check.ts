// Compiled with `tsc --noEmit` by the test script: the published types
// describe what the tests and examples do. Not run.
import * as vmrestore from '..'
import type { Plan, Report, ProgressEvent, RestorePoint, RestoreRequest, Finding } from '..'

async function portal(rp: RestorePoint, req: RestoreRequest, signal: AbortSignal): Promise<Report> {
  const plan: Plan = vmrestore.plan(rp, req, { profiles: ['commvault'], rules: 'rules = []' })
  const blocking: Finding[] = plan.findings.filter((f) => f.severity === 'block')
  if (plan.verdict === 'blocked') throw new Error(blocking.map((f) => f.rule_id).join(', '))
  const graph: string = vmrestore.render(plan, 'mermaid')
  void graph
  const again: Plan = await vmrestore.planAsync(JSON.stringify(rp), req)
  void again.estimates.bytes_to_move
  const cloud = new vmrestore.SimCloud({ latencyMs: 20, faultProbability: 0.1, seed: 1 })
  const repo = new vmrestore.Repository('/backups')
  const ex = new vmrestore.RestoreExecutor(cloud, repo, { outDir: '/tmp/out', dataConcurrency: 2 })
  const stream = new vmrestore.ProgressStream()
  const report = ex.run(plan, {
    signal,
    progress: stream,
    onProgress: (e: ProgressEvent) => {
      if (e.event === 'bytes') console.log(e.disk, e.done, e.total)
    },
  })
  for await (const e of stream) void e
  const r: Report = await report
  if (r.outcome === 'failed' && r.error) console.log(r.error.code, r.error.step)
  return r
}

void portal

function logging(): void {
  vmrestore.setLogger((level, target, message) => {
    const l: 'error' | 'warn' | 'info' | 'debug' | 'trace' = level
    console.log(l, target.length, message.length)
  }, 'restore_core=debug,hyper_util=info')
  vmrestore.setLogger(null)
}
void logging
