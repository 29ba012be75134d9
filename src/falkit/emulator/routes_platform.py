"""The platform API role (``api.fal.ai/v1``): the request history of an endpoint.

``GET /models/requests/by-endpoint`` lists the requests the queue accepted, as Fal's platform
API does (fal-protocol.md §13; Fal's docs describe the shape, which no official client uses):

    {"items": [{"request_id", "endpoint_id", "sent_at", "started_at", "ended_at",
                "status_code", "duration", "json_input", "json_output"}, ...],
     "next_cursor": "Mg==" | null, "has_more": bool}

Query: ``endpoint_id`` (required; repeated or comma-separated), ``start`` / ``end`` (ISO 8601
date or time, UTC when naive; ``start`` defaults to 24 hours ago, ``end`` is exclusive and
defaults to now), ``status`` (success, error, user_error), ``request_id``, ``expand``
(``payloads`` — Fal's docs — or ``payload`` — the protocol sheet — adds ``json_input`` and
``json_output``), ``limit`` (1-100, default 50) and ``cursor``.

What the emulator does where Fal's behaviour is not pinned down: every accepted submit is
listed from the moment it is accepted (a request still queued or running has ``ended_at``,
``status_code`` and ``duration`` null), the time window applies to ``sent_at``, and items come
newest first. So a job whose POST reached the emulator but whose answer was lost
(``Fault(route="submit", kind="drop_after")``) is found here. Requests go through the usual
guard (key check, counted as ``history``, faults under route ``history``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from falkit.emulator.engine import Engine, Job
from falkit.emulator.guard import engine_of, guarded

HISTORY_PATH = "/models/requests/by-endpoint"
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
DAY = 24 * 3600.0
STATUSES = ("success", "error", "user_error")


def api_routes(prefix: str) -> list[BaseRoute]:
    """The platform API role; ``prefix`` is where it is mounted."""
    del prefix  # nothing here hands out URLs
    return [Route(HISTORY_PATH, _history_route, methods=["GET"])]


class BadQuery(ValueError):
    """A query parameter Fal would refuse with 422."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


async def _history_route(request: Request) -> Response:
    return await guarded(engine_of(request), "history", request, _history)


async def _history(request: Request) -> Response:
    try:
        query = _Query.parse(request)
    except BadQuery as exc:
        item = {"loc": ["query", exc.name], "msg": str(exc), "type": "value_error"}
        return JSONResponse({"detail": [item]}, status_code=422)
    return JSONResponse(history_page(engine_of(request), query))


class _Query:
    """The parsed query of one history request."""

    def __init__(
        self,
        endpoints: set[str],
        window: tuple[float, float],
        status: str | None,
        request_id: str | None,
        payloads: bool,
        page: tuple[int, int],
    ) -> None:
        self.endpoints, self.window, self.status = endpoints, window, status
        self.request_id, self.payloads = request_id, payloads
        self.page, self.limit = page

    @classmethod
    def parse(cls, request: Request) -> _Query:
        params = request.query_params
        endpoints = {
            e.strip().strip("/") for v in params.getlist("endpoint_id") for e in v.split(",")
        }
        endpoints.discard("")
        if not endpoints:
            raise BadQuery("endpoint_id", "Field required")
        now = time.time()
        start = _when(params.get("start"), "start", now - DAY)
        end = _when(params.get("end"), "end", now + 1.0)
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise BadQuery("status", f"Input should be {', '.join(STATUSES)}")
        expand = {e.strip() for v in params.getlist("expand") for e in v.split(",")}
        payloads = bool(expand & {"payloads", "payload"})
        return cls(
            endpoints, (start, end), status, params.get("request_id") or None, payloads,
            (_page(params.get("cursor")), _limit(params.get("limit"))),
        )  # fmt: skip

    def matches(self, job: Job) -> bool:
        start, end = self.window
        if job.endpoint.endpoint_id not in self.endpoints or not start <= job.received_at < end:
            return False
        if self.request_id is not None and job.id != self.request_id:
            return False
        return self.status is None or _status_of(job) == self.status


def history_page(engine: Engine, query: _Query) -> dict[str, Any]:
    """One page of matching requests, newest first."""
    found = [job for job in engine.jobs.values() if query.matches(job)]
    found.sort(key=lambda job: job.received_at, reverse=True)
    offset = (query.page - 1) * query.limit
    page = found[offset : offset + query.limit]
    has_more = offset + query.limit < len(found)
    cursor = _cursor(query.page + 1) if has_more else None
    items = [_item(job, query.payloads) for job in page]
    return {"items": items, "next_cursor": cursor, "has_more": has_more}


def _item(job: Job, payloads: bool) -> dict[str, Any]:
    outcome = job.outcome
    started = job.wall_start or None
    item: dict[str, Any] = {
        "request_id": job.id,
        "endpoint_id": job.endpoint.endpoint_id,
        "sent_at": _iso(job.received_at),
        "started_at": _iso(started) if started else None,
        "ended_at": _iso(job.ended_at) if job.ended_at is not None else None,
        "status_code": outcome.status_code if outcome is not None else None,
        "duration": round(job.ended_at - job.received_at, 3) if job.ended_at else None,
    }
    if payloads:
        item["json_input"] = job.payload
        item["json_output"] = outcome.body if outcome is not None else None
    return item


def _status_of(job: Job) -> str | None:
    if job.outcome is None:
        return None
    code = job.outcome.status_code
    return "success" if code < 400 else "user_error" if code < 500 else "error"


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat().replace("+00:00", "Z")


def _when(value: str | None, name: str, default: float) -> float:
    """Unix seconds from an ISO 8601 date or time (UTC when it names no zone)."""
    if not value:
        return default
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(name, f"Input should be an ISO 8601 date or time, not {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _limit(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_LIMIT
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadQuery("limit", f"Input should be between 1 and {MAX_LIMIT}")
    return int(value)


def _cursor(page: int) -> str:
    """Fal's cursor encodes the page number in base64 (``Mg==`` is page 2)."""
    return base64.b64encode(str(page).encode()).decode()


def _page(value: str | None) -> int:
    if not value:
        return 1
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadQuery("cursor", "Invalid cursor") from None
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise BadQuery("cursor", "Invalid cursor")
    return int(text)
