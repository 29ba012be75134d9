"""Jobs longer than the wait limit: answered with an id, finished in the background or later."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

from falkit.mcp.app import McpApp, ServerOptions
from falkit.mcp.server import create_server
from falkit.service import FalService
from tests.mcp.helpers import assert_images, data, ok, text


async def until_done(client: Client, job_id: str, limit: float = 20.0) -> CallToolResult:
    """Call get_job as a model would, until the job is done."""
    deadline = time.monotonic() + limit
    while True:
        result = ok(await client.call_tool("get_job", {"job_id": job_id}))
        if data(result)["done"] or time.monotonic() > deadline:
            return result


async def test_long_job_returns_its_id_then_get_job_returns_images(
    connect: Any, emu: Any, service: FalService
) -> None:
    emu.engine.config.latency = 1.5
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with connect(wait_seconds=0.3) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a slow comet"}))
        job_id = data(first)["job_id"]
        now = ok(await client.call_tool("get_job", {"job_id": job_id, "wait_seconds": 0}))
        later = await client.call_tool(
            "get_job", {"job_id": job_id, "wait_seconds": 10}, progress_callback=on_progress
        )
        done = await until_done(client, job_id)
    assert data(first)["done"] is False  # answered before the job ended
    assert f'get_job with job_id "{job_id}"' in text(first)
    assert data(now)["status"] in ("submitted", "running")
    assert not data(later)["done"]  # the server's limit (0.3 s) caps what get_job waits
    assert progress, "get_job reports progress while it waits"
    assert_images(done)
    assert data(done)["job_id"] == job_id
    assert emu.stats.submits == 1
    assert (await service.get_job(job_id)).status == "completed"


async def test_background_job_finishes_without_anyone_asking(
    connect: Any, emu: Any, service: FalService
) -> None:
    emu.engine.config.latency = 0.6
    async with connect(wait_seconds=0.1) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a quiet harbour"}))
        job_id = data(first)["job_id"]
        deadline = time.monotonic() + 15
        while (await service.get_job(job_id)).status != "completed":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    job = await service.get_job(job_id)
    assert len(job.images) == 1
    assert emu.stats.submits == 1


async def test_a_new_server_picks_up_a_job_the_old_one_left(emu: Any, service: FalService) -> None:
    emu.engine.config.latency = 1.0
    async with (
        McpApp(service, ServerOptions(wait_seconds=0.2)) as app,
        Client(create_server(app)) as client,
    ):
        first = ok(await client.call_tool("generate_image", {"prompt": "an old mill"}))
    job_id = data(first)["job_id"]
    assert (await service.get_job(job_id)).status in ("submitted", "running")
    async with (
        McpApp(service, ServerOptions(wait_seconds=10)) as app,
        Client(create_server(app)) as client,
    ):
        done = ok(await client.call_tool("get_job", {"job_id": job_id}))
    assert_images(done)
    assert emu.stats.submits == 1


async def test_falkit_jobs_resume_finishes_a_job_the_server_left(
    emu: Any, service: FalService
) -> None:
    emu.engine.config.latency = 1.0
    async with (
        McpApp(service, ServerOptions(wait_seconds=0.2)) as app,
        Client(create_server(app)) as client,
    ):
        first = ok(await client.call_tool("generate_image", {"prompt": "a windmill"}))
    job_id = data(first)["job_id"]
    outcomes = await service.resume()
    assert [o.job_id for o in outcomes] == [job_id]
    assert (await service.get_job(job_id)).status == "completed"
    assert emu.stats.submits == 1
