"""A scripted fake of Fal behind httpx.MockTransport, and builders of Fal-shaped bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from falkit.client import RetryPolicy
from falkit.config import Settings, load_settings

KEY = "kid-0123456789:sekrit-abcdefghijklmnop-9876"
QUEUE = "https://queue.fal.run"
REQUEST_ID = "80e732af-660e-45cd-bd63-580e4f2a94cc"
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.005, deadline=5.0)

Reply = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]


class FakeFal:
    """Answers requests from per-route scripts and records every request it sees.

    A route's replies are used in order; the last one repeats. A reply is a response, an
    exception to raise (as a transport would), or a function of the request.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *replies: Reply) -> FakeFal:
        self.routes[(method.upper(), path)] = list(replies)
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        script = self.routes.get((request.method, request.url.path))
        if not script:
            return httpx.Response(404, json={"detail": f"Path {request.url.path} not found"})
        reply = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)


def make_settings(key: str | None = KEY, **urls: str) -> Settings:
    overrides: dict[str, Any] = {"api_key": key, **urls}
    return load_settings(**overrides)


def sse(*bodies: dict[str, Any], ping: bool = True) -> bytes:
    """An SSE body: one ``data:`` event per status body (with a keep-alive comment first)."""
    text = ": ping\n\n" if ping else ""
    return (text + "".join(f"data: {json.dumps(b)}\n\n" for b in bodies)).encode()


def sse_response(content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


def status_body(status: str, **fields: Any) -> dict[str, Any]:
    base = f"{QUEUE}/fal-ai/flux/requests/{REQUEST_ID}"
    return {
        "status": status,
        "request_id": REQUEST_ID,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
        **fields,
    }


def log(message: str, timestamp: str) -> dict[str, str]:
    return {"message": message, "timestamp": timestamp, "level": "INFO", "source": "USER"}
