"""falkit's own client against the emulator: the conformance scenarios and every fault kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from falkit.client import FalClient, RetryPolicy
from falkit.emulator import Fault
from falkit.errors import SubmitUncertainError
from falkit.types import Completed, InProgress, Queued
from tests.integration.helpers import emulator_settings

ENDPOINT = "fal-ai/flux/schnell"
ARGS = {"prompt": "a conformance lighthouse", "seed": 3, "image_size": "square"}


@pytest.fixture
async def client(emu: Any) -> AsyncIterator[FalClient]:
    policy = RetryPolicy(max_attempts=6, base_delay=0.02, max_delay=0.2, deadline=20)
    async with FalClient(emulator_settings(emu.base_url), retry=policy) as fal:
        yield fal


async def _follow(client: FalClient, handle: Any) -> list[Any]:
    return [status async for status in client.watch(handle, logs=True, poll_interval=0.05)]


async def test_subscribe_scenario(client: FalClient, emu: Any) -> None:
    emu.engine.config.concurrency = 1
    first = await client.submit(ENDPOINT, ARGS)
    second = await client.submit(ENDPOINT, {**ARGS, "seed": 4})
    statuses = await _follow(client, second)
    assert isinstance(statuses[0], Queued)
    assert any(isinstance(s, InProgress) and s.logs for s in statuses)
    assert isinstance(statuses[-1], Completed)
    logs = [
        entry.key for s in statuses if isinstance(s, InProgress | Completed) for entry in s.logs
    ]
    assert len(logs) == len(set(logs)), "each log line is yielded once"
    response = await client.result(second)
    assert response.data["seed"] == 4
    assert response.request_id == second.request_id
    assert response.billable_units is not None
    image = await client.http.get(response.data["images"][0]["url"])
    assert image.status_code == 200
    await _follow(client, first)


async def test_reattach_status_cancel_run_upload(
    client: FalClient, emu: Any, tmp_path: Path
) -> None:
    emu.engine.config.latency = 5
    handle = await client.submit(ENDPOINT, ARGS)
    again = client.handle(ENDPOINT, handle.request_id)
    assert isinstance(await client.status(again), Queued | InProgress)
    assert await client.cancel(again) in ("OK", "CANCELLATION_REQUESTED")
    final = (await _follow(client, again))[-1]
    assert isinstance(final, Completed)
    assert final.failed
    emu.engine.config.latency = 0.05
    ran = await client.run(ENDPOINT, ARGS)
    assert ran.data["images"][0]["width"] == 512
    path = tmp_path / "note.txt"
    path.write_text("hello emulator")
    url = await client.upload_file(path)
    assert (await client.http.get(url)).text == "hello emulator"


READ_FAULTS = [
    "5xx",
    "5xx_request_id",
    "429",
    "drop_before",
    "drop_after",
    "slow",
    "malformed_json",
]


@pytest.mark.parametrize("kind", READ_FAULTS)
@pytest.mark.parametrize("route", ["status", "result"])
async def test_read_faults_are_survived(client: FalClient, emu: Any, route: str, kind: str) -> None:
    emu.engine.config.latency = 0.05
    handle = await client.submit(ENDPOINT, ARGS)
    emu.faults.add(Fault(route=route, kind=kind, times=2, retry_after=0.05, delay=0.2))
    if route == "status":
        await _follow_by_polling(client, handle)
    else:
        await _follow(client, handle)
    response = await client.result(handle)
    assert response.data["images"]
    assert emu.faults.fired[kind] >= 1
    assert emu.stats.submits == 1


async def _follow_by_polling(client: FalClient, handle: Any) -> None:
    import asyncio

    for _ in range(200):
        if isinstance(await client.status(handle), Completed):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never completed")


async def test_cut_stream_falls_back_to_polling(client: FalClient, emu: Any) -> None:
    emu.engine.config.latency = 0.5
    emu.faults.add(Fault(route="stream", kind="cut_stream", times=None))
    handle = await client.submit(ENDPOINT, ARGS)
    statuses = await _follow(client, handle)
    assert isinstance(statuses[-1], Completed)
    assert emu.stats.requests["status"] >= 1


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("5xx", "retried"),
        ("429", "retried"),
        ("slow", "retried"),
        ("5xx_request_id", "uncertain"),
        ("drop_before", "uncertain"),
        ("drop_after", "uncertain"),
        ("malformed_json", "uncertain"),
    ],
)
async def test_submit_faults_never_double_submit(
    client: FalClient, emu: Any, kind: str, outcome: str
) -> None:
    emu.faults.add(Fault(route="submit", kind=kind, retry_after=0.05, delay=0.2))
    if outcome == "retried":
        handle = await client.submit(ENDPOINT, ARGS)
        assert handle.request_id
        assert emu.stats.submits == 1
    else:
        with pytest.raises(SubmitUncertainError):
            await client.submit(ENDPOINT, ARGS)
        assert emu.stats.submits <= 1
    sends = 1 if kind == "slow" or outcome == "uncertain" else 2
    assert emu.stats.requests["submit"] == sends


async def test_http_client_never_sends_key_elsewhere(client: FalClient) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    other = httpx.AsyncClient(transport=httpx.MockTransport(record), auth=client.http.auth)
    await other.get("http://elsewhere.example/x")
    assert "authorization" not in seen[0].headers
