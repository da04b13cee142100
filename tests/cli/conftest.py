"""Running ``python -m tierq`` as a user would, against a real stack."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, local_cluster

TASKS = """
import asyncio
import tierq

app = tierq.App()

class Broken(Exception):
    pass

@app.task(name="c.add")
async def add(x, y):
    return x + y

@app.task(name="c.steps")
async def steps(n, ctx):
    for i in range(n):
        ctx.progress((i + 1) / n, f"step {i + 1}")
        await asyncio.sleep(0.05)
    return {"steps": n}

@app.task(name="c.fail", retries=0)
def fail():
    raise Broken("it broke")

@app.task(name="c.sleepy", timeout=1, retries=0, priority=7)
async def sleepy(seconds):
    await asyncio.sleep(seconds)
    return "woke"
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    name = f"tq_cli_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(TASKS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, tmp_path
    sys.modules.pop(name, None)


async def tierq(*argv: str, cwd: Path | None = None, timeout: float = 40) -> Run:
    """Run the CLI in a subprocess without blocking this loop (services live on it)."""
    env = dict(os.environ)
    env.pop("TIERQ_NATS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd or ""), os.getcwd()]))
    env["COLUMNS"] = "200"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tierq",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    async with local_cluster(nats_server.url, heartbeat_interval=0.2) as c:
        yield c
