"""NATS users per role: the credentials file and the server's authorization block."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tierq.config import NatsConfig
from tierq.engine import ROLES, EmbeddedNats, NatsUser, NatsUsers, Subjects, authorization_config
from tierq.engine.auth import inbox_prefix, permissions
from tierq.errors import InvalidRequestError


def test_generate_makes_a_user_per_role_and_region() -> None:
    users = NatsUsers.generate("acme", regions=["eu", "us"])
    assert {u.role for u in users.users} == set(ROLES)
    for role in ("master", "api", "client"):
        assert users.find(role) is not None
    for region in ("eu", "us"):
        worker = users.find("worker", region)
        assert worker is not None and worker.user == f"acme-worker-{region}"
    assert users.find("worker", "asia") is None
    passwords = [u.password for u in users.users]
    assert len(set(passwords)) == len(passwords)
    assert all(len(p) >= 40 for p in passwords)
    assert "password" not in repr(users.users[0]) and passwords[0] not in repr(users)


def test_save_is_private_and_loads_back(tmp_path: Path) -> None:
    users = NatsUsers.generate()
    path = tmp_path / "sub" / "credentials.json"
    users.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert NatsUsers.load(path) == users


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not json", "not JSON"),
        (b'{"users": [{"role": "root", "user": "x", "password": "p"}]}', "role"),
        (b'{"users": [{"role": "client", "user": "a.b", "password": "p"}]}', "user names"),
        (b'{"users": [{"role": "client", "user": "c", "password": "a\\"b"}]}', "password"),
        (b'{"users": [{"role": "worker", "user": "w", "password": "p"}]}', "region"),
        (
            b'{"users": [{"role": "worker", "user": "w", "password": "p", "region": "a.>"}]}',
            "region",
        ),
    ],
)
def test_a_bad_credentials_file_is_a_clear_error(
    tmp_path: Path, content: bytes, match: str
) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(content)
    with pytest.raises(InvalidRequestError, match=match):
        NatsUsers.load(path)


def test_a_missing_credentials_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match=r"nope\.json"):
        NatsUsers.load(tmp_path / "nope.json")


def test_for_role_takes_the_role_user_unless_one_is_given(tmp_path: Path) -> None:
    users = NatsUsers.generate(regions=["eu"])
    path = tmp_path / "c.json"
    users.save(path)
    base = NatsConfig(servers=("nats://127.0.0.1:1",), credentials=str(path))
    worker = base.for_role("worker", "eu")
    assert (worker.user, worker.password) == (
        "tierq-worker-eu",
        users.find("worker", "eu").password,
    )  # type: ignore[union-attr]
    assert base.for_role("api").user == "tierq-api"
    with pytest.raises(InvalidRequestError, match="no worker user of region 'us'"):
        base.for_role("worker", "us")
    explicit = NatsConfig(credentials=str(path), user="me", password="secret")
    assert explicit.for_role("master").user == "me"
    assert NatsConfig().for_role("master") == NatsConfig()
    assert "secret" not in repr(explicit)


def test_permissions_follow_the_roles() -> None:
    s = Subjects()
    master = permissions("master", s, "tierq-master")
    assert s.master_all in master.subscribe and master.allow_responses
    assert s.log_subject in master.publish
    region = permissions("region", s, "tierq-region-eu", "eu")
    assert region.publish == (
        "tierq.master.register",
        "tierq.master.lease",
        "tierq.master.report",
        "tierq.region.eu.hello",  # announces a restart to its workers
        "_INBOX.tierq-worker-eu.>",  # probes a silent worker of its own region
    )
    assert "tierq.region.eu.*" in region.subscribe
    worker = permissions("worker", s, "tierq-worker-eu", "eu")
    # Its own region's subjects, and declaring its apps' schedules (never changing them).
    assert worker.publish[-1] == "tierq.master.schedule_declare"
    assert all(p.startswith("tierq.region.eu.") for p in worker.publish[:-1])
    assert "tierq.master.schedule_update" not in worker.publish
    assert worker.subscribe == ("_INBOX.tierq-worker-eu.>", "tierq.region.eu.hello")
    client = permissions("client", s, "tierq-client")
    assert "tierq.master.settings" not in client.publish
    assert "tierq.master.settings" in permissions("api", s, "tierq-api").publish
    # The operator (tierq settings): everything a client may, and changing the settings.
    operator = permissions("operator", s, "tierq-operator")
    assert set(operator.publish) - set(client.publish) == {"tierq.master.settings"}
    assert operator.subscribe == ("_INBOX.tierq-operator.>", "tierq.admission")
    assert not operator.allow_responses
    for role in ("region", "worker", "api", "client", "operator"):
        perms = permissions(role, s, "u", "eu" if role in ("region", "worker") else None)
        assert not any(p.startswith("tierq.master") for p in perms.subscribe), role
        assert not any("_LOG" in p or "$KV" in p or "leader" in p for p in perms.publish), role
    assert inbox_prefix("tierq-api") == "_INBOX.tierq-api"


def test_the_server_config_lists_every_user(tmp_path: Path) -> None:
    users = NatsUsers(
        users=(NatsUser(role="client", user="c1", password="pw-1"),),
    )
    block = authorization_config(users)
    assert 'user: "c1", password: "pw-1"' in block
    assert '"tierq.master.submit"' in block and '"_INBOX.c1.>"' in block
    srv = EmbeddedNats(tmp_path, users=users)
    assert "authorization {" in srv._config()
    assert "authorization" not in EmbeddedNats(tmp_path)._config()


def test_a_client_next_to_tierq_dev_finds_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierq.config import DEV_CREDENTIALS

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIERQ_NATS_CREDENTIALS", raising=False)
    assert NatsConfig.from_env().credentials is None
    NatsUsers.generate().save(tmp_path / ".tierq" / "nats" / "credentials.json")
    found = NatsConfig.from_env()
    assert found.credentials == DEV_CREDENTIALS
    assert found.for_role("client").user == "tierq-client"
    monkeypatch.setenv("TIERQ_NATS_CREDENTIALS", "/elsewhere.json")
    assert NatsConfig.from_env().credentials == "/elsewhere.json"


def test_a_leaf_links_user_may_do_what_its_regions_region_and_worker_may() -> None:
    s = Subjects("tierq")
    leaf = permissions("leaf", s, "tierq-leaf-eu", "eu")
    region = permissions("region", s, "tierq-region-eu", "eu")
    worker = permissions("worker", s, "tierq-worker-eu", "eu")
    assert set(leaf.publish) == set(region.publish) | set(worker.publish)
    assert set(leaf.subscribe) == set(region.subscribe) | set(worker.subscribe)
    assert leaf.allow_responses
    assert s.master("settings") not in leaf.publish and s.master("submit") not in leaf.publish
    assert not any(".region.us." in x for x in (*leaf.publish, *leaf.subscribe))
