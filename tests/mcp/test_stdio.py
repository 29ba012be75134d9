"""`python -m falkit mcp` as a chat host runs it: a subprocess over stdio (and HTTP)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.types import BlobResourceContents

from tests.integration.helpers import emulator_env, falkit
from tests.lora.helpers import make_folder, total_requests
from tests.mcp.helpers import assert_images, data, ok, text
from tests.processes import popen


@contextlib.asynccontextmanager
async def stdio_session(env: dict[str, str], log: Path, *args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "falkit", "mcp", *args], env=env
    )
    with log.open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


async def poll_job(session: ClientSession, job_id: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        result = ok(await session.call_tool("get_job", {"job_id": job_id}))
        if data(result)["done"] or time.monotonic() > deadline:
            return result


async def test_stdio_server_end_to_end(emu: Any, isolated_env: Path, tmp_path: Path) -> None:
    photos = make_folder(tmp_path / "allowed" / "photos", 5)
    outside = make_folder(tmp_path / "outside", 5)
    env = emulator_env(emu.base_url, isolated_env)
    args = ("--wait-seconds", "0.8", "--allow-dir", str(photos.parent), "--max-spend-usd", "2.05")
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with stdio_session(env, tmp_path / "server.log", *args) as session:
        tools = (await session.list_tools()).tools
        first = await session.call_tool(
            "generate_image", {"prompt": "a paper boat"}, progress_callback=on_progress
        )
        emu.engine.config.latency = 2.0
        slow = ok(await session.call_tool("generate_image", {"prompt": "a slow paper boat"}))
        later = await poll_job(session, data(slow)["job_id"])
        emu.engine.config.latency = 0.3
        refused = await session.call_tool(
            "train_lora", {"source": str(outside), "trigger_word": "TOK"}
        )
        started = ok(
            await session.call_tool(
                "train_lora", {"source": str(photos), "trigger_word": "TOK", "name": "boat"}
            )
        )
        trained = await poll_job(session, data(started)["job_id"])
        with_lora = await session.call_tool(
            "generate_image", {"prompt": "TOK on a lake", "loras": ["boat"]}
        )
        before = total_requests(emu)
        over = await session.call_tool(
            "generate_image", {"prompt": "x", "model": "flux-pro", "num_images": 4}
        )
        steps = await session.call_tool(
            "generate_image", {"prompt": "x", "num_inference_steps": 50}
        )
        unknown = await session.call_tool("generate_image", {"prompt": "x", "guidance_scal": 4})
        (uri,) = [view["resource_uri"] for view in data(first)["images"]]
        (blob,) = (await session.read_resource(uri)).contents
    assert len(tools) == 8
    assert all(t.description for t in tools)
    assert_images(first)
    assert any(m and m.startswith("step") for m in progress)
    assert data(slow)["done"] is False
    assert_images(later)
    assert refused.is_error
    assert "outside the folders" in text(refused)
    assert data(trained)["name"] == "boat"
    assert_images(with_lora)
    assert over.is_error
    assert "refused before submitting" in text(over)
    assert text(steps).startswith("invalid input: num_inference_steps: ")
    assert text(steps).endswith("(allowed: 1 to 12 for flux-schnell)")
    assert "\n" not in text(steps)
    assert "guidance_scal: unknown argument; did you mean guidance_scale?" in text(unknown)
    assert isinstance(blob, BlobResourceContents)
    (path,) = assert_images(first)
    assert hashlib.sha256(base64.b64decode(blob.blob)).digest() == _sha256(path)
    assert total_requests(emu) == before
    assert emu.stats.submits == 4


async def test_a_job_left_by_a_killed_server_is_finished_by_jobs_resume(
    emu: Any, isolated_env: Path, tmp_path: Path
) -> None:
    env = emulator_env(emu.base_url, isolated_env)
    pidfile = tmp_path / "server.pid"
    emu.engine.config.latency = 1.5
    script = f'echo $$ > "{pidfile}"; exec "{sys.executable}" -m falkit mcp --wait-seconds 0.2'
    params = StdioServerParameters(command="sh", args=["-c", script], env=env)
    with (tmp_path / "server.log").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            first = ok(await session.call_tool("generate_image", {"prompt": "a tugboat"}))
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    job_id = data(first)["job_id"]
    resumed = falkit("jobs", "resume", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    (outcome,) = json.loads(resumed.stdout)
    assert outcome["job_id"] == job_id
    assert Path(outcome["images"][0]["path"]).is_file()
    assert emu.stats.submits == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_http_server_with_its_own_emulator(isolated_env: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = emulator_env("http://127.0.0.1:9", isolated_env)
    env["FALKIT_EMULATOR_LATENCY"] = "0.2"
    with (tmp_path / "server.log").open("w") as log:
        process = popen(
            [sys.executable, "-m", "falkit", "mcp", "--http", "--port", str(port), "--emulator"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        _wait_listening(port, process)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("generate_image", {"prompt": "a kite"})
            (uri,) = [view["resource_uri"] for view in data(result)["images"]]
            (blob,) = (await client.read_resource(uri)).contents
            misspelled = await client.call_tool("estimate_cost", {"prompt": "x", "seeds": 4})
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert {t.name for t in tools} >= {"generate_image", "get_job", "train_lora"}
    (path,) = assert_images(result)
    assert path.is_relative_to(isolated_env / "emulator")
    assert isinstance(blob, BlobResourceContents)
    assert blob.mime_type == "image/jpeg"
    assert hashlib.sha256(base64.b64decode(blob.blob)).digest() == _sha256(path)
    assert misspelled.is_error
    assert text(misspelled).startswith("invalid input: seeds: unknown argument; did you mean seed?")


def _sha256(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"falkit mcp --http exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    pytest.fail("falkit mcp --http did not start listening")
