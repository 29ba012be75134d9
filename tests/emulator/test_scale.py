"""Hundreds of jobs: the concurrency limit holds, positions are exact, every job ends once."""

from __future__ import annotations

import asyncio
import time

import httpx

from falkit.emulator import EmulatorConfig, create_app, run_emulator

from .conftest import AUTH

JOBS, LIMIT, LATENCY = 500, 10, 0.02


async def test_500_queued_jobs_drain_under_the_concurrency_limit() -> None:
    config = EmulatorConfig(latency=LATENCY, concurrency=LIMIT)
    async with (
        run_emulator(config) as emu,
        httpx.AsyncClient(base_url=emu.base_url, headers=AUTH) as client,
    ):
        emu.config.latency = 10.0  # hold the first jobs while the queue fills
        cpu = time.process_time()  # CPU time (the emulator is a thread of this process)
        handles = []
        for i in range(JOBS):
            reply = await client.post("/queue/fal-ai/flux/schnell", json={"prompt": f"job {i}"})
            handles.append(reply.json())
        submit_cpu = time.process_time() - cpu
        last = (await client.get(handles[-1]["status_url"])).json()
        assert last["queue_position"] == JOBS - LIMIT - 1
        emu.config.latency = LATENCY
        for handle in handles[:LIMIT]:  # free the held slots; the rest runs at the new latency
            assert (await client.put(handle["cancel_url"])).status_code == 202
        drain_start, peak, cpu = time.monotonic(), 0, time.process_time()
        async with asyncio.timeout(30):
            while emu.engine.running or emu.engine.queued:
                peak = max(peak, emu.engine.running)
                await asyncio.sleep(0.005)
        drain = time.monotonic() - drain_start
        drain_cpu = time.process_time() - cpu
        results = [await client.get(h["response_url"]) for h in handles[LIMIT:]]
    assert all(r.status_code == 200 for r in results)
    assert peak == LIMIT
    assert drain >= (JOBS - LIMIT) / LIMIT * LATENCY * 0.95  # the latency is the emulator's
    # not dominated by overhead: CPU time, which other work on the machine does not inflate
    assert drain_cpu < 10 * (JOBS - LIMIT) / LIMIT * LATENCY
    assert emu.stats.submits == JOBS
    assert submit_cpu < 10


IN_FLIGHT = 1000


async def test_1000_jobs_in_flight_with_polls_streams_and_downloads() -> None:
    """A thousand jobs running at once, followed by polls and SSE streams, results and images
    fetched; every job submitted exactly once and finished once."""
    app = create_app(EmulatorConfig(latency=5.0, concurrency=10_000, ping_interval=1.0))
    engine = app.state.emulator
    transport = httpx.ASGITransport(app=app)
    endpoint = "fal-ai/flux/schnell"
    small = {"width": 64, "height": 64}

    async def one(client: httpx.AsyncClient, i: int) -> bytes:
        body = {"prompt": f"job {i}", "seed": i, "image_size": small}
        handle = (await client.post(f"/queue/{endpoint}", json=body)).json()
        if i % 4 == 0:  # a quarter follows the SSE status stream to its end
            stream = await client.get(handle["status_url"] + "/stream")
            last = [line for line in stream.text.splitlines() if line.startswith("data: ")][-1]
            assert '"status": "COMPLETED"' in last
        else:  # the rest poll, as a plain client would
            while (await client.get(handle["status_url"])).status_code == 202:
                await asyncio.sleep(0.25)
        result = (await client.get(handle["response_url"])).json()
        image = await client.get(result["images"][0]["url"])
        assert image.status_code == 200
        return image.content

    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://emu", headers=AUTH) as client,
            asyncio.timeout(60),
        ):
            images = await asyncio.gather(*(one(client, i) for i in range(IN_FLIGHT)))
            stats = (await client.get("/_emulator/stats")).json()
    finally:
        await engine.aclose()
    assert len(set(images)) == IN_FLIGHT
    started = [job.started for job in engine.jobs.values()]
    finished = [job.finished for job in engine.jobs.values()]
    assert max(started) < min(finished)  # all thousand were in flight at once
    assert stats["submits"] == IN_FLIGHT
    assert stats["submits_by_endpoint"] == {endpoint: IN_FLIGHT}
    assert stats["jobs"] == {"queued": 0, "running": 0, "completed": IN_FLIGHT}
    assert stats["requests"]["stream"] == IN_FLIGHT // 4
    assert stats["requests"]["result"] == IN_FLIGHT
    assert stats["requests"]["file"] == IN_FLIGHT


async def test_positions_stay_exact_when_jobs_leave_the_middle_of_a_long_queue() -> None:
    app = create_app(EmulatorConfig(latency=30.0, concurrency=1))
    engine = app.state.emulator
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://emu", headers=AUTH) as c:
            handles = [
                (await c.post("/queue/fal-ai/flux/dev", json={"prompt": f"{i}"})).json()
                for i in range(200)
            ]
            cancelled = set(range(5, 200, 7))
            for i in sorted(cancelled):
                assert (await c.put(handles[i]["cancel_url"])).status_code == 200
            waiting = [i for i in range(1, 200) if i not in cancelled]
            for rank, i in enumerate(waiting):
                body = (await c.get(handles[i]["status_url"])).json()
                assert (body["status"], body["queue_position"]) == ("IN_QUEUE", rank)
            assert (await c.put(handles[0]["cancel_url"])).status_code == 202  # frees the slot
            first = (await c.get(handles[waiting[0]]["status_url"])).json()
            last = (await c.get(handles[waiting[-1]]["status_url"])).json()
            assert first["status"] == "IN_PROGRESS"
            assert last["queue_position"] == len(waiting) - 2
    finally:
        await engine.aclose()
