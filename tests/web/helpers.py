"""Helpers for the web service's tests: an app over a service in this loop, or a real server.

``LiveServer`` runs the app under uvicorn on a loopback socket in a thread of its own (with
the service in that thread's loop), for what needs real HTTP: Fal's webhooks (the emulator
POSTs them), schemathesis, and the SSE benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from falkit.config import Settings, load_settings
from falkit.service import FalService
from falkit.service.engine import EngineOptions
from falkit.web.app import create_app
from falkit.web.options import WebOptions

#: A key nobody would type: tests look for it (and its parts) in every answer.
SECRET_KEY = "falkit-test-key-7Q2x9ZpL:s3cret-part-V8mK4wRt"
TOKEN = "test-token-0123456789abcdef"


def settings_for(base_url: str) -> Settings:
    return load_settings().with_urls(base_url, api_key=SecretStr(SECRET_KEY))


@dataclass
class Served:
    """An app over a service, and an httpx client talking to it in this event loop."""

    service: FalService
    client: httpx.AsyncClient
    options: WebOptions


@contextlib.asynccontextmanager
async def served(
    settings: Settings,
    options: WebOptions | None = None,
    *,
    spend_cap: float | None = None,
    engine_options: EngineOptions | None = None,
    base_url: str = "http://127.0.0.1",
) -> AsyncIterator[Served]:
    options = options or WebOptions()
    async with FalService(settings, spend_cap=spend_cap, engine_options=engine_options) as svc:
        app = create_app(svc, options)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=60) as client:
            try:
                yield Served(svc, client, options)
            finally:
                await app.state.web.batches.aclose()
                await app.state.web.webhooks.aclose()


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The messages of an event-stream body: ``{"id", "data"}`` (data parsed), pings left out."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if "data" in fields:
            out.append({"id": fields.get("id"), "data": json.loads(fields["data"])})
    return out


async def until(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy, with a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def job_done(client: httpx.AsyncClient, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The job's JSON once it has ended (polled through the API, with a deadline)."""

    async def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        ends = ("completed", "failed", "cancelled", "unknown")
        return body if body["status"] in ends and body["state"] in ends else None

    result: dict[str, Any] = await until(ended, timeout)
    return result


class LiveServer:
    """The app under uvicorn on 127.0.0.1 (a free port), service and all in its own thread."""

    def __init__(
        self,
        settings: Settings,
        make_options: Callable[[str], WebOptions] = lambda url: WebOptions(),
        *,
        spend_cap: float | None = None,
        engine_options: Callable[[WebOptions], EngineOptions] | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.options = make_options(self.url)
        self.settings = settings
        self.spend_cap = spend_cap
        self.engine_options = engine_options(self.options) if engine_options else None
        self.service: FalService | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    async def _main(self) -> None:
        import uvicorn

        async with FalService(
            self.settings, spend_cap=self.spend_cap, engine_options=self.engine_options
        ) as service:
            self.service = service
            config = uvicorn.Config(
                create_app(service, self.options), ws="none", log_config=None, log_level=None,
                access_log=False, timeout_graceful_shutdown=2, lifespan="on",
            )  # fmt: skip
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[self.sock])

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc

    def __enter__(self) -> LiveServer:
        self._thread = threading.Thread(target=self._run, daemon=True, name="falkit-serve")
        self._thread.start()
        deadline = time.monotonic() + 20
        while self._server is None or not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self._error!r}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.sock.close()
