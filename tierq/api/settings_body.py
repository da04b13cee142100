"""The body of ``PUT /v1/settings``: strict JSON, every field known, then validated."""

from __future__ import annotations

import msgspec

from ..core.settings import Settings
from ..core.settings_doc import settings_from_document
from .errors import MalformedRequestError

__all__ = ["parse_settings"]


def parse_settings(body: bytes) -> Settings:
    """Settings from JSON: strict (an unknown field is a typo, not ignored), then validated
    (``tierq.core.settings_doc``: the master reads a settings patch the same way)."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MalformedRequestError(f"settings are not valid JSON: {exc}") from None
    return settings_from_document(raw)
