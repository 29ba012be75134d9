"""The emulator fetches nothing on a model's behalf: LoRA training reads only its own storage
and data: URIs. A URL a chat model passes (a loopback service, a metadata address, another
port of this machine) is never requested, and the answer never says what lives there."""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from falkit.emulator import EmulatorConfig, EmulatorServer, run_emulator
from tests.emulator.conftest import make_zip

TRAIN = "fal-ai/flux-lora-fast-training"
AUTH = {"Authorization": "Key emulator-key:emulator-secret"}


class _Teapot(http.server.BaseHTTPRequestHandler):
    """Answers 418 with a secret-looking body; counts every request it sees."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(418)
        self.end_headers()
        self.wfile.write(b"internal-admin-token")

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


@pytest.fixture
def bystander() -> Iterator[tuple[str, list[str]]]:
    """A private HTTP service on loopback: its base URL and the paths it was asked for."""
    seen: list[str] = []
    handler = type("Handler", (_Teapot,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.05, training_seconds=0.05)) as server:
        yield server


async def _train(client: httpx.AsyncClient, url: str) -> httpx.Response:
    reply = (await client.post(f"/queue/{TRAIN}", json={"images_data_url": url})).json()
    async with asyncio.timeout(30):
        while (await client.get(reply["status_url"])).json()["status"] != "COMPLETED":
            await asyncio.sleep(0.02)
    return await client.get(reply["response_url"])


async def test_foreign_urls_are_never_requested(
    emu: EmulatorServer, bystander: tuple[str, list[str]]
) -> None:
    base, seen = bystander
    port = base.rsplit(":", 1)[1]
    urls = [
        f"{base}/photos.zip",
        f"http://localhost:{port}/cdn/files/photos.zip",  # the shape of a stored file, elsewhere
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ]
    async with httpx.AsyncClient(base_url=emu.base_url, headers=AUTH) as client:
        answers = [await _train(client, url) for url in urls]
    assert seen == []
    for url, answer in zip(urls, answers, strict=True):
        assert answer.status_code == 422
        (item,) = answer.json()["detail"]
        assert item["type"] == "file_download_error"
        assert "not a file stored on this emulator" in item["msg"]
        reported = item["msg"].replace(url, "<url>")  # the port itself may contain "418"
        assert "418" not in reported, url
        assert "teapot" not in reported.lower(), url
        assert "admin" not in answer.text, url


async def test_own_storage_and_data_uris_still_train(emu: EmulatorServer) -> None:
    archive = make_zip(4)
    async with httpx.AsyncClient(base_url=emu.base_url, headers=AUTH) as client:
        token = (await client.post("/rest/storage/auth/token", json={})).json()
        stored = await client.post(
            "/cdn/files/upload",
            content=archive,
            headers={
                "Authorization": f"Bearer {token['token']}",
                "Content-Type": "application/zip",
            },
        )
        own = await _train(client, stored.json()["access_url"])
        inline = await _train(
            client, "data:application/zip;base64," + base64.b64encode(archive).decode()
        )
    assert own.status_code == 200, own.text
    assert inline.status_code == 200, inline.text
