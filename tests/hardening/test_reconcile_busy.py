"""Reconciling on a busy account: thousands of requests of the same endpoint around an unknown
job (a 10,000-job batch's submits all come within minutes) must not leave it unknown for ever.

Found in bench/scale_out.py: a worker killed mid-submit left 8 jobs unknown among 20,000
requests of the endpoint, and reconciling read 50 pages (5,000 requests) of the history, found
it cut short, and waited: those jobs never ended. The history is now read for the jobs' own
window (it closes MARGIN after the last of them was marked unknown), up to 50,000 requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from falkit.emulator import EmulatorConfig, EmulatorServer, Fault, run_emulator
from falkit.errors import SubmitUncertainError
from tests.hardening.reconcile_support import journal_unknown, service_for

CROWD = 5_200  # more than the 5,000 the history used to be read for
ENDPOINT = "fal-ai/flux/schnell"


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.0, concurrency=64)) as server:
        yield server


async def test_unknown_jobs_among_thousands_of_requests_are_settled(emu: EmulatorServer) -> None:
    async with service_for(emu) as service:
        emu.faults.add(Fault(route="submit", kind="drop_after"))
        with pytest.raises(SubmitUncertainError):
            await service.generate_image("the one whose answer was lost", seed=1)
        (arrived,) = await service.list_jobs()
        client = service.client()
        lanes = asyncio.Semaphore(64)

        async def other(i: int) -> None:
            async with lanes:
                await client.submit(ENDPOINT, {"prompt": f"someone else's image {i}"})

        await asyncio.gather(*(other(i) for i in range(CROWD)))
        never = await journal_unknown(service, "the one that never left", seed=2)

        placed = {verdict.job_id: (verdict.verdict, result) for verdict, result in
                  await service.reconcile()}  # fmt: skip
        assert set(placed) == {arrived.id, never.id}
        assert placed[arrived.id][0] == "found"
        assert placed[never.id][0] == "released"
        assert all(result.status == "completed" for _, result in placed.values())
        assert await service.reconcile() == []
    assert emu.stats.submits == 1 + CROWD + 1  # the lost answer's, the crowd, the released one
    assert emu.stats.requests["history"] > 50  # every page of the window was read
