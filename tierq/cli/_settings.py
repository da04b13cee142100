"""``tierq settings``: show, get, set and apply the master's live settings.

Reading needs the client's NATS user; changing needs the ``operator`` user (the master's
``settings`` operation; ``tierq dev``'s credentials file has one). ``set`` and ``apply``
send a JSON merge patch that the master applies to the settings it holds and validates like
``PUT /v1/settings`` does, so several keys change at once or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

import click
import msgspec
from rich.table import Table

from ..config import NatsConfig
from ..core.settings import Settings
from ..core.settings_doc import (
    assignments_patch,
    lookup,
    settings_document,
    settings_from_document,
)
from ..engine import Subjects, connect
from ..errors import InvalidRequestError, PermissionDeniedError
from ..rpc import MasterClient
from ._common import CliError, CliInputError, client_logging, err, nats_config, nats_options, out
from ._common import run as run_loop

__all__ = ["settings"]

T = TypeVar("T")

_DENIED = (
    "changing settings needs the operator NATS user: pass --nats-credentials FILE with an "
    "operator user (`tierq dev` writes one; `tierq nats-users FILE` adds one to an older "
    "file) or --nats-user with TIERQ_NATS_PASSWORD; or use the API: PUT /v1/settings with "
    "an admin token, or the dashboard's settings page"
)


def _call(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    role: str,
    fn: Callable[[MasterClient], Awaitable[T]],
) -> T:
    client_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    nats = _login(nats_config(nats_url, prefix), role)

    async def go() -> T:
        engine = await connect(nats.connect_options(name=f"tierq-settings-{role}"))
        try:
            return await fn(MasterClient(engine, Subjects(prefix)))
        finally:
            await engine.close()

    try:
        return run_loop(go())
    except PermissionDeniedError as exc:
        raise CliError(f"permission denied: {exc.message}\n{_DENIED}") from None


def _login(nats: NatsConfig, role: str) -> NatsConfig:
    try:
        return nats.for_role(role)
    except InvalidRequestError as exc:
        if role != "operator" or exc.field != "nats_credentials":
            raise
        raise CliError(f"{exc.message}\n{_DENIED}") from None


def _value(text: str) -> Any:
    """JSON when it parses (numbers, true, null, lists, objects), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _show_value(value: object) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def _rows(doc: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _rows(value, path + ".")
        else:
            rows.append((path, value))
    return rows


@click.group()
def settings() -> None:
    """Show and change the master's live settings (admission, breakers, autoscale...).

    \b
    Keys are dotted paths as in `tierq settings show`, e.g. autoscale.max_workers.
    Changes apply at once in every process; changing needs the operator NATS user
    (`tierq dev`'s credentials file has one).
    """


@settings.command("show")
@nats_options
@click.option("--json", "as_json", is_flag=True, help="Every setting as one JSON document.")
@click.pass_context
def show(ctx: click.Context, nats_url: str | None, prefix: str, as_json: bool) -> None:
    """Every setting with its current value (and its default where it differs)."""
    current = _call(ctx, nats_url, prefix, "client", lambda m: m.settings())
    doc = settings_document(current)
    if as_json:
        out.print(json.dumps(doc, indent=2), markup=False)
        return
    defaults = dict(_rows(settings_document(Settings())))
    table = Table("key", "value", "default", box=None, pad_edge=False)
    for key, value in _rows(doc):
        default = defaults.get(key)
        table.add_row(key, _show_value(value), "" if default == value else _show_value(default))
    out.print(table)


@settings.command("get")
@click.argument("key")
@nats_options
@click.pass_context
def get(ctx: click.Context, key: str, nats_url: str | None, prefix: str) -> None:
    """The value of one setting (or a group of them) as JSON, e.g. autoscale.max_workers."""
    current = _call(ctx, nats_url, prefix, "client", lambda m: m.settings())
    out.print(json.dumps(lookup(settings_document(current), key), indent=2), markup=False)


@settings.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@nats_options
@click.pass_context
def set_(
    ctx: click.Context, assignments: tuple[str, ...], nats_url: str | None, prefix: str
) -> None:
    """Change settings: all of them at once, or none.

    \b
    VALUE is read as JSON when it parses, else as text; null returns a setting to its
    default. Lists are set whole:
      tierq settings set autoscale.max_workers=8 autoscale.cooldown=30
      tierq settings set 'autoscale.regions=[{"region": "gpu", "min_workers": 0, "max_workers": 2}]'
    """
    pairs: list[tuple[str, object]] = []
    for item in assignments:
        key, eq, text = item.partition("=")
        if not eq:
            raise CliInputError(f"{item!r}: expected KEY=VALUE, e.g. autoscale.max_workers=8")
        pairs.append((key.strip(), _value(text)))
    patch = assignments_patch(pairs)
    after = _call(ctx, nats_url, prefix, "operator", lambda m: _patch(m, patch))
    doc = settings_document(after)
    for key, _ in pairs:
        out.print(f"{key} = {_show_value(lookup(doc, key))}", markup=False)


async def _patch(master: MasterClient, patch: dict[str, object]) -> Settings:
    await master.patch_settings(patch)
    return await master.settings()


@settings.command("apply")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--replace",
    is_flag=True,
    help="Replace all settings: those FILE leaves out return to their defaults.",
)
@nats_options
@click.pass_context
def apply(
    ctx: click.Context, file: IO[bytes], replace: bool, nats_url: str | None, prefix: str
) -> None:
    """Apply a settings document (JSON; - for stdin): whole or partial.

    Without --replace, FILE is merged into the live settings (a JSON merge patch: what it
    leaves out stays as it is, null returns a setting to its default); with it, FILE is
    the whole settings, like PUT /v1/settings. `tierq settings show --json` writes one.
    """
    name = getattr(file, "name", "FILE")
    try:
        doc = msgspec.json.decode(file.read())
    except msgspec.DecodeError as exc:
        raise CliInputError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CliInputError(f"{name}: a settings document is a JSON object")

    async def go(master: MasterClient) -> Settings:
        if replace:
            # Read as the API reads a PUT body; the master validates again.
            whole = settings_from_document(doc)
            await master.put_settings(msgspec.msgpack.encode(whole))
            return await master.settings()
        return await _patch(master, doc)

    _call(ctx, nats_url, prefix, "operator", go)
    err.print(f"applied {name}" + (" (all settings replaced)" if replace else ""), markup=False)
