"""schemathesis against the served OpenAPI, with a live stack behind the API.

No 5xx, every response conforms to its documented status, content type and schema, and data
outside the schema is refused. The run is seeded (reproducible) and bounded in time; the
event stream (an endless SSE response) is covered by the contract tests instead.
"""

from __future__ import annotations

import asyncio
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tierq.api import ApiServer
from tierq.core.settings import Settings
from tierq.engine import EmbeddedNats
from tierq.testing import local_cluster

from .support import TOKENS, api_config

pytestmark = pytest.mark.integration

#: Every check schemathesis has, positive data acceptance included (see CONFIG).
CHECKS = "all"
#: Examples per operation; TIERQ_SCHEMATHESIS_EXAMPLES raises it for a longer soak.
EXAMPLES = int(os.environ.get("TIERQ_SCHEMATHESIS_EXAMPLES", "40"))


def schemathesis_bin() -> str:
    path = Path(sys.executable).parent / "schemathesis"
    if not path.exists():
        pytest.skip("schemathesis is not installed")
    return str(path)


#: 413 is how the API refuses a body over its size limit, whatever the body holds.
#:
#: Positive data acceptance: a request the document allows must be accepted, except where the
#: server enforces a rule JSON Schema cannot state. Those rules are written in the schema's
#: descriptions and refused with a problem naming the field; only the operations that carry
#: them may answer 422 (or 400 for a dependency cycle) to schema-valid data:
#: - task type names must be printable and NFC/NFKC-normalised, with no look-alike of a
#:   reserved name (tasks, batches, workflow nodes, worker registrations, priority rules);
#: - a task's timeout is bounded by the live ``max_timeout`` setting (7 days by default);
#: - workflow edges must not form a cycle (400, code ``cycle``), and ``depends_on`` must name
#:   tasks that exist (400, code ``unknown_task``);
#: - JSON values (task arguments, results) must fit the master's limits: 64-bit integers,
#:   finite floats, the nesting depth and payload size of the live settings;
#: - list cursors are opaque: only one the server returned is accepted;
#: - a settings patch (any JSON object in the document) may name only fields of Settings, and
#:   the settings it leads to are checked as a whole document is;
#: - a schedule has exactly one of ``cron`` and ``every`` and one of ``task`` and
#:   ``workflow``, a cron expression croniter reads, a zone the zone data knows, an offset
#:   below its interval and ``end_at`` after ``start_at``; a new one needs an ``id`` and a
#:   fire time after now (not an ``end_at`` in the past, nor a cron no date matches); a
#:   backfill range lies in the past with ``start <= end`` and at most 1,000 fire times.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428"]

[[operations]]
include-name = [
  "POST /v1/regions/{region}/workers", "POST /v1/regions/{region}/workers/{worker}/report",
  "PUT /v1/settings", "PATCH /v1/settings",
  "GET /v1/tasks", "GET /v1/workflows", "GET /v1/workflows/{workflow_id}",
]
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "401", "403", "404", "409", "422", "429",
]

[[operations]]
include-name = [
  "POST /v1/tasks", "POST /v1/tasks:batch", "POST /v1/workflows",
  "POST /v1/schedules", "PUT /v1/schedules/{schedule_id}",
  "POST /v1/schedules/{schedule_id}/backfill",
]
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "400", "401", "403", "404", "409", "422", "429",
]
"""


async def run(
    api: ApiServer, token: str | None, tmp_path: Path, name: str, *extra: str
) -> tuple[int, str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        schemathesis_bin(),
        "--config-file",
        str(config),
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20261129",
        "--exclude-path",
        "/v1/events",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / f"{name}.xml"),
    ]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    args += extra
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,  # its cache folder goes there, not into the checkout
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.timeout(240)
async def test_openapi_conformance(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    config = api_config(
        nats_server.url,
        # Long polls held for 30 s would eat the time budget; the clamp is what is tested.
        max_pull_wait=0.2,
        max_wait=0.2,
    )
    async with (
        local_cluster(
            nats_server.url,
            settings=Settings(region_lease_seconds=5.0),
            leader_lease_seconds=30.0,
        ),
        ApiServer(config) as api,
    ):
        _, out = await run(api, TOKENS["admin"], tmp_path, "admin")
        assert_clean(tmp_path / "admin.xml", out)
        # Without a token every operation but the health checks must be refused (401), and
        # conform to the document while at it.
        _, out = await run(
            api, None, tmp_path, "anonymous", "--phases", "coverage,fuzzing", "-n", "10"
        )
        assert_clean(tmp_path / "anonymous.xml", out)


#: Errors inside schemathesis/hypothesis themselves (not findings about the API): its
#: generator occasionally trips over CPython's AST recursion guard on this schema size.
_TOOL_TROUBLE = ("AST constructor recursion", "Inconsistent results", "lambda_sources")


def assert_clean(report: Path, out: str) -> None:
    """No check failed; errors are allowed only when they are the tool's own trouble."""
    assert report.exists(), out[-6000:]
    failures, errors = [], []
    for case in ET.parse(report).iter("testcase"):
        for child in case:
            text = f"{case.get('name')}: {child.get('message') or ''} {child.text or ''}"
            if child.tag == "failure":
                failures.append(text[:2000])
            elif child.tag == "error" and not any(t in text for t in _TOOL_TROUBLE):
                errors.append(text[:2000])
    assert failures == [] and errors == [], out[-6000:]
