"""The bodies of ``PUT`` and ``PATCH /v1/settings``: strict JSON, every field known, then
validated (a patch by the master, against the settings in force)."""

from __future__ import annotations

import msgspec

from ..core.settings import Settings
from ..core.settings_doc import settings_from_document
from ..errors import InvalidRequestError
from .errors import MalformedRequestError

__all__ = ["parse_settings", "parse_settings_patch"]


def parse_settings(body: bytes) -> Settings:
    """Settings from JSON: strict (an unknown field is a typo, not ignored), then validated
    (``tierq.core.settings_doc``: the master reads a settings patch the same way)."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MalformedRequestError(f"settings are not valid JSON: {exc}") from None
    return settings_from_document(raw)


def parse_settings_patch(body: bytes) -> dict[str, object]:
    """A JSON merge patch (RFC 7396) of the settings: a JSON object. Its keys and values are
    checked by the master, which applies it to the settings in force (``patch_settings``)."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MalformedRequestError(f"the settings patch is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            f"a settings patch must be a JSON object, got {type(raw).__name__}", field="settings"
        )
    return raw
