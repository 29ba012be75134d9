"""Hundreds of jobs: the concurrency limit holds, positions are exact, every job ends once."""

from __future__ import annotations

import asyncio
import time

import httpx

from falkit.emulator import EmulatorConfig, run_emulator

from .conftest import AUTH

JOBS, LIMIT, LATENCY = 500, 10, 0.02


async def test_500_queued_jobs_drain_under_the_concurrency_limit() -> None:
    config = EmulatorConfig(latency=LATENCY, concurrency=LIMIT)
    async with (
        run_emulator(config) as emu,
        httpx.AsyncClient(base_url=emu.base_url, headers=AUTH) as client,
    ):
        emu.config.latency = 10.0  # hold the first jobs while the queue fills
        started = time.monotonic()
        handles = []
        for i in range(JOBS):
            reply = await client.post("/queue/fal-ai/flux/schnell", json={"prompt": f"job {i}"})
            handles.append(reply.json())
        submit_time = time.monotonic() - started
        last = (await client.get(handles[-1]["status_url"])).json()
        assert last["queue_position"] == JOBS - LIMIT - 1
        emu.config.latency = LATENCY
        for handle in handles[:LIMIT]:  # free the held slots; the rest runs at the new latency
            assert (await client.put(handle["cancel_url"])).status_code == 202
        drain_start, peak = time.monotonic(), 0
        async with asyncio.timeout(30):
            while emu.engine.running or emu.engine.queued:
                peak = max(peak, emu.engine.running)
                await asyncio.sleep(0.005)
        drain = time.monotonic() - drain_start
        results = [await client.get(h["response_url"]) for h in handles[LIMIT:]]
    assert all(r.status_code == 200 for r in results)
    assert peak == LIMIT
    assert drain >= (JOBS - LIMIT) / LIMIT * LATENCY * 0.95
    assert drain < 10 * (JOBS - LIMIT) / LIMIT * LATENCY  # not dominated by overhead
    assert emu.stats.submits == JOBS
    assert submit_time < 10
