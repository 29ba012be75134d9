"""Fixtures for the emulator's tests: an in-process client, a real server, helpers."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image

from falkit.emulator import EmulatorConfig, EmulatorServer, create_app, run_emulator

KEY = "emulator-key:emulator-secret"
AUTH = {"Authorization": f"Key {KEY}"}
ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Build in-process clients (httpx.ASGITransport) over fresh emulators; closed at the end."""
    opened: list[tuple[httpx.AsyncClient, Any]] = []

    async def make(**config: Any) -> httpx.AsyncClient:
        app = create_app(EmulatorConfig(**{"latency": 0.05, **config}))
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://emulator", headers=AUTH)
        client.app = app  # type: ignore[attr-defined]
        opened.append((client, app))
        return client

    yield make
    for client, app in opened:
        await app.state.emulator.aclose()
        await client.aclose()


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    """An in-process client over an emulator with 0.05 s latency."""
    return await make_client()


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    """A real emulator on a free 127.0.0.1 port (latency 0.2 s)."""
    with run_emulator(EmulatorConfig(latency=0.2, ping_interval=0.2)) as server:
        yield server


def engine_of(client: httpx.AsyncClient) -> Any:
    return client.app.state.emulator  # type: ignore[attr-defined]


async def wait_done(
    client: httpx.AsyncClient, status_url: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Poll a status URL until COMPLETED; the last status body."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(status_url)
            body: dict[str, Any] = response.json()
            if body["status"] == "COMPLETED":
                return body
            await asyncio.sleep(0.02)


async def submit(
    client: httpx.AsyncClient, endpoint: str, body: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    response = await client.post(f"/queue/{endpoint}", json=body, **kw)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


async def generate(
    client: httpx.AsyncClient, endpoint: str, body: dict[str, Any]
) -> httpx.Response:
    """Submit, wait, and fetch the result response."""
    handle = await submit(client, endpoint, body)
    await wait_done(client, handle["status_url"])
    return await client.get(handle["response_url"])


def make_zip(
    images: int, *, captions: bool = False, extra: dict[str, bytes] | None = None
) -> bytes:
    """A zip archive of ``images`` small PNGs (plus captions / extra members)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(images):
            png = io.BytesIO()
            Image.new("RGB", (16, 16), (i * 20 % 256, 80, 120)).save(png, "PNG")
            archive.writestr(f"photo_{i}.png", png.getvalue())
            if captions:
                archive.writestr(f"photo_{i}.txt", f"a photo of [trigger] number {i}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


@dataclass
class Receiver:
    """A webhook receiver on a real socket; fails the first ``fail_first`` deliveries with 500."""

    url: str = ""
    fail_first: int = 0
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    got_one: threading.Event = field(default_factory=threading.Event)

    def json_bodies(self) -> list[Any]:
        return [json.loads(body) for _, body in self.deliveries]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state.attempts += 1
            code = 500 if state.attempts <= state.fail_first else 200
            if code == 200:
                state.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                state.got_one.set()
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook?a=1"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
