"""What every command shares: consoles, error messages, event loops, options."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.logging import RichHandler

from ..client import App
from ..config import NatsConfig
from ..core.model import TaskState
from ..errors import (
    BackpressureError,
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
    TaskFailedError,
    TierqError,
    UnauthenticatedError,
)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

STATE_STYLE = {
    TaskState.PENDING: "dim",
    TaskState.READY: "cyan",
    TaskState.ASSIGNED: "blue",
    TaskState.RUNNING: "bold blue",
    TaskState.SUCCEEDED: "green",
    TaskState.FAILED: "yellow",
    TaskState.DEAD: "bold red",
    TaskState.CANCELLED: "magenta",
    TaskState.SKIPPED: "dim magenta",
}


class CliError(click.ClickException):
    """An expected failure: one message, no traceback, exit 1."""

    def show(self, file: Any = None) -> None:
        err.print(f"[bold red]error:[/] {escape(self.format_message())}", soft_wrap=True)


class CliInputError(CliError):
    """The input was wrong (exit 2, like a usage error)."""

    exit_code = 2


def explain(exc: TierqError, prefix: str) -> CliError:
    if isinstance(exc, InvalidRequestError):
        where = f" ({exc.field})" if exc.field else ""
        return CliInputError(f"invalid request{where}: {exc.message}")
    if isinstance(exc, EngineUnavailableError):
        if "no responders" in exc.message:
            return CliError(
                f"no tierq service answers ({exc.message}); is a master running with prefix "
                f"{prefix!r}? Start everything locally with `tierq dev`."
            )
        if "tierq dev" in exc.message:  # the SDK's own hint is there already
            return CliError(exc.message.replace("; start a local", "\nstart a local"))
        return CliError(f"{exc.message}\nstart a local server with `tierq dev`, or pass --nats URL")
    if isinstance(exc, UnauthenticatedError):
        return CliError(
            f"{exc.message}\nlog in with --nats-credentials FILE (`tierq dev` writes one to "
            "<data dir>/nats/credentials.json) or --nats-user with TIERQ_NATS_PASSWORD"
        )
    if isinstance(exc, BackpressureError):
        return CliError(f"{exc.message} (retry after {exc.retry_after:g} s)")
    if isinstance(exc, TaskFailedError):
        if exc.traceback:
            err.print(exc.traceback.rstrip(), markup=False, style="dim")
        return CliError(f"task failed: {exc.error_type}: {exc.message}")
    if isinstance(exc, NotFoundError):
        return CliError(exc.message)
    return CliError(str(exc) or type(exc).__name__)


class TierqGroup(click.Group):
    """Turns tierq's expected errors into one-line messages with an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TierqError as exc:
            prefix = ctx.meta.get("tierq.prefix", "tierq")
            raise explain(exc, prefix) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            ctx.exit(130)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh loop, on uvloop when it is installed."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a Linux dependency
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def serve(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service until SIGINT or SIGTERM, then let it shut down and exit 0."""

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await make()

    run(serve())


def client_app(ctx: click.Context, nats_url: str | None, prefix: str) -> App:
    ctx.meta["tierq.prefix"] = prefix
    return App(nats_config(nats_url, prefix))


def nats_config(nats_url: str | None, prefix: str) -> NatsConfig:
    """Servers from ``--nats``; user, password and credentials file from flags, else env."""
    config = NatsConfig.from_env(servers=nats_url, prefix=prefix)
    if not config.servers:
        config = msgspec.structs.replace(config, servers=("nats://127.0.0.1:4222",))
    ctx = click.get_current_context(silent=True)
    given = {k: v for k, v in (ctx.meta.get(_AUTH_META, {}) if ctx else {}).items() if v}
    return msgspec.structs.replace(config, **given) if given else config


_AUTH_META = "tierq.nats_auth"


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Stored aside rather than passed on: every command calls nats_config() anyway.
    ctx.meta.setdefault(_AUTH_META, {})[param.name or ""] = value


async def with_app(app: App, coro: Coroutine[Any, Any, T]) -> T:
    async with app:
        return await coro


def nats_auth_options(fn: F) -> F:
    """``--nats-credentials``, ``--nats-user`` and ``--nats-password`` (read by nats_config)."""
    for flag, field, env, help_text in (
        (
            "--nats-credentials",
            "credentials",
            "TIERQ_NATS_CREDENTIALS",
            "tierq credentials file (one NATS user per role, as `tierq dev` writes it)",
        ),
        ("--nats-user", "user", "TIERQ_NATS_USER", "NATS user (overrides the credentials file)"),
        (
            "--nats-password",
            "password",
            "TIERQ_NATS_PASSWORD",
            "NATS password; prefer the env variable, a flag shows in the process list",
        ),
    ):
        fn = click.option(
            flag,
            field,
            envvar=env,
            default=None,
            metavar="FILE" if field == "credentials" else "TEXT",
            expose_value=False,
            is_eager=True,
            callback=_remember,
            help=f"{help_text} [env {env}].",
        )(fn)
    return fn


def prefix_option(fn: F) -> F:
    """``--prefix``: the installation's subject prefix."""
    return click.option(
        "--prefix",
        envvar="TIERQ_PREFIX",
        default="tierq",
        show_default=True,
        help="Subject prefix of the installation [env TIERQ_PREFIX].",
    )(fn)


def worker_options(fn: F) -> F:
    """What ``tierq worker`` and ``tierq dev`` both ask of their workers: ``--region``,
    ``--concurrency`` and ``--pool``."""
    fn = click.option(
        "--pool",
        type=click.Choice(["async", "thread", "process"]),
        default="async",
        show_default=True,
        help="Where sync task functions run: threads (async, thread) or child processes.",
    )(fn)
    fn = click.option(
        "--concurrency",
        "-c",
        type=click.IntRange(1, 10_000),
        default=8,
        show_default=True,
        help="Attempts a worker runs at once.",
    )(fn)
    return click.option(
        "--region",
        default="default",
        show_default=True,
        help="Name of the region the workers join.",
    )(fn)


def nats_options(fn: F) -> F:
    fn = nats_auth_options(fn)
    fn = prefix_option(fn)
    return click.option(
        "--nats",
        "nats_url",
        envvar="TIERQ_NATS",
        metavar="URL",
        help="NATS server URL(s), comma-separated [env TIERQ_NATS; default nats://127.0.0.1:4222].",
    )(fn)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def json_arg(kind: type[Any], what: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return kind()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(parsed, kind):
            raise click.BadParameter(f"must be a JSON {what}, got {type(parsed).__name__}")
        return parsed

    return parse


def service_logging(ctx: click.Context) -> None:
    setup_logging((ctx.obj or {}).get("log_level") or "info")


def client_logging(ctx: click.Context) -> None:
    level = (ctx.obj or {}).get("log_level")
    setup_logging(level or "warning")
    if level is None:
        # Connection retries are the engine's business; the command reports the outcome.
        logging.getLogger("tierq.engine").setLevel(logging.ERROR)


def when(ts: float | None) -> str:
    if not ts:
        return ""
    try:
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # past what the platform's clock reads
        return f"{ts:.0f} (epoch seconds)"


def short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _markup_escape() -> Callable[[str], str]:
    from rich.markup import escape

    return escape


def escape(text: str) -> str:
    return _markup_escape()(text)
