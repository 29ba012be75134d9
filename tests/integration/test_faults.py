"""With the emulator's faults on, generations still finish and nothing is submitted twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from falkit.emulator import Fault
from falkit.errors import SubmitUncertainError
from falkit.service import FalService


async def test_fifty_generations_survive_faults(service: FalService, emu: Any) -> None:
    emu.engine.config.latency = 0.1
    emu.engine.config.concurrency = 8
    for route in ("status", "result", "stream", "file"):
        emu.faults.add(Fault(route=route, kind="5xx", probability=0.1, times=None))
        emu.faults.add(Fault(route=route, kind="drop_before", probability=0.05, times=None))
    # Submit faults that certainly did not reach the queue are retried; a dropped submit
    # connection is ambiguous and is covered by test_dropped_submit_is_never_resent below.
    emu.faults.add(
        Fault(route="submit", kind="429", probability=0.15, retry_after=0.05, times=None)
    )
    emu.faults.add(Fault(route="submit", kind="5xx", probability=0.05, times=None))
    emu.faults.add(Fault(route="stream", kind="cut_stream", probability=0.3, times=None))
    emu.faults.add(Fault(route="status", kind="slow", probability=0.05, delay=0.3, times=None))

    results = await asyncio.gather(
        *(service.generate_image(f"picture {i}", seed=i) for i in range(50)),
        return_exceptions=True,
    )
    assert sum(emu.faults.fired.values()) > 20, "the faults must actually fire"
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert emu.stats.submits == 50
    assert len({r.request_id for r in results if not isinstance(r, BaseException)}) == 50


async def test_dropped_submit_is_never_resent(service: FalService, emu: Any) -> None:
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    with pytest.raises(SubmitUncertainError, match="may have"):
        await service.generate_image("a picture whose submit is lost")
    assert emu.stats.submits == 1
    (job,) = await service.list_jobs()
    assert job.status == "unknown"
    assert "falkit jobs reconcile" in (job.error or "")
    (resumed,) = await service.resume()  # found in Fal's request history: reattached
    assert resumed.job_id == job.id
    assert resumed.status == "completed"
    assert emu.stats.submits == 1
