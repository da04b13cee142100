from __future__ import annotations

import pytest

from tierq.engine import MASTER_OPS, REGION_OPS, Subjects, validate_token
from tierq.errors import InvalidRequestError


@pytest.mark.parametrize(
    "value",
    ["a.b", "*", ">", "$JS", "has space", "x" * 65, "", "tab\there", "new\nline", "é", "a>b"],
)
def test_bad_tokens_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_token(value, "region")
    assert info.value.field == "region"


@pytest.mark.parametrize("value", ["eu", "us-east_1", "GPU", "x" * 64, "0"])
def test_good_tokens_pass(value: str) -> None:
    assert validate_token(value, "region") == value


def test_default_names() -> None:
    s = Subjects()
    assert s.master("submit") == "tierq.master.submit"
    assert s.master_all == "tierq.master.*"
    assert s.region("eu", "pull") == "tierq.region.eu.pull"
    assert s.region_all("eu") == "tierq.region.eu.*"
    assert s.event("succeeded") == "tierq.events.succeeded"
    assert s.events_all == "tierq.events.>"
    assert s.log_stream == "TIERQ_LOG"
    assert s.log_subject == "tierq.log"
    assert s.leader_bucket == "tierq_leader"
    assert s.snapshot_bucket == "tierq_snapshots"
    assert s.settings_bucket == "tierq_settings"


def test_prefix_changes_everything() -> None:
    s = Subjects("acme-prod")
    assert s.master("lease") == "acme-prod.master.lease"
    assert s.log_stream == "ACME-PROD_LOG"
    assert s.region("gpu", "report") == "acme-prod.region.gpu.report"


@pytest.mark.parametrize("prefix", ["a.b", "", "$SYS", "x y", ">"])
def test_bad_prefix_refused(prefix: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Subjects(prefix)
    assert info.value.field == "prefix"


def test_every_declared_op_has_a_subject() -> None:
    s = Subjects()
    assert {s.master(op).rsplit(".", 1)[1] for op in MASTER_OPS} == MASTER_OPS
    assert {s.region("r", op).rsplit(".", 1)[1] for op in REGION_OPS} == REGION_OPS


def test_unknown_ops_and_bad_region_refused() -> None:
    s = Subjects()
    with pytest.raises(InvalidRequestError):
        s.master("drop_tables")
    with pytest.raises(InvalidRequestError):
        s.region("eu", "nope")
    with pytest.raises(InvalidRequestError) as info:
        s.region("eu.*", "pull")
    assert info.value.field == "region"
    with pytest.raises(InvalidRequestError):
        s.event("a.>")
