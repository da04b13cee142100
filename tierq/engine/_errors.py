"""The one place where exceptions of the ``nats`` package become tierq errors.

Like httpx's ``map_httpcore_exceptions``: the rest of tierq never sees a ``nats`` error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import nats.errors
import nats.js.errors

from ..errors import EngineUnavailableError, FencedError, NoRespondersError, TierqError

__all__ = ["WRONG_LAST_SEQUENCE", "is_wrong_last_sequence", "map_nats_errors", "translate"]

#: JetStream's "wrong last sequence" (expected-sequence check failed).
WRONG_LAST_SEQUENCE = 10071
#: "wrong last sequence" for an expected-sequence header placed later in a batch.
_BATCH_WRONG_LAST_SEQUENCE = 10164


def is_wrong_last_sequence(err_code: int | None) -> bool:
    return err_code in (WRONG_LAST_SEQUENCE, _BATCH_WRONG_LAST_SEQUENCE)


def translate(exc: BaseException, what: str) -> TierqError:
    """The tierq error for a failure of ``what`` (e.g. ``"append to TIERQ_LOG"``)."""
    if isinstance(exc, TierqError):
        return exc
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        # The JetStream API has no responder: a server started without -js (or a cluster
        # still electing its JetStream leader). nats-py gives no details of its own.
        return EngineUnavailableError(
            f"{what}: this NATS server has no JetStream: start it with -js (or a `jetstream "
            "{}` block in its config); in a cluster, JetStream may still be electing a leader"
        )
    if isinstance(exc, nats.js.errors.APIError):
        if is_wrong_last_sequence(exc.err_code):
            return FencedError(f"{what}: refused, another writer appended ({exc.description})")
        return EngineUnavailableError(
            f"{what}: JetStream error {exc.code}/{exc.err_code}: {exc.description}"
        )
    if isinstance(exc, nats.errors.NoRespondersError):
        return NoRespondersError(f"{what}: no responders")
    if isinstance(exc, nats.errors.TimeoutError | asyncio.TimeoutError | TimeoutError):
        return EngineUnavailableError(f"{what}: timed out")
    if isinstance(exc, nats.errors.ConnectionClosedError):
        return EngineUnavailableError(f"{what}: the NATS connection is closed")
    if isinstance(exc, nats.errors.Error | OSError | ConnectionError):
        return EngineUnavailableError(f"{what}: {type(exc).__name__}: {exc}")
    return EngineUnavailableError(f"{what}: unexpected {type(exc).__name__}: {exc}")


@contextmanager
def map_nats_errors(what: str) -> Iterator[None]:
    """Re-raise any ``nats``/socket failure inside the block as a tierq error."""
    try:
        yield
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        raise translate(exc, what) from exc
