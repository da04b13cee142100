"""The body of ``PUT /v1/settings``: strict JSON, every field known, then validated."""

from __future__ import annotations

import msgspec

from ..core.settings import Settings
from ..errors import InvalidRequestError
from .errors import MalformedRequestError, validation_field

__all__ = ["parse_settings"]


def parse_settings(body: bytes) -> Settings:
    """Settings from JSON: strict (an unknown field is a typo, not ignored), then validated."""
    try:
        raw = msgspec.json.decode(body)
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"invalid settings: {exc}", field=validation_field(exc)) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MalformedRequestError(f"settings are not valid JSON: {exc}") from None
    unknown = _unknown_fields(raw, Settings)
    if unknown:
        raise InvalidRequestError(f"unknown settings field {unknown!r}", field=unknown)
    return settings.validate()


def _unknown_fields(raw: object, typ: type[msgspec.Struct], prefix: str = "") -> str | None:
    """The first key of ``raw`` (recursively) that ``typ`` does not have."""
    if not isinstance(raw, dict):
        return None
    info = msgspec.inspect.type_info(typ)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.encode_name: f.type for f in info.fields}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in fields:
            return path
        sub = fields[key]
        if isinstance(sub, msgspec.inspect.StructType):
            found = _unknown_fields(value, sub.cls, path + ".")
            if found:
                return found
        elif isinstance(
            sub, msgspec.inspect.ListType | msgspec.inspect.VarTupleType
        ) and isinstance(sub.item_type, msgspec.inspect.StructType):
            for i, item in enumerate(value if isinstance(value, list) else ()):
                found = _unknown_fields(item, sub.item_type.cls, f"{path}[{i}].")
                if found:
                    return found
    return None
