"""The settings as a JSON document: read strictly, shown whole, changed by merge patches.

One reading serves every way of changing settings: ``PUT /v1/settings`` (a whole document),
the master's ``settings`` operation with a *patch* (``tierq settings set`` / ``apply``, an
RFC 7396 JSON merge patch applied to the live settings inside the master, so several
changes are one atomic change and nobody else's change in between is lost), and the
dashboard. An unknown field is a typo, never ignored; every error names its field as a path
(``autoscale.task_types[1].max_workers``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import msgspec

from ..errors import InvalidRequestError
from .settings import Settings

__all__ = [
    "assignments_patch",
    "field_path",
    "lookup",
    "merge_patch",
    "patch_settings",
    "settings_document",
    "settings_from_document",
    "validation_field",
]

_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]*)`")


def validation_field(exc: msgspec.ValidationError) -> str | None:
    """The field a msgspec validation error is about, as a path (``tasks[0].priority``).

    msgspec names the path after `` - at `` and, for a missing or unknown field, the field
    itself in the message; both together make the full path.
    """
    text = str(exc)
    marker = " - at `"
    path = None
    if marker in text:
        text, _, at = text.rpartition(marker)
        path = field_path(at.rstrip("`"))
    named = _NAMED_FIELD.search(text)
    if named is not None:
        return f"{path}.{named.group(1)}" if path else named.group(1)
    return path


def field_path(field: str | None) -> str | None:
    """msgspec paths start with ``$.``; clients get ``tasks[0].priority``."""
    if field is None:
        return None
    if field.startswith("$."):
        return field[2:]
    if field.startswith("$"):
        return field[1:] or None
    return field


def settings_from_document(raw: object) -> Settings:
    """Settings from a decoded JSON document: strict (an unknown field is refused, by its
    path), absent fields at their defaults, then validated."""
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            f"settings must be a JSON object, got {type(raw).__name__}", field="settings"
        )
    unknown = _unknown_fields(raw, Settings)
    if unknown:
        raise InvalidRequestError(f"unknown settings field {unknown!r}", field=unknown)
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"invalid settings: {exc}", field=validation_field(exc)) from None
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


def settings_document(settings: Settings) -> dict[str, object]:
    """Every setting with its value, defaults included (the encoded struct leaves those out)."""
    out = _document(settings)
    assert isinstance(out, dict)
    return out


def _document(value: object) -> object:
    if isinstance(value, msgspec.Struct):
        return {
            f: _document(getattr(value, f))
            for f in value.__struct_fields__  # declaration order: the order users read
        }
    if isinstance(value, tuple | list):
        return [_document(v) for v in value]
    return value


def merge_patch(target: object, patch: object) -> object:
    """``target`` with the JSON merge ``patch`` applied (RFC 7396): objects merge key by key,
    ``null`` removes a key (the setting returns to its default), anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out: dict[str, object] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def patch_settings(current: Settings, patch: object) -> Settings:
    """The settings after applying a merge patch to ``current``, read and validated like a
    whole document (so ``PUT`` and a patch refuse the same things the same way)."""
    if not isinstance(patch, dict):
        raise InvalidRequestError(
            f"a settings patch must be a JSON object, got {type(patch).__name__}",
            field="settings",
        )
    return settings_from_document(merge_patch(msgspec.to_builtins(current), patch))


def assignments_patch(pairs: Sequence[tuple[str, object]]) -> dict[str, object]:
    """A merge patch from ``(dotted.key, value)`` pairs, e.g. ``autoscale.max_workers``.

    A key given twice, or a key inside another given one (``autoscale=… autoscale.cooldown=…``),
    is refused: which one should win is not clear.
    """
    patch: dict[str, object] = {}
    seen: list[str] = []
    for key, value in pairs:
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise InvalidRequestError(f"{key!r} is not a settings key", field=key or "settings")
        for other in seen:
            if other == key or other.startswith(key + ".") or key.startswith(other + "."):
                raise InvalidRequestError(f"{key!r} is given together with {other!r}", field=key)
        seen.append(key)
        node = patch
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)
            node = child
        node[parts[-1]] = value
    return patch


def lookup(document: Mapping[str, object], key: str) -> object:
    """The value at a dotted ``key`` of :func:`settings_document`; an unknown key raises
    InvalidRequestError naming it."""
    node: object = document
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise InvalidRequestError(f"unknown settings key {key!r}", field=key)
        node = node[part]
    return node
