"""Cancellations that nats-py's calls would swallow on Python 3.11, made to surface.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result instead of raising when the
task is cancelled in the same turn of the event loop as that result arrives (gh-86296; 3.12
rewrote ``wait_for`` on ``asyncio.timeout`` and no longer does). nats-py waits for every reply
(``request``, hence every JetStream API call, publish acknowledgement and KV operation) and
for ``flush`` that way. A service stopped by cancellation (a region, a standby master, a
worker) could then carry on as if never cancelled, and whoever waits for it to stop waits
for ever: rare, and more likely the busier the machine.

:func:`guard_cancellation` wraps those two methods of one connection: if a cancellation was
requested while the call ran (the task's ``cancelling()`` count rose) and none came out, it
raises :class:`asyncio.CancelledError` after the call. The call's own effect is kept (a reply
that arrived was handled by the server); only what the caller would do next is skipped, as
with any cancellation. Code already being cancelled (cleanup in a ``finally``) is not
affected: only a rise during the call counts.

Other waits inside nats-py (a subscription's ``next_msg``, a pull consumer's ``fetch``) use
``wait_for`` too. So the long-running loops of the master, the region and the worker also
call :func:`raise_if_cancelled` at the top of each round: a cancellation requested and never
delivered (the task's ``cancelling()`` count is above zero) ends the loop there, one round
late at most, instead of never.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from nats.aio.client import Client as NatsClient

__all__ = ["guard_cancellation", "raise_if_cancelled", "surface_cancellation"]

P = ParamSpec("P")
R = TypeVar("R")


def surface_cancellation(
    call: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """``call`` that raises CancelledError if the task was cancelled during it, even when
    ``call`` swallowed that cancellation."""

    @functools.wraps(call)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        task = asyncio.current_task()
        before = task.cancelling() if task is not None else 0
        result = await call(*args, **kwargs)
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError("cancelled during a NATS call that swallowed it")
        return result

    return guarded


def guard_cancellation(nc: NatsClient) -> None:
    """Make ``nc.request`` and ``nc.flush`` surface the cancellations they swallow."""
    target: Any = nc  # instance attributes shadow the methods, for this connection only
    target.request = surface_cancellation(nc.request)
    target.flush = surface_cancellation(nc.flush)


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to cancel and the request was
    swallowed on the way (see the module's docstring); call it at the top of a loop round."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError("cancelled earlier; a wait swallowed it")
