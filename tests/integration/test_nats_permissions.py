"""The bus refuses what a role may not do: the attacks of issue 12, one NATS user at a time.

Each test runs a real master and region on a server with one user per role (the test kit's
default) and tries, as another role, what an attacker with that role's credentials would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import pytest

import tierq
from tests.integration import itasks
from tests.integration.conftest import TASKS
from tierq.core import Settings
from tierq.core.model import Outcome, OutcomeKind, TaskState
from tierq.engine import ConnectOptions, EmbeddedNats, Engine, Message, Subjects, connect
from tierq.errors import PermissionDeniedError, UnauthenticatedError
from tierq.protocol import QueryKind, QueryRequest, RegionReport, SettingsReply, encode
from tierq.rpc import MasterClient
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration

ConnectAs = Callable[..., Awaitable[Engine]]

#: Long enough for the server's refusal to arrive; a refused request never gets an answer.
REFUSED_WITHIN = 1.0


async def _nothing(msg: Message) -> None:
    del msg


async def test_anonymous_connections_are_refused(nats_server: EmbeddedNats) -> None:
    with pytest.raises(UnauthenticatedError, match="refused the login"):
        await connect(ConnectOptions(servers=[nats_server.url], connect_attempts=1))
    wrong = ConnectOptions(
        servers=[nats_server.url], user="tierq-master", password="guessed", connect_attempts=1
    )
    with pytest.raises(UnauthenticatedError, match="tierq-master"):
        await connect(wrong)


async def test_no_other_role_can_join_the_master_queue_group(
    cluster: LocalCluster, client: tierq.App, connect_as: ConnectAs
) -> None:
    """The hijack: a subscriber in ``tierq-master`` answered half the submissions (lost)."""
    for role in ("client", "api", "region", "worker"):
        engine = await connect_as(role)
        with pytest.raises(PermissionDeniedError, match=r"subscribe to 'tierq\.master\.\*'"):
            await engine.subscribe("tierq.master.*", cb=_nothing, queue="tierq-master")
        with pytest.raises(PermissionDeniedError):
            await engine.subscribe("tierq.master.submit", cb=_nothing)
    handles = [await client.submit(itasks.add, i, i) for i in range(10)]
    for handle in handles:  # every id is real: nobody answered in the master's place
        assert (await client.get(handle.id)).state in (TaskState.READY, TaskState.ASSIGNED)


async def test_a_forged_region_report_is_refused(
    cluster: LocalCluster, client: tierq.App, connect_as: ConnectAs
) -> None:
    handle = await client.submit(itasks.add, 1, 2)
    forged = RegionReport(
        region="default",
        instance="forger",
        outcomes=[
            Outcome(
                task_id=handle.id, attempt=1, kind=OutcomeKind.SUCCEEDED, result={"forged": True}
            )
        ],
    )
    for role in ("client", "api", "worker"):
        engine = await connect_as(role)
        with pytest.raises(PermissionDeniedError, match=r"publish to 'tierq\.master\.report'"):
            await engine.request("tierq.master.report", encode(forged), timeout=REFUSED_WITHIN)
    await cluster.start_worker(TASKS)
    assert await handle.result(timeout=10) == 3  # the real outcome, not the forged one


async def test_a_client_cannot_change_settings(
    cluster: LocalCluster, nats_server: EmbeddedNats, connect_as: ConnectAs
) -> None:
    changed = msgspec.msgpack.encode(Settings(aging_rate=0.5))
    async with tierq.App(nats_server.url, request_timeout=REFUSED_WITHIN) as client:
        master = await client.master()
        with pytest.raises(PermissionDeniedError, match=r"publish to 'tierq\.master\.settings'"):
            await master.put_settings(changed)
        worker = await connect_as("worker")
        with pytest.raises(PermissionDeniedError):
            await worker.request("tierq.master.settings", changed, timeout=REFUSED_WITHIN)
        now = await master.query(QueryRequest(kind=QueryKind.SETTINGS), SettingsReply)
    assert now.settings.aging_rate == 0.0


async def test_the_operator_changes_settings_and_a_client_is_told_at_once(
    cluster: LocalCluster, connect_as: ConnectAs
) -> None:
    """``tierq settings``'s user may change settings; a client's refusal does not wait for
    the request's timeout (the probe), so the CLI can say "permission denied" at once."""
    operator = MasterClient(await connect_as("operator"), Subjects())
    await operator.patch_settings({"aging_rate": 0.5, "autoscale": {"max_workers": 3}})
    now = await operator.settings()
    assert (now.aging_rate, now.autoscale.max_workers) == (0.5, 3)
    client = MasterClient(await connect_as("client"), Subjects(), timeout=60.0)
    async with asyncio.timeout(10):  # far below the request's own 60 s
        with pytest.raises(PermissionDeniedError, match=r"'tierq\.master\.settings'"):
            await client.patch_settings({"aging_rate": 0.0})
    assert (await operator.settings()).aging_rate == 0.5


async def test_a_worker_stays_in_its_region(connect_as: ConnectAs) -> None:
    worker = await connect_as("worker", region="default")
    with pytest.raises(PermissionDeniedError, match=r"tierq\.region\.eu\.pull"):
        await worker.request("tierq.region.eu.pull", b"{}", timeout=REFUSED_WITHIN)
    with pytest.raises(PermissionDeniedError, match=r"tierq\.region\.default\.control"):
        await worker.request("tierq.region.default.control", b"{}", timeout=REFUSED_WITHIN)
    # Nor may it pose as its region, to receive other workers' pulls and reports.
    with pytest.raises(PermissionDeniedError):
        await worker.subscribe("tierq.region.default.pull", cb=_nothing)
    # Its own region's operations go through (nobody serves them here: no responders).
    with pytest.raises(tierq.errors.NoRespondersError):
        await worker.request("tierq.region.default.pull", b"{}", timeout=REFUSED_WITHIN)


@pytest.mark.parametrize("role", ["client", "operator", "api", "region", "worker"])
async def test_only_the_master_touches_the_log_and_the_leader_lease(
    role: str, connect_as: ConnectAs
) -> None:
    engine = await connect_as(role)
    for subject in (
        "$JS.API.STREAM.INFO.TIERQ_LOG",
        "$JS.API.STREAM.PURGE.TIERQ_LOG",
        "$JS.API.STREAM.DELETE.KV_tierq_leader",
        "$KV.tierq_leader.lease",
        "$KV.tierq_settings.settings",
        "tierq.log",
    ):
        with pytest.raises(PermissionDeniedError):
            await engine.request(subject, b"{}", timeout=REFUSED_WITHIN)
    # Nor read another role's replies.
    with pytest.raises(PermissionDeniedError):
        await engine.subscribe("_INBOX.>", cb=_nothing)
