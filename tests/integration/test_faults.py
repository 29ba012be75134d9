"""With the emulator's faults on, generations still finish and nothing is submitted twice."""

from __future__ import annotations

import asyncio
from typing import Any

from falkit.emulator import Fault
from falkit.service import FalService


async def test_fifty_generations_survive_faults(service: FalService, emu: Any) -> None:
    emu.engine.config.latency = 0.1
    emu.engine.config.concurrency = 8
    for route in ("status", "result", "stream", "file"):
        emu.faults.add(Fault(route=route, kind="5xx", probability=0.15))
        emu.faults.add(Fault(route=route, kind="drop_before", probability=0.05))
    emu.faults.add(Fault(route="submit", kind="429", probability=0.2, retry_after=0.05))
    emu.faults.add(Fault(route="submit", kind="5xx", probability=0.1))
    emu.faults.add(Fault(route="submit", kind="drop_before", probability=0.05))
    emu.faults.add(Fault(route="stream", kind="cut_stream", probability=0.3))
    emu.faults.add(Fault(route="status", kind="slow", probability=0.05, delay=0.3))

    results = await asyncio.gather(
        *(service.generate_image(f"picture {i}", seed=i) for i in range(50)),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert emu.stats.submits == 50
    assert len({r.request_id for r in results if not isinstance(r, BaseException)}) == 50
