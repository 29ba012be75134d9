"""Running the emulator: background thread (sync and async), split roles, settings, serve()."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import httpx

from falkit.config import EMULATOR_KEY
from falkit.emulator import EmulatorConfig, run_emulator
from tests.processes import popen

from .conftest import AUTH


def test_sync_context_serves_all_roles_and_stops() -> None:
    before = threading.active_count()
    with run_emulator(EmulatorConfig(latency=0.01)) as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert emu.engine is emu.app.state.emulator
        assert emu.queue_url == f"{emu.base_url}/queue"
        assert emu.queue_host is None
        response = httpx.post(
            f"{emu.run_url}/fal-ai/flux/schnell", json={"prompt": "x"}, headers=AUTH
        )
        assert response.status_code == 200
        image = httpx.get(response.json()["images"][0]["url"])
        assert image.headers["content-type"] == "image/jpeg"
        port = int(emu.base_url.rsplit(":", 1)[1])
    assert threading.active_count() == before
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more


def test_settings_point_every_role_at_the_emulator() -> None:
    with run_emulator() as emu:
        settings = emu.settings()
        assert settings.key == EMULATOR_KEY
        assert settings.queue_url == f"{emu.base_url}/queue"
        assert settings.run_url == f"{emu.base_url}/run"
        assert settings.rest_url == f"{emu.base_url}/rest"
        assert settings.cdn_url == f"{emu.base_url}/cdn"
        assert emu.settings(api_key="other:key").key == "other:key"


async def test_async_context_and_split_roles() -> None:
    async with run_emulator(EmulatorConfig(latency=0.01), split_roles=True) as emu:
        assert emu.queue_host
        assert emu.run_host
        assert len({emu.base_url, emu.queue_host, emu.run_host}) == 3
        async with httpx.AsyncClient(headers=AUTH) as client:
            reply = (
                await client.post(f"{emu.queue_url}/fal-ai/flux/dev", json={"prompt": "x"})
            ).json()
            assert reply["status_url"].startswith(f"http://{emu.queue_host}/fal-ai/flux/requests/")
            ran = await client.post(f"http://{emu.run_host}/fal-ai/flux/dev", json={"prompt": "y"})
            url = ran.json()["images"][0]["url"]
            assert url.startswith(f"{emu.base_url}/cdn/files/")  # files live on the main listener
            assert (await client.get(url)).status_code == 200
        assert emu.stats.requests["run"] == 1
        assert emu.stats.submits == 1


def test_run_stream_ends_with_full_output() -> None:
    with run_emulator(EmulatorConfig(latency=0.05)) as emu:
        url = f"{emu.run_url}/fal-ai/flux/dev/stream"
        with httpx.stream("POST", url, json={"prompt": "s"}, headers=AUTH) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [
                json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
            ]
        assert events[0]["partial"] is True
        assert events[-1]["partial"] is False
        assert events[-1]["images"][0]["url"]
        assert emu.stats.requests["run_stream"] == 1


def test_serve_blocks_and_answers() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from falkit.emulator import EmulatorConfig, serve\n"
        f"serve(port={port}, config=EmulatorConfig(latency=0.01))"
    )
    process = popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/rest/.well-known/jwks.json")
                break
            except httpx.TransportError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.json()["keys"][0]["crv"] == "Ed25519"
        ran = httpx.post(
            f"http://127.0.0.1:{port}/run/fal-ai/flux/schnell", json={"prompt": "x"}, headers=AUTH
        )
        assert ran.json()["images"][0]["url"].startswith(f"http://127.0.0.1:{port}/cdn/files/")
    finally:
        process.terminate()
        process.wait(timeout=10)
