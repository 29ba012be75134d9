"""Injected failures: what a flaky network or an overloaded Fal looks like on the wire.

A :class:`Fault` names a route ("submit", "status", ... or "*" for any), a kind, and how often it
fires. Kinds that act before the request is processed ("5xx", "5xx_request_id", "429",
"drop_before", "slow") leave no trace; the others run the request first ("drop_after",
"malformed_json", "cut_stream"), so e.g. a job really is queued. "job_error" (submit/run only)
lets the job run and end COMPLETED with an error, as a crashed runner would.

Dropping a connection needs the socket: under :func:`falkit.emulator.run_emulator` the server's
protocol hands the transport to the app, which aborts it. Under ``httpx.ASGITransport`` there is
no socket, so a drop raises ``httpx.RemoteProtocolError`` into the calling client instead.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

FaultKind = Literal[
    "5xx",
    "5xx_request_id",
    "429",
    "drop_before",
    "drop_after",
    "cut_stream",
    "slow",
    "malformed_json",
    "job_error",
]
ROUTES = frozenset(
    {"submit", "status", "stream", "result", "cancel", "run", "run_stream"}
    | {"token", "initiate", "upload", "put", "file", "jwks", "history", "*"}
)
TRANSPORT_KEY = "falkit_emulator_transport"
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
JOB_ERRORS = {
    "runner_disconnected": (503, "Runner disconnected"),
    "request_timeout": (504, "Request timed out"),
    "internal_server_error": (500, "Internal server error"),
    "runner_scheduling_failure": (503, "Runner scheduling failure"),
}


@dataclass
class Fault:
    """One failure to inject; it fires ``times`` times (None: forever) with ``probability``."""

    route: str
    kind: FaultKind
    times: int | None = 1
    probability: float = 1.0
    retry_after: float = 1.0
    """Seconds sent in Retry-After by "429"."""
    delay: float = 1.0
    """Seconds "slow" waits before answering."""
    status: int | None = None
    """HTTP code for "5xx" (default 503) or "5xx_request_id" (default 500)."""
    error_type: str = "runner_disconnected"
    """For "job_error": one of JOB_ERRORS' keys (others answer 500)."""

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; one of {sorted(ROUTES)}")
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {get_args(FaultKind)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be None (forever) or >= 1")


@dataclass
class _Armed:
    fault: Fault
    left: int | None


class FaultSet:
    """The armed faults of one emulator; safe to change from the test thread while serving."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self.fired: Counter[str] = Counter()
        """How many times each kind fired."""

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._armed.append(_Armed(fault, fault.times))
        return fault

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._armed)

    def pick(self, route: str) -> Fault | None:
        """The fault to apply to this request, consuming one of its uses; None if none fires."""
        with self._lock:
            for entry in self._armed:
                fault = entry.fault
                if fault.route not in (route, "*"):
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                if entry.left is not None:
                    entry.left -= 1
                    if entry.left <= 0:
                        self._armed.remove(entry)
                self.fired[fault.kind] += 1
                return fault
        return None


def _nginx_page(code: int) -> str:
    title = f"{code} {_REASONS.get(code, 'Error')}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


async def before(fault: Fault, request: Request) -> Response | None:
    """Apply a fault that acts before the request is processed; a Response ends the request."""
    kind = fault.kind
    if kind == "slow":
        await asyncio.sleep(fault.delay)
        return None
    if kind == "5xx":
        code = fault.status or 503
        return HTMLResponse(_nginx_page(code), status_code=code)
    if kind == "5xx_request_id":
        code = fault.status or 500
        error_type = "internal_server_error" if code == 500 else "runner_scheduling_failure"
        headers = {"x-fal-request-id": str(uuid.uuid4()), "x-fal-error-type": error_type}
        body = {"detail": _REASONS.get(code, "Server error"), "error_type": error_type}
        return JSONResponse(body, status_code=code, headers=headers)
    if kind == "429":
        headers = {"retry-after": _seconds(fault.retry_after)}
        return JSONResponse({"detail": "Too many requests"}, status_code=429, headers=headers)
    if kind == "drop_before":
        return await drop_connection(request)
    return None


async def after(fault: Fault, request: Request, response: Response) -> Response:
    """Apply a fault that acts once the request has been processed."""
    if fault.kind == "drop_after":
        return await drop_connection(request)
    if fault.kind == "malformed_json":
        body = bytes(response.body) if not isinstance(response, StreamingResponse) else b""
        broken = body[: max(1, len(body) // 2)] if body.startswith(b"{") else b'{"status": '
        return Response(broken, status_code=200, media_type="application/json")
    if fault.kind == "cut_stream" and isinstance(response, StreamingResponse):
        response.body_iterator = _first_event_only(response.body_iterator)
    return response


async def _first_event_only(events: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """Pass the stream through until its first data event, then end it early."""
    try:
        async for chunk in events:
            yield chunk
            text = chunk.decode() if isinstance(chunk, bytes) else str(chunk)
            if text.startswith("data:"):
                return
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def drop_connection(request: Request) -> Response:
    """Close the client's connection without an answer (raise under ASGITransport)."""
    transport = request.scope.get("state", {}).get(TRANSPORT_KEY)
    if transport is None:
        import httpx

        raise httpx.RemoteProtocolError("emulator fault: connection dropped without a response")
    transport.abort()
    for _ in range(3):  # let the server notice the loss, so nothing is written afterwards
        await asyncio.sleep(0)
    return Response(status_code=204)
