"""Disaster-recovery runbook: restore every VM of the demo backups to another
region, print the blocked ones with their reasons, run the rest with a
progress bar, and write a summary.

    python examples/python/runbook.py --region northeurope --out /tmp/dr
"""

import argparse
import json
import pathlib
import sys
import time

import vmrestore


def bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return "[" + "=" * filled + " " * (width - filled) + "]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--region", default="northeurope", help="destination region")
    ap.add_argument("--profile", default="commvault", choices=vmrestore.builtin_profiles())
    ap.add_argument("--out", default="dr-out", help="where the demo backups, VHDs and summary go")
    args = ap.parse_args()

    out = pathlib.Path(args.out)
    restores = vmrestore.build_demo(out / "demo")
    repo = vmrestore.Repository(out / "demo" / "repository")
    summary = []
    for r in restores:
        request = r["request"]
        request["destination"]["region"] = args.region
        try:
            plan = vmrestore.plan(r["restore_point"], request, profiles=[args.profile])
        except vmrestore.VmrestoreError as e:
            print(f"{r['name']}: cannot plan ({e.code}): {e}")
            summary.append({"vm": r["name"], "status": "error", "reason": str(e)})
            continue
        if not plan.is_ready:
            print(f"{r['name']}: BLOCKED")
            for f in plan.blocking:
                print(f"    {f.rule_id}: {f.message}")
            summary.append({"vm": r["name"], "status": "blocked", "rules": [f.rule_id for f in plan.blocking]})
            continue
        for t in plan.transformations:
            print(f"{r['name']}: {t.rule_id} {t.message}")
        totals: dict[str, tuple[int, int]] = {}

        def progress(e: dict) -> None:
            if e["event"] == "bytes":
                totals[e["disk"]] = (e["done"], e["total"])
                done = sum(d for d, _ in totals.values())
                total = sum(t for _, t in totals.values())
                sys.stdout.write(f"\r{r['name']}: {bar(done, total)} {done >> 20}/{total >> 20} MiB")
                sys.stdout.flush()

        ex = vmrestore.RestoreExecutor(vmrestore.SimCloud(), repo, out_dir=out / r["name"])
        t0 = time.monotonic()
        report = ex.run_sync(plan, progress=progress)
        print(f"\n{r['name']}: {report.outcome} in {time.monotonic() - t0:.1f} s")
        summary.append({
            "vm": r["name"],
            "status": report.outcome,
            "disks_verified": sum(1 for d in report.disks if d.verified),
            "post_actions": [p.message for p in plan.post_actions],
            "error": report.error.to_dict() if report.error else None,
        })
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"summary written to {out / 'summary.json'}")
    return 0 if all(s["status"] in ("succeeded", "blocked") for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
