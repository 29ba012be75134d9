"""The SSE status stream over a real socket: events, pings, close after COMPLETED, cuts."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from falkit.emulator import EmulatorConfig, EmulatorServer, Fault, run_emulator

from .conftest import AUTH


async def _read_stream(client: httpx.AsyncClient, url: str, limit: float = 10.0) -> list[str]:
    """Every non-blank line of the stream until the server closes it."""
    lines: list[str] = []
    async with asyncio.timeout(limit), client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line:
                lines.append(line)
    return lines


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


async def _submit(client: httpx.AsyncClient, base: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{base}/queue/fal-ai/flux/dev", json=body)
    reply: dict[str, Any] = response.json()
    return reply


async def test_stream_sends_changes_then_closes_after_completed(emu: EmulatorServer) -> None:
    async with httpx.AsyncClient(headers=AUTH) as client:
        handle = await _submit(client, emu.base_url, {"prompt": "x", "num_inference_steps": 4})
        lines = await _read_stream(client, handle["status_url"] + "/stream?logs=1")
    events = _events(lines)
    assert {e["status"] for e in events} <= {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}
    assert events[-1]["status"] == "COMPLETED"
    assert all(e["status"] != "COMPLETED" for e in events[:-1])
    assert events[-1]["metrics"]["inference_time"] > 0
    final_logs = [entry["message"] for entry in events[-1]["logs"]]
    assert "step 4/4" in final_logs
    growing = [len(e["logs"]) for e in events if e["status"] == "IN_PROGRESS"]
    assert len(growing) >= 2
    assert growing == sorted(growing)
    for key in ("request_id", "response_url", "status_url", "cancel_url"):
        assert events[-1][key] == handle[key]


async def test_stream_without_logs_has_null_logs(emu: EmulatorServer) -> None:
    async with httpx.AsyncClient(headers=AUTH) as client:
        handle = await _submit(client, emu.base_url, {"prompt": "x"})
        events = _events(await _read_stream(client, handle["status_url"] + "/stream?logs=0"))
    assert all(e.get("logs") is None for e in events)
    assert [e["status"] for e in events][-1] == "COMPLETED"


async def test_idle_stream_sends_pings_and_queue_moves() -> None:
    config = EmulatorConfig(latency=0.45, concurrency=1, ping_interval=0.12)
    async with run_emulator(config) as emu, httpx.AsyncClient(headers=AUTH) as client:
        await _submit(client, emu.base_url, {"prompt": "first"})
        waiting = await _submit(client, emu.base_url, {"prompt": "second"})
        lines = await _read_stream(client, waiting["status_url"] + "/stream")
    assert lines.count(": ping") >= 2
    statuses = [e["status"] for e in _events(lines)]
    assert statuses[0] == "IN_QUEUE"
    assert statuses[-1] == "COMPLETED"
    assert "IN_PROGRESS" in statuses


async def test_cut_stream_ends_before_completed(emu: EmulatorServer) -> None:
    emu.faults.add(Fault(route="stream", kind="cut_stream"))
    async with httpx.AsyncClient(headers=AUTH) as client:
        handle = await _submit(client, emu.base_url, {"prompt": "x"})
        cut = _events(await _read_stream(client, handle["status_url"] + "/stream?logs=1"))
        assert len(cut) == 1
        assert cut[0]["status"] != "COMPLETED"
        whole = _events(await _read_stream(client, handle["status_url"] + "/stream"))
    assert whole[-1]["status"] == "COMPLETED"
    assert emu.faults.fired["cut_stream"] == 1


async def test_stream_unknown_request_is_404(emu: EmulatorServer) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    url = f"{emu.base_url}/queue/fal-ai/flux/requests/{missing}/status/stream"
    async with httpx.AsyncClient(headers=AUTH) as client:
        assert (await client.get(url)).status_code == 404


async def test_64_open_streams_do_not_spin() -> None:
    """Streams waiting on queued jobs cost (almost) no CPU: they sleep until something changes."""
    config = EmulatorConfig(latency=30.0, concurrency=1, ping_interval=5.0)
    limits = httpx.Limits(max_connections=100)
    async with (
        run_emulator(config) as emu,
        httpx.AsyncClient(headers=AUTH, limits=limits) as client,
    ):
        handles = [await _submit(client, emu.base_url, {"prompt": str(i)}) for i in range(65)]
        opened = asyncio.Event()
        first_events: list[int] = []

        async def watch(url: str) -> None:
            async with client.stream("GET", url) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        first_events.append(1)
                        if len(first_events) == 64:
                            opened.set()

        tasks = [asyncio.create_task(watch(h["status_url"] + "/stream")) for h in handles[1:]]
        await asyncio.wait_for(opened.wait(), 10)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(1.0)
        used = (time.process_time() - cpu) / (time.monotonic() - wall)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert emu.engine.queued == 64
    assert used < 0.2, f"{used:.0%} of a CPU while idle"
