"""Request body limits, enforced while the body arrives (not after it has all been read).

Multipart requests (uploads) may be up to ``max_upload_bytes``, Fal's webhook deliveries up to
``WEBHOOK_BYTES``, anything else up to ``max_json_bytes``. A declared Content-Length over the
limit is answered 413 before a byte is read; a body that grows past it (chunked, or lying about
its length) is cut off with a 413 as soon as it does.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEBHOOK_BYTES = 64 * 1024 * 1024  # a sync_mode output inlines its images as data URIs


class TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTPExceptions through its body parsing."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over this server's limit of {limit} bytes")


class BodyLimit:
    """ASGI middleware: 413 for bodies past the limit of their kind."""

    def __init__(self, app: ASGIApp, *, upload: int, other: int) -> None:
        self.app, self.upload, self.other = app, upload, other

    def limit_for(self, scope: Scope) -> int:
        if scope.get("path", "").startswith("/webhooks/"):
            return WEBHOOK_BYTES
        for name, value in scope.get("headers", []):
            if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                return self.upload
        return self.other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooLarge:
            if not started:
                await _too_large(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "error": "too_large",
        "message": f"request body over this server's limit of {limit} bytes",
        "errors": [],
    }
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": data})
