"""`tierq settings` against a real stack with NATS users per role, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierq.core.settings import Settings
from tierq.engine import EmbeddedNats, NatsUsers
from tierq.testing import LocalCluster

from .conftest import tierq as run_tierq

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _live(cluster: LocalCluster) -> Settings:
    assert cluster.master is not None
    return cluster.master.state.settings


async def test_show_and_get(cluster: LocalCluster) -> None:
    url = cluster.nats_url
    shown = await run_tierq("settings", "show", "--nats", url)
    assert shown.code == 0, shown.stderr
    assert "autoscale.max_workers" in shown.stdout and "admission.max_queued" in shown.stdout
    doc = json.loads((await run_tierq("settings", "show", "--json", "--nats", url)).stdout)
    assert doc["autoscale"]["max_workers"] == 10 and doc["breaker"]["window"] == 20
    got = await run_tierq("settings", "get", "autoscale.max_workers", "--nats", url)
    assert got.code == 0 and json.loads(got.stdout) == 10
    group = await run_tierq("settings", "get", "autoscale", "--nats", url)
    assert json.loads(group.stdout)["cooldown"] == 60.0
    bad = await run_tierq("settings", "get", "autoscale.max_worker", "--nats", url)
    assert bad.code == 2 and "unknown settings key 'autoscale.max_worker'" in bad.stderr


async def test_set_changes_several_at_once_or_none(cluster: LocalCluster) -> None:
    url = cluster.nats_url
    done = await run_tierq(
        "settings", "set", "autoscale.max_workers=4", "autoscale.cooldown=2.5", "--nats", url
    )
    assert done.code == 0, done.stderr
    assert "autoscale.max_workers = 4" in done.stdout
    live = _live(cluster)
    assert (live.autoscale.max_workers, live.autoscale.cooldown) == (4, 2.5)
    # The shown values now differ from the defaults: the default column says so.
    shown = await run_tierq("settings", "show", "--nats", url)
    row = next(line for line in shown.stdout.splitlines() if "autoscale.max_workers" in line)
    assert row.split()[1:] == ["4", "10"]

    # One bad value: nothing of the change is applied, and the key is named.
    for args, field in [
        (("autoscale.max_workers=6", "autoscale.min_workers=9"), "autoscale.max_workers"),
        (("autoscale.max_workers=6", "breaker.window=many"), "breaker.window"),
        (("autoscale.max_workers=6", "autoscale.max_worker=1"), "autoscale.max_worker"),
    ]:
        bad = await run_tierq("settings", "set", *args, "--nats", url)
        assert bad.code == 2, bad.stderr
        assert f"invalid request ({field})" in bad.stderr, bad.stderr
        assert _live(cluster).autoscale.max_workers == 4

    # null: back to the default; a text value that is not JSON stays text (and is refused).
    reset = await run_tierq("settings", "set", "autoscale.max_workers=null", "--nats", url)
    assert reset.code == 0 and "autoscale.max_workers = 10" in reset.stdout
    text = await run_tierq("settings", "set", "aging_rate=fast", "--nats", url)
    assert text.code == 2 and "(aging_rate)" in text.stderr and "got `str`" in text.stderr
    malformed = await run_tierq("settings", "set", "autoscale.max_workers", "--nats", url)
    assert malformed.code == 2 and "expected KEY=VALUE" in malformed.stderr


async def test_apply_a_partial_or_whole_document(cluster: LocalCluster, tmp_path: Path) -> None:
    url = cluster.nats_url
    partial = tmp_path / "partial.json"
    regions = [{"region": "eu", "min_workers": 1, "max_workers": 3}]
    partial.write_text(json.dumps({"aging_rate": 0.5, "autoscale": {"regions": regions}}))
    done = await run_tierq("settings", "apply", str(partial), "--nats", url)
    assert done.code == 0, done.stderr
    live = _live(cluster)
    assert live.aging_rate == 0.5 and live.autoscale.regions[0].max_workers == 3

    # A whole document (as `show --json` writes it) with --replace; what it leaves out is reset.
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps({"breaker": {"window": 40, "min_samples": 5}}))
    done = await run_tierq("settings", "apply", str(whole), "--replace", "--nats", url)
    assert done.code == 0, done.stderr
    live = _live(cluster)
    assert live.breaker.window == 40 and live.aging_rate == 0.0 and live.autoscale.regions == ()

    for content, message in [
        ("{not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"autoscale": {"regions": [{"region": "eu"}]}}', "autoscale.regions[0].min_workers"),
        ('{"breaker": {"windw": 3}}', "breaker.windw"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        run = await run_tierq("settings", "apply", str(bad), "--nats", url)
        assert run.code == 2 and message in run.stderr, run.stderr
    assert _live(cluster).breaker.window == 40


async def test_a_user_without_the_right_is_told_what_to_use(
    cluster: LocalCluster,
    nats_server: EmbeddedNats,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = cluster.nats_url
    assert nats_server.credentials_file is not None
    users = NatsUsers.load(nats_server.credentials_file)
    client = users.find("client")
    assert client is not None
    monkeypatch.setenv("TIERQ_NATS_PASSWORD", client.password)
    # The client's user may read the settings, not change them.
    login = ("--nats", url, "--nats-user", client.user)
    read = await run_tierq("settings", "get", "aging_rate", *login)
    assert read.code == 0, read.stderr
    denied = await run_tierq("settings", "set", "aging_rate=1", *login)
    monkeypatch.delenv("TIERQ_NATS_PASSWORD")
    assert denied.code == 1
    assert "permission denied" in denied.stderr and "tierq.master.settings" in denied.stderr
    assert "operator" in denied.stderr and "PUT /v1/settings" in denied.stderr
    assert "timed out" not in denied.stderr
    assert _live(cluster).aging_rate == 0.0

    # A credentials file from before the operator role: the same advice, nothing sent.
    older = NatsUsers(
        prefix=users.prefix, users=tuple(u for u in users.users if u.role != "operator")
    )
    path = tmp_path / "older.json"
    older.save(path)
    run = await run_tierq(
        "settings", "set", "aging_rate=1", "--nats", url, "--nats-credentials", str(path)
    )
    assert run.code == 1 and "has no operator user" in run.stderr and "nats-users" in run.stderr
