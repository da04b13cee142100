"""The CLI against the real stack, run as a subprocess like a user would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

import tierq
from tierq.engine import free_port
from tierq.testing import LocalCluster

from .conftest import tierq as run_tierq

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_submit_wait_prints_the_result(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    name, _ = module_dir
    await cluster.start_worker(name)
    run = await run_tierq(
        "submit", "c.steps", "--args", "[4]", "--wait", "--nats", cluster.nats_url
    )
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"steps": 4}
    assert "submitted c.steps as" in run.stderr


async def test_submit_without_wait_prints_the_id(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    name, _ = module_dir
    await cluster.start_worker(name)
    run = await run_tierq(
        "submit", "c.add", "--kwargs", '{"x": 1, "y": 2}', "--nats", cluster.nats_url
    )
    assert run.code == 0, run.stderr
    task_id = run.stdout.strip()
    async with tierq.App(cluster.nats_url) as app:
        assert await app.handle(task_id).result(timeout=20) == 3
    status = await run_tierq("status", task_id, "--nats", cluster.nats_url)
    assert status.code == 0, status.stderr
    assert "succeeded" in status.stdout and "c.add" in status.stdout
    as_json = await run_tierq("status", task_id, "--json", "--nats", cluster.nats_url)
    assert json.loads(as_json.stdout)["result"] == 3


async def test_a_failed_task_exits_1_with_its_error(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    name, _ = module_dir
    await cluster.start_worker(name)
    run = await run_tierq("submit", "c.fail", "--wait", "--nats", cluster.nats_url)
    assert run.code == 1
    assert f"task failed: {name}.Broken: it broke" in run.stderr
    assert 'raise Broken("it broke")' in run.stderr  # the remote traceback


async def test_tasks_and_workflows_views(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    name, _ = module_dir
    await cluster.start_worker(name)
    async with tierq.App(cluster.nats_url) as app:
        wf = app.workflow("cli-view")
        a = wf.add("c.add", 1, 2, key="first")
        b = wf.add("c.add", a, 10, key="second")
        wf.add("c.add", a, b, key="third")
        handle = await wf.submit()
        assert await handle.result(timeout=20) == {"third": 16}
    tree = await run_tierq("workflows", handle.id, "--nats", cluster.nats_url)
    assert tree.code == 0, tree.stderr
    assert "cli-view" in tree.stdout and "3/3 done" in tree.stdout
    for key in ("first", "second", "third"):
        assert key in tree.stdout
    # Without an id: the list, newest first, as JSON lines.
    rows = await run_tierq(
        "workflows", "--json", "--state", "succeeded", "--nats", cluster.nats_url
    )
    assert rows.code == 0, rows.stderr
    first = json.loads(rows.stdout.splitlines()[0])
    assert (first["id"], first["name"], first["done"], first["total"]) == (
        handle.id,
        "cli-view",
        3,
        3,
    )
    listing = await run_tierq(
        "tasks",
        "--state",
        "succeeded",
        "--workflow",
        handle.id,
        "--json",
        "--nats",
        cluster.nats_url,
    )
    assert listing.code == 0, listing.stderr
    records = [json.loads(line) for line in listing.stdout.splitlines()]
    assert sorted(r["result"] for r in records) == [3, 13, 16]
    table = await run_tierq("tasks", "--nats", cluster.nats_url)
    assert table.code == 0 and "c.add" in table.stdout


async def test_unknown_task_id_is_a_clean_error(cluster: LocalCluster) -> None:
    run = await run_tierq("status", "00000000000000000bad", "--nats", cluster.nats_url)
    assert run.code == 1
    assert "00000000000000000bad" in run.stderr
    assert "Traceback" not in run.stderr


async def test_no_master_behind_the_server(nats_server) -> None:  # type: ignore[no-untyped-def]
    run = await run_tierq("tasks", "--nats", nats_server.url)
    assert run.code == 1
    assert "tierq dev" in run.stderr and "Traceback" not in run.stderr


async def test_tierq_dev_end_to_end(module_dir: tuple[str, Path], tmp_path: Path) -> None:
    """`tierq dev mymodule` then `tierq submit --wait` from another shell, then Ctrl-C."""
    name, where = module_dir
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(where), os.getcwd()])
    log = (tmp_path / "dev.log").open("wb")
    dev = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tierq",
        "dev",
        name,
        "--workers",
        "1",
        "--no-api",
        "--nats-port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
        cwd=where,
        env=env,
        stderr=log,
        stdout=log,
    )
    credentials = tmp_path / "data" / "nats" / "credentials.json"
    try:
        url = f"nats://127.0.0.1:{port}"
        for _ in range(120):
            if credentials.exists():
                break
            await asyncio.sleep(0.25)
        # The embedded server has a NATS user per role; their passwords are private.
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        anonymous = await run_tierq("tasks", "--nats", url, cwd=where)
        assert anonymous.code == 1 and "refused the login" in anonymous.stderr, anonymous.stderr
        result = None
        for _ in range(60):
            result = await run_tierq(
                "submit",
                "--nats-credentials",
                str(credentials),
                "c.add",
                "--args",
                "[20, 22]",
                "--wait",
                "--wait-timeout",
                "20",
                "--nats",
                url,
                cwd=where,
            )
            if result.code == 0:
                break
            await asyncio.sleep(0.5)
        assert result is not None and result.code == 0, (tmp_path / "dev.log").read_text()
        assert json.loads(result.stdout) == 42
        dev.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(dev.wait(), 30) == 0
    finally:
        if dev.returncode is None:
            dev.kill()
            await dev.wait()
        log.close()


async def test_retry_priority_regions_and_workers(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    """Issue 15, item 11: the fleet and the task fixes from the shell."""
    name, _ = module_dir
    await cluster.start_worker(name)
    url = cluster.nats_url
    async with tierq.App(url) as app:
        once = tierq.RetryPolicy(max_attempts=1)
        (failed,) = await app.submit_many([tierq.TaskSpec(name="c.fail", retry=once)])
        with pytest.raises(tierq.TaskFailedError):
            await failed.result(timeout=20)
        (waiting,) = await app.submit_many([tierq.TaskSpec(name="c.add", region="nowhere")])
    run = await run_tierq("retry", failed.id, "--nats", url)
    assert run.code == 0 and f"retrying {failed.id}" in run.stderr, run.stderr
    async with tierq.App(url) as app:
        task = await app.get(failed.id)
        assert (task.attempt == 2 and task.state is not tierq.TaskState.DEAD) or task.attempt == 2
    run = await run_tierq("priority", waiting.id, "42", "--nats", url)
    assert run.code == 0, run.stderr
    async with tierq.App(url) as app:
        assert (await app.get(waiting.id)).priority == 42
    bad = await run_tierq("priority", waiting.id, "99999", "--nats", url)
    assert bad.code == 2 and "99999" in bad.stderr
    regions = await run_tierq("regions", "--json", "--nats", url)
    (region,) = json.loads(regions.stdout)
    assert region["name"] == "default" and "c.add" in region["task_types"]
    workers = await run_tierq("workers", "--nats", url)
    assert workers.code == 0 and "default" in workers.stdout and "c.add" in workers.stdout


async def test_status_and_workflows_watch_until_done(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    """Issue 15, item 11: --watch redraws until the task (or workflow) has ended, then
    prints its final state and exits."""
    name, _ = module_dir
    await cluster.start_worker(name)
    url = cluster.nats_url
    async with tierq.App(url) as app:
        handle = await app.submit("c.steps", 20)  # about a second of steps
        wf = app.workflow("watched")
        first = wf.add("c.steps", 10)
        wf.add("c.add", 1, 2, depends_on=[first])
        run = await wf.submit()
    watched = await run_tierq("status", handle.id, "--watch", "--nats", url, timeout=60)
    assert watched.code == 0, watched.stderr
    assert "succeeded" in watched.stdout and '"steps": 20' in watched.stdout
    tree = await run_tierq("workflows", run.id, "--watch", "--nats", url, timeout=60)
    assert tree.code == 0, tree.stderr
    assert "watched" in tree.stdout and tree.stdout.count("succeeded") >= 2, tree.stdout


async def test_submit_workflow_from_a_file(
    cluster: LocalCluster, module_dir: tuple[str, Path], tmp_path: Path
) -> None:
    name, _ = module_dir
    await cluster.start_worker(name)
    url = cluster.nats_url
    doc = {
        "name": "from-file",
        "nodes": [
            {"key": "a", "spec": {"name": "c.add", "args": [1, 2]}},
            {"key": "b", "spec": {"name": "c.add", "args": [{"$result": "a"}, 10]}},
        ],
        "edges": [["a", "b"]],
    }
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(doc))
    run = await run_tierq("submit-workflow", str(path), "--wait", "--nats", url)
    assert run.code == 0, run.stderr
    workflow_id = run.stdout.strip()
    async with tierq.App(url) as app:
        view = await app.get_workflow(workflow_id)
        assert view.state == "succeeded" and view.name == "from-file"
        results = {n.key: (await app.get(n.task_id)).result for n in view.nodes}
    assert results == {"a": 3, "b": 13}
    path.write_text('{"nodes": "not a list"}')
    bad = await run_tierq("submit-workflow", str(path), "--nats", url)
    assert bad.code == 2 and "not a workflow spec" in bad.stderr
