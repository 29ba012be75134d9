"""Many jobs in flight on one engine: every job Fal accepted completes, each submitted once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, Fault, run_emulator
from falkit.service import FalService
from falkit.service.engine import EngineOptions
from falkit.service.follow import FollowOptions
from tests.integration.helpers import emulator_settings


@pytest.fixture
def wide() -> Iterator[Any]:
    """An account that runs everything at once."""
    with run_emulator(EmulatorConfig(latency=1.0, concurrency=10_000)) as server:
        yield server


async def start_all(service: FalService, count: int, prefix: str) -> list[Any]:
    requests = [
        service.request(f"{prefix} {i}", steps=1, image_size="square") for i in range(count)
    ]
    return [await service.start_image(request) for request in requests]


@pytest.mark.timeout(90)
async def test_a_thousand_jobs_in_flight_all_complete(wide: Any) -> None:
    """1,000 jobs at once, 16 status streams: the rest are polled and promoted as streams free."""
    options = EngineOptions(follow=FollowOptions(stream_cap=16, poll_initial=0.5))
    async with FalService(emulator_settings(wide.base_url), engine_options=options) as service:
        handles = await start_all(service, 1000, "a thousand")
        results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
        engine = await service.engine()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert wide.stats.submits == 1000
    assert len({r.job_id for r in results}) == 1000
    assert engine.follower.peak_streams <= 16
    counts = wide.stats.requests
    assert counts["submit"] == counts["result"] == counts["file"] == 1000
    assert counts.get("status", 0) > 0, "jobs beyond the stream cap were polled"


async def test_more_jobs_than_connections_all_complete(wide: Any) -> None:
    """Two short-request connections and two streams for 60 jobs, with reads failing now and
    then: pools and passing failures delay jobs, they never fail one Fal accepted."""
    from falkit.client import RetryPolicy

    options = EngineOptions(
        connections=2,
        submit_lanes=2,
        retry=RetryPolicy(max_attempts=1),  # every failure reaches the engine itself
        follow=FollowOptions(stream_cap=2, poll_initial=0.2),
    )
    wide.faults.add(Fault(route="status", kind="drop_before", times=20, probability=0.3))
    wide.faults.add(Fault(route="stream", kind="cut_stream", times=5))
    wide.faults.add(Fault(route="result", kind="5xx", times=10, probability=0.3))
    async with FalService(emulator_settings(wide.base_url), engine_options=options) as service:
        handles = await start_all(service, 60, "crowded")
        results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
        jobs = await service.list_jobs(limit=100)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert wide.stats.submits == 60
    assert {job.status for job in jobs} == {"completed"}
    assert sum(wide.faults.fired.values()) >= 10, "the failures really happened"
