"""The settings as a document: strict reading, the whole view, merge patches, dotted keys."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierq.core.settings import AutoscaleSettings, Settings
from tierq.core.settings_doc import (
    assignments_patch,
    lookup,
    merge_patch,
    patch_settings,
    settings_document,
    settings_from_document,
)
from tierq.errors import InvalidRequestError


def test_the_document_shows_every_setting_and_reads_back() -> None:
    doc = settings_document(Settings())
    assert doc["autoscale"] == {
        "min_workers": 0,
        "max_workers": 10,
        "target_utilisation": 0.75,
        "cooldown": 60.0,
        "target_latency": None,
        "regions": [],
        "task_types": [],
    }
    assert doc["admission"]["max_queued"] == 1_000_000  # type: ignore[index]
    assert settings_from_document(doc) == Settings()


def test_a_patch_changes_only_what_it_names() -> None:
    current = Settings(aging_rate=0.5, autoscale=AutoscaleSettings(max_workers=3, cooldown=5.0))
    after = patch_settings(current, {"autoscale": {"max_workers": 8}})
    assert after.autoscale == AutoscaleSettings(max_workers=8, cooldown=5.0)
    assert after.aging_rate == 0.5
    # null: back to the default.
    assert patch_settings(after, {"autoscale": {"cooldown": None}}).autoscale.cooldown == 60.0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"autoscale": {"max_worker": 3}}, "autoscale.max_worker"),
        ({"autoscale": {"max_workers": "many"}}, "autoscale.max_workers"),
        ({"autoscale": {"min_workers": 5, "max_workers": 2}}, "autoscale.max_workers"),
        ({"autoscale": {"regions": [{"region": "eu"}]}}, "autoscale.regions[0].min_workers"),
        ({"autoscale": {"regions": [{"region": "eu", "x": 1}]}}, "autoscale.regions[0].x"),
        ({"breaker": 3}, "breaker"),
        ({"nope": 1}, "nope"),
    ],
)
def test_a_bad_patch_names_its_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        patch_settings(Settings(), patch)
    assert caught.value.field == field


def test_a_patch_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError, match="JSON object"):
        patch_settings(Settings(), [1])
    with pytest.raises(InvalidRequestError, match="JSON object"):
        settings_from_document("x")


def test_assignments_build_one_patch() -> None:
    patch = assignments_patch(
        [("autoscale.max_workers", 8), ("autoscale.cooldown", 30), ("aging_rate", 0.1)]
    )
    assert patch == {"autoscale": {"max_workers": 8, "cooldown": 30}, "aging_rate": 0.1}


@pytest.mark.parametrize(
    "pairs",
    [
        [("a.b", 1), ("a.b", 2)],
        [("autoscale", {}), ("autoscale.cooldown", 1)],
        [("autoscale.cooldown", 1), ("autoscale", {})],
        [("", 1)],
        [("a..b", 1)],
    ],
)
def test_unclear_assignments_are_refused(pairs: list[tuple[str, object]]) -> None:
    with pytest.raises(InvalidRequestError):
        assignments_patch(pairs)


def test_lookup_by_dotted_key() -> None:
    doc = settings_document(Settings())
    assert lookup(doc, "autoscale.max_workers") == 10
    assert lookup(doc, "breaker") == settings_document(Settings())["breaker"]
    for bad in ("autoscale.max_worker", "aging_rate.x", "nope"):
        with pytest.raises(InvalidRequestError) as caught:
            lookup(doc, bad)
        assert caught.value.field == bad


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(_json, _json)
def test_merge_patch_follows_rfc_7396(target: object, patch: object) -> None:
    merged = merge_patch(target, patch)
    if not isinstance(patch, dict):
        assert merged == patch
        return
    assert isinstance(merged, dict)
    for key, value in patch.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert merged[key] == value
    if isinstance(target, dict):
        for key in target.keys() - patch.keys():
            assert merged[key] == target[key]
    # Applying it again changes nothing more.
    assert merge_patch(merged, patch) == merged


def test_the_struct_encoding_and_the_document_agree() -> None:
    s = Settings(aging_rate=0.25)
    assert settings_from_document(msgspec.to_builtins(s)) == s
    assert settings_from_document(settings_document(s)) == s
