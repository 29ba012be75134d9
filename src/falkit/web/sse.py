"""Server-Sent Events: a job's events (or a batch's progress) as the engine publishes them.

Each event is one SSE message whose ``data`` is the event's JSON (``{"type", "job_id", "seq",
…}``) and whose ``id`` is its ``seq``, so a client that reconnects with ``Last-Event-ID`` (or
``?after=``) misses nothing and sees nothing twice. The stream ends after the final event
(completed, failed, cancelled); a reconnect after that is answered 204, which tells a browser's
EventSource to stop. Idle streams get a keep-alive comment every ``sse_ping`` seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette import EventSourceResponse

from falkit.errors import LookupFailedError
from falkit.web.api_jobs import JobId
from falkit.web.errors import responses
from falkit.web.security import Authorized
from falkit.web.state import WebState, web_state
from falkit.web.views import EventCache, base_url

if TYPE_CHECKING:
    from falkit.service.handle import JobHandle

router = APIRouter(prefix="/api/v1", tags=["events"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "text/event-stream: one message per event, `id:` its seq",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    204: {"description": "The job has ended and the client has seen its last event"},
}
_CACHE = EventCache()


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: after ``Last-Event-ID`` or ``?after=`` (the larger), else 0."""
    start = after or 0
    if last_event_id and last_event_id.strip().isdigit():
        start = max(start, int(last_event_id.strip()))
    return start


def event_stream(request: Request, state: WebState, handle: JobHandle, after: int) -> Response:
    """The SSE answer for a handle from ``after`` on (204 when nothing is left to send)."""
    last = handle.last_event
    if handle.done and (last is None or last.seq <= after):
        return Response(status_code=204)

    base, root = base_url(request), state.images_root  # once per stream, not per event

    async def messages() -> AsyncIterator[bytes]:
        async for event in handle.events(after=after):
            yield _CACHE.message(event, request, base, root)

    return EventSourceResponse(
        messages(),
        ping=state.options.sse_ping,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def stream_handle(state: WebState, job_id: str) -> JobHandle:
    """A handle to stream: the live one, the journal's end, or a sent job reattached.

    A job never sent and not running here is not submitted by a read: 404 says so.
    """
    service = state.service
    if service.enabled:  # a job being prepared is not in the journal yet
        live = (await service.engine()).get(job_id)
        if live is not None:
            return live
    record = await service.get_job(job_id)
    if service.enabled:
        engine = await service.engine()
        live = engine.get(record.id)
        if live is not None or engine.dispatcher is not None:  # a cluster: from its bus
            return live or await service.handle(record.id)
    if not record.finished and record.request_id is None:
        raise LookupFailedError(
            f"job {record.id} is {record.status} and not running in this server; "
            "`falkit jobs resume` sends it"
        )
    return await service.handle(record.id)


@router.get("/jobs/{job_id}/events", responses={**STREAM_DOC, **responses(401, 403, 404, 422)})
async def job_events(
    job_id: JobId,
    request: Request,
    state: State,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    after: Annotated[int | None, Query(ge=0, description="Send events after this seq")] = None,
) -> Response:
    """The job's events as Server-Sent Events, from the first (or after Last-Event-ID)."""
    handle = await stream_handle(state, job_id)
    return event_stream(request, state, handle, resume_point(last_event_id, after))
