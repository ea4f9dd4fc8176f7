"""The executor from Python: end to end, async with a progress stream,
cancellation, failures, and fork safety."""

import asyncio
import os

import pytest

import vmrestore


def restore(restores, name):
    return next(r for r in restores if r["name"] == name)


def web01(demo, sim_options=None, **executor_options):
    """The demo's web01 planned with the commvault profile, a SimCloud made
    with `sim_options` and an executor of it over the demo repository."""
    d, restores = demo
    r = restore(restores, "web01")
    plan = vmrestore.plan(r["restore_point"], r["request"], profiles=["commvault"])
    sim = vmrestore.SimCloud(**(sim_options or {}))
    ex = vmrestore.RestoreExecutor(sim, vmrestore.Repository(d / "repository"), **executor_options)
    return plan, sim, ex


def image(dir, vm, disk, size):
    data = (dir / "images" / f"{vm}-{disk}.raw").read_bytes()
    return data + b"\0" * (size - len(data))


def test_run_sync_end_to_end_byte_identical(demo):
    d, _ = demo
    plan, sim, ex = web01(demo)
    events = []
    report = ex.run_sync(plan, progress=events.append)
    assert report.succeeded, report.error
    assert report.outcome == "succeeded"
    for disk in plan.target["disks"]:
        got = sim.disk_bytes(disk["name"])
        assert got == image(d, "web01", disk["source_disk"], len(got))
    assert {e["event"] for e in events} >= {"step_started", "step_finished", "bytes"}
    assert all(disk.verified for disk in report.disks)
    assert sim.dump()["powered_on"] == ["web01-dr"]


async def test_async_run_with_progress_stream_to_local_vhds(demo, tmp_path):
    d, restores = demo
    r = restore(restores, "db01")
    plan = vmrestore.plan(r["restore_point"], r["request"], profiles=["veeam"])
    ex = vmrestore.RestoreExecutor(vmrestore.SimCloud(), vmrestore.Repository(d / "repository"), out_dir=tmp_path)
    stream = vmrestore.ProgressStream()
    task = asyncio.ensure_future(ex.run(plan, progress=stream))
    seen = [e async for e in stream]
    report = await task
    assert report.succeeded, report.error
    assert any(e["event"] == "bytes" for e in seen)
    for disk in plan.target["disks"]:
        vhd = tmp_path / f"{disk['name']}.vhd"
        assert vhd.stat().st_size == disk["size_bytes"] + 512
    assert (tmp_path / "db01.template.json").exists()
    assert (tmp_path / "db01.report.json").exists()


async def test_cancelling_the_task_cancels_the_restore_and_gives_the_report_after_clean_up(demo):
    plan, sim, ex = web01(demo, {"write_latency_ms": 20})
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def progress(e):
        if e["event"] == "bytes":
            loop.call_soon_threadsafe(started.set)

    task = asyncio.ensure_future(ex.run(plan, progress=progress))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    task.cancel()  # twice: still one clean-up, still the report
    report = await task
    # The clean-up is over when the report arrives: nothing left, no polling.
    assert report.outcome == "cancelled", report.error
    assert report.cleaned_up
    assert sim.dump()["resources"] == []
    assert not sim.dump()["powered_on"]


async def test_a_timeout_around_run_gives_the_cancelled_report(demo):
    plan, sim, ex = web01(demo, {"write_latency_ms": 50})
    stream = vmrestore.ProgressStream()

    async def consume():
        return [e async for e in stream]

    consumer = asyncio.ensure_future(consume())
    report = await asyncio.wait_for(ex.run(plan, progress=stream), 0.5)
    assert report.outcome == "cancelled"
    assert sim.dump()["resources"] == []
    # The stream ends with the run.
    assert await asyncio.wait_for(consumer, 10)


def test_a_failing_run_returns_a_report_naming_the_step(demo):
    plan, sim, ex = web01(demo, {"always_fail": ["act"]}, max_attempts=2, base_delay_ms=1)
    report = ex.run_sync(plan)
    assert report.outcome == "failed"
    assert report.error is not None
    assert report.error.step == "convert"
    assert len(report.error.attempts) == 2
    assert sim.dump()["resources"] == []


def test_the_report_is_typed_like_the_plan(demo):
    d, _ = demo
    plan, sim, ex = web01(demo, {"always_fail": ["act"]}, max_attempts=2, base_delay_ms=1)
    failed = ex.run_sync(plan)
    err = failed.error
    assert isinstance(err, vmrestore.ReportError)
    assert err.code == "E_CLOUD" and err.step == "convert"
    assert all(isinstance(a, vmrestore.Attempt) for a in err.attempts)
    assert [a.attempt for a in err.attempts] == [1, 2]
    assert err.attempts[-1].wait_ms == 0
    by_id = {s.id: s for s in failed.steps}
    assert isinstance(by_id["convert"], vmrestore.StepReport)
    assert by_id["convert"].status == "failed"
    assert len(by_id["convert"].attempts) == 2
    # The dict forms agree with the attributes, and `obj["field"]` reads a
    # field as the dicts of earlier versions did.
    assert err.to_dict() == failed.to_dict()["error"]
    assert err["step"] == "convert"
    with pytest.raises(KeyError):
        err["no_such_field"]

    ok = vmrestore.RestoreExecutor(vmrestore.SimCloud(), vmrestore.Repository(d / "repository")).run_sync(plan)
    assert ok.succeeded, ok.error
    assert ok.error is None
    assert [s.status for s in ok.steps] == ["done"] * len(plan.steps)
    assert [s.id for s in ok.steps] == [s.id for s in plan.steps]
    disks = ok.disks
    assert {x.name for x in disks} == {x["name"] for x in plan.target["disks"]}
    for x in disks:
        assert isinstance(x, vmrestore.DiskReport)
        assert x.verified and x.digest and len(x.digest) == 64
        assert x.bytes_written > 0 and x.chunks_written > 0
    assert [x.to_dict() for x in disks] == ok.to_dict()["disks"]
    created = ok.created
    assert created and all(isinstance(c, vmrestore.CreatedResource) for c in created)
    vm = ok.vm
    assert isinstance(vm, vmrestore.VmReport) and vm.state == "restored"
    assert any(c.kind == "virtual_machine" and c.name == vm.name for c in created)
    assert [f.rule_id for f in ok.findings] == [f.rule_id for f in plan.findings]
    assert [p.message for p in ok.post_actions] == [p.message for p in plan.post_actions]
    assert ok.plan == failed.plan and ok.format_version
    assert isinstance(ok.notes, list)


def test_blocked_and_stale_plans_raise(demo):
    d, restores = demo
    r = restore(restores, "web01")
    ex = vmrestore.RestoreExecutor(vmrestore.SimCloud(), vmrestore.Repository(d / "repository"))
    req = dict(r["request"], placement="in_place")
    blocked = vmrestore.plan(r["restore_point"], req, profiles=["commvault"])
    with pytest.raises(vmrestore.PlanBlockedError) as err:
        ex.run_sync(blocked)
    assert err.value.code == "E_PLAN_BLOCKED"
    rp = dict(r["restore_point"], tier="snapshot")
    stale = vmrestore.plan(rp, r["request"], profiles=["commvault"])
    with pytest.raises(vmrestore.StalePlanError):
        ex.run_sync(stale)
    with pytest.raises(vmrestore.RepositoryError):
        vmrestore.Repository(d / "does-not-exist")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_safety(demo):
    d, restores = demo
    r = restore(restores, "app01")
    plan = vmrestore.plan(r["restore_point"], r["request"], profiles=["commvault"])
    ex = vmrestore.RestoreExecutor(vmrestore.SimCloud(), vmrestore.Repository(d / "repository"))
    assert ex.run_sync(plan).succeeded  # the parent's runtime exists before the fork
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # The sync API makes a new runtime in the child; the async one refuses clearly.
            ok = ex.run_sync(plan).succeeded
            try:
                ex.run(plan)
                refused = False
            except RuntimeError as e:
                refused = "fork" in str(e)
            code = 0 if ok and refused else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_cloud_that_cannot_run_a_step_refuses_the_plan_and_a_plan_for_it_is_blocked(demo):
    # Issue 13: a Veeam plan (boot fix) on a cloud with ArmCloud's
    # capabilities is refused before any change, listing each step.
    d, restores = demo
    r = restore(restores, "web01")
    arm = vmrestore.ArmCloud("00000000-0000-0000-0000-000000000001", token="t", endpoint="http://127.0.0.1:9")
    caps = arm.capabilities()
    assert caps["cloud"] == "arm" and "boot_fix" not in caps["step_kinds"]
    sim = vmrestore.SimCloud(capabilities=caps)
    assert sim.capabilities() == caps
    plan = vmrestore.plan(r["restore_point"], r["request"], profiles=["veeam"])
    assert plan.verdict == "ready"
    ex = vmrestore.RestoreExecutor(sim, vmrestore.Repository(d / "repository"))
    with pytest.raises(vmrestore.UnsupportedError) as err:
        ex.run_sync(plan)
    assert err.value.code == "E_UNSUPPORTED"
    for s in plan.steps:
        if s.kind not in caps["step_kinds"]:
            assert s.id in str(err.value)
    assert sim.dump()["resources"] == {} or not sim.dump()["resources"]

    blocked = vmrestore.plan(r["restore_point"], r["request"], profiles=["veeam"], capabilities=caps)
    assert blocked.verdict == "blocked"
    assert any(f.rule_id == "VMR-07" and "boot_fix" in f.message for f in blocked.findings)
    with pytest.raises(vmrestore.ParseError):
        vmrestore.plan(r["restore_point"], r["request"], profiles=["veeam"], capabilities={"cloud": 1})


def test_options_are_validated_as_node_validates_them(demo):
    # The same checks as the Node binding (restore_core::facade): a count of
    # 0 and a probability outside 0..1 are refused, naming the option.
    d, _ = demo
    repo = vmrestore.Repository(d / "repository")
    for name in ("control_concurrency", "data_concurrency", "max_attempts"):
        with pytest.raises(vmrestore.InvalidInputError, match=f"at {name}: must be at least 1") as e:
            vmrestore.RestoreExecutor(vmrestore.SimCloud(), repo, **{name: 0})
        assert e.value.code == "E_INVALID"
    for name in ("fault_probability", "data_fault_probability"):
        with pytest.raises(vmrestore.InvalidInputError, match=f"at {name}: 1.5 is not a probability"):
            vmrestore.SimCloud(**{name: 1.5})
    assert vmrestore.SimCloud(fault_probability=1.0).faults_injected() == 0


def test_each_step_carries_its_whole_operation(demo):
    plan, _, _ = web01(demo)
    by_id = {s.id: s for s in plan.steps}
    assert {s.operation["op"] for s in plan.steps} >= {"create", "write_disk", "finalize_disk", "act"}
    vm = by_id["vm"].operation
    assert vm["op"] == "create" and vm["spec"]["type"] == "virtual_machine"
    assert vm["spec"]["name"] == plan.target["vm_name"]
    assert vm["spec"]["resource_group"] == plan.target["resource_group"]
    disk = plan.target["disks"][0]
    write = by_id[f"write:{disk['name']}"].operation
    assert write == {
        "op": "write_disk",
        "disk": disk["name"],
        "source": disk["source_disk"],
        "size_bytes": disk["size_bytes"],
    }
    # The step's dict holds the same operation, as the plan's JSON does.
    assert by_id["vm"].to_dict()["operation"] == vm
    assert plan.to_dict()["steps"][[s.id for s in plan.steps].index("vm")]["operation"] == vm
