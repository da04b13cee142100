"""Operations: what every :class:`~tierq.api.service.ApiService` method does around its body.

Each checks the caller's role and rate limit, is timed and counted in the metrics, and lets
only :class:`~tierq.errors.TierqError` subclasses out.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from ..errors import TierqError
from .auth import Permission, Principal
from .errors import row_for

if TYPE_CHECKING:
    from .service import ApiService

__all__ = ["Caller", "operation"]

P = ParamSpec("P")
R = TypeVar("R")


class Caller(NamedTuple):
    """Who calls, and over which transport (``rest`` or ``grpc``; a metrics label)."""

    principal: Principal
    transport: str


_Method = Callable[Concatenate["ApiService", Caller, P], Coroutine[Any, Any, R]]


def operation(
    permission: Permission,
) -> Callable[[_Method[P, R]], _Method[P, R]]:
    """Mark an ApiService method as an operation needing ``permission``."""

    def wrap(fn: _Method[P, R]) -> _Method[P, R]:
        name = fn.__name__

        @functools.wraps(fn)
        async def run(self: ApiService, caller: Caller, /, *args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            outcome = "ok"
            self.metrics.in_flight.inc()
            try:
                self.auth.authorize(caller.principal, permission)
                return await fn(self, caller, *args, **kwargs)
            except TierqError as exc:
                outcome = exc.code if row_for(exc).status != 500 else "internal"
                raise
            except BaseException:
                outcome = "internal"
                raise
            finally:
                self.metrics.in_flight.dec()
                self.metrics.observe(caller.transport, name, outcome, time.perf_counter() - started)

        return run

    return wrap
