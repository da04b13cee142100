"""The event feed as Server-Sent Events, resumable with ``Last-Event-ID``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse

from ..errors import InvalidRequestError, TierqError
from .auth import Permission
from .feed import MAX_AFTER, MAX_LAST, EventFilter, FeedEvent, Watch
from .rest_base import Service, Who, route_doc

log = logging.getLogger("tierq.api")

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/events",
    **route_doc(
        200,
        {"type": "string"},
        media="text/event-stream",
        summary="Lifecycle events (Server-Sent Events), resumable with Last-Event-ID",
    ),
)
async def events(
    service: Service,
    who: Who,
    kinds: Annotated[str | None, Query(max_length=2000)] = None,
    task: Annotated[str | None, Query(max_length=256)] = None,
    workflow: Annotated[str | None, Query(max_length=256)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_AFTER)] = None,
    last: Annotated[int | None, Query(ge=1, le=MAX_LAST)] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> Response:
    """``last=N`` replays the stream's last N events (those the filters match among them)
    before the live ones; ``after`` or ``Last-Event-ID`` resume after a sequence instead."""
    resume = after
    if last_event_id:
        # ASCII digits only: str.isdigit() is also true for "²" and other digits int() refuses.
        if not (last_event_id.isascii() and last_event_id.isdigit()):
            raise InvalidRequestError(
                "Last-Event-ID must be a stream sequence number", field="Last-Event-ID"
            )
        resume = int(last_event_id)
    filt = EventFilter(
        kinds=[k for k in (kinds or "").split(",") if k],
        task_id=task,
        workflow_id=workflow,
        region=region,
    )
    # ``last``: the stream's last events first (a page opening on the feed sees what just
    # happened); a resume (``after``, Last-Event-ID) goes on from where it was instead.
    watch = await service.watch_events(who, filt, resume, None if resume is not None else last)
    return StreamingResponse(
        _sse(
            watch,
            service.config.sse_keepalive,
            service.redactor.view(who.principal.can(Permission.ADMIN)),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    watch: Watch, keepalive: float, visible: Callable[[FeedEvent], Awaitable[FeedEvent]]
) -> AsyncIterator[bytes]:
    """Server-Sent Events: ``id`` is the stream sequence, ``event`` the kind, ``data`` JSON."""
    try:
        # A comment first: proxies and clients see the stream is open before any event.
        yield b": tierq events\nretry: 2000\n\n"
        while True:
            event = await watch.next(keepalive)
            if event is None:
                yield b": keep-alive\n\n"
                continue
            event = await visible(event)
            head = f"id: {event.sequence}\n" if event.sequence else ""
            data = b"".join(b"data: " + line + b"\n" for line in event.data.splitlines())
            yield f"{head}event: {event.kind}\n".encode() + data + b"\n"
    except TierqError as exc:
        # The feed ended (shutdown, NATS gone): end the stream; the client resumes by id.
        log.info("event stream ended: %s", exc)
    finally:
        await watch.aclose()
