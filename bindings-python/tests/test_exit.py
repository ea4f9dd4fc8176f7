"""The interpreter exits cleanly after async runs: the README pattern
(ProgressStream + ensure_future + async for), a cancelled run, and a run
still going when the script ends, each in fresh subprocesses (a crash at
exit only shows in the process's return code and stderr)."""

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import vmrestore

PATTERN = textwrap.dedent(
    """
    import asyncio, json, sys
    import vmrestore

    async def main() -> None:
        plan = vmrestore.Plan.from_json(open(sys.argv[1]).read())
        ex = vmrestore.RestoreExecutor(vmrestore.SimCloud(), vmrestore.Repository(sys.argv[2]))
        stream = vmrestore.ProgressStream()
        task = asyncio.ensure_future(ex.run(plan, progress=stream))
        events = 0
        async for _ in stream:
            events += 1
        report = await task
        print(json.dumps({"outcome": report.outcome, "events": events}))

    asyncio.run(main())
    """
)

CANCEL = textwrap.dedent(
    """
    import asyncio, json, sys
    import vmrestore

    async def main() -> None:
        plan = vmrestore.Plan.from_json(open(sys.argv[1]).read())
        sim = vmrestore.SimCloud(write_latency_ms=20)
        ex = vmrestore.RestoreExecutor(sim, vmrestore.Repository(sys.argv[2]))
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def progress(e: dict) -> None:
            if e["event"] == "bytes":
                loop.call_soon_threadsafe(started.set)

        task = asyncio.ensure_future(ex.run(plan, progress=progress))
        await asyncio.wait_for(started.wait(), 60)
        task.cancel()
        report = await task
        state = sim.dump()
        print(json.dumps({"outcome": report.outcome, "cleaned_up": report.cleaned_up,
                          "resources": state["resources"], "powered_on": state["powered_on"]}))

    asyncio.run(main())
    """
)

# The loop stops while the run is still sending bytes (its task never
# awaited): the exit cancels the run, waits for its clean-up, and no
# progress callback runs once the interpreter finalizes.
ABANDONED = textwrap.dedent(
    """
    import asyncio, sys
    import vmrestore

    plan = vmrestore.Plan.from_json(open(sys.argv[1]).read())
    ex = vmrestore.RestoreExecutor(vmrestore.SimCloud(write_latency_ms=5),
                                   vmrestore.Repository(sys.argv[2]))
    seen = []

    async def start() -> None:
        asyncio.ensure_future(ex.run(plan, progress=seen.append))
        while not any(e["event"] == "bytes" for e in seen):
            await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(start())
    print("left", len(seen))
    """
)


def plan_file(demo, tmp_path: Path, name: str = "app01") -> tuple[str, str]:
    d, restores = demo
    r = next(r for r in restores if r["name"] == name)
    plan = vmrestore.plan(r["restore_point"], r["request"], profiles=["commvault"])
    path = tmp_path / f"{name}.plan.json"
    path.write_text(plan.to_json())
    return str(path), str(d / "repository")


def run_many(script: str, args: tuple[str, str], times: int) -> list[subprocess.CompletedProcess[str]]:
    def one(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                              timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(times)))


def assert_clean(results: list[subprocess.CompletedProcess[str]]) -> None:
    bad = [(r.returncode, r.stderr[-2000:]) for r in results
           if r.returncode != 0 or "interpreter is not initialized" in r.stderr
           or "panicked" in r.stderr or "Traceback" in r.stderr]
    assert not bad, f"{len(bad)} of {len(results)} exits not clean: {bad[:3]}"


def test_readme_pattern_exits_cleanly_50_times(demo, tmp_path):
    results = run_many(PATTERN, plan_file(demo, tmp_path), 50)
    assert_clean(results)
    for r in results:
        assert '"outcome": "succeeded"' in r.stdout, r.stdout


def test_cancelled_run_reports_cancelled_cleans_up_and_exits_cleanly(demo, tmp_path):
    import json

    results = run_many(CANCEL, plan_file(demo, tmp_path, "web01"), 6)
    assert_clean(results)
    for r in results:
        out = json.loads(r.stdout)
        assert out["outcome"] == "cancelled", out
        assert out["cleaned_up"], out
        assert out["resources"] == [] and out["powered_on"] == [], out


def test_exit_while_a_run_is_going_is_clean(demo, tmp_path):
    results = run_many(ABANDONED, plan_file(demo, tmp_path, "web01"), 6)
    assert_clean(results)
    assert all(r.stdout.startswith("left ") for r in results)
