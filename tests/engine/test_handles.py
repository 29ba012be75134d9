"""Job handles through the real engine, against the emulator on a loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, run_emulator
from falkit.errors import BudgetExceededError, JobCancelledError
from falkit.events import CancelledEvent, CompletedEvent, Event, QueuedEvent, StartedEvent
from falkit.service import FalService
from falkit.service.results import GenerationResult
from tests.integration.helpers import emulator_settings


@pytest.fixture
def emu() -> Iterator[Any]:
    with run_emulator(EmulatorConfig(latency=0.4, concurrency=1)) as server:
        yield server


@pytest.fixture
async def service(emu: Any) -> AsyncIterator[FalService]:
    async with FalService(emulator_settings(emu.base_url)) as svc:
        yield svc


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


async def test_start_returns_at_once_and_result_waits(service: FalService, emu: Any) -> None:
    handle = await service.start_image(service.request("a lighthouse", seed=1))
    assert handle.job_id.startswith("j_")
    assert not handle.done
    result = await handle.result()
    assert isinstance(result, GenerationResult)
    assert result.job_id == handle.job_id
    assert result.images[0].path.is_file()
    assert handle.state == "completed"
    assert emu.stats.submits == 1


async def test_late_subscribers_get_every_event(service: FalService) -> None:
    handle = await service.start_image(service.request("a harbour", steps=3))
    early = asyncio.create_task(collect(handle.events()))
    async for event in handle.events():
        if isinstance(event, StartedEvent):
            break
    middle = asyncio.create_task(collect(handle.events()))  # joins while it runs
    await handle.result()
    late = await collect(handle.events())  # joins after the end
    first = await early
    assert [e.seq for e in first] == list(range(1, len(first) + 1))
    assert (await middle) == first
    assert late == first
    assert isinstance(first[0], QueuedEvent)
    assert isinstance(first[-1], CompletedEvent)
    # and a reader that saw up to some event resumes after it, missing nothing
    assert await collect(handle.events(after=2)) == first[2:]


async def test_every_event_has_one_json_form(service: FalService) -> None:
    handle = await service.start_image(service.request("a kite", steps=2))
    await handle.result()
    forms = [event.to_json() for event in handle.history()]
    assert forms[0]["type"] == "queued"
    assert {form["job_id"] for form in forms} == {handle.job_id}
    done = forms[-1]
    assert done["type"] == "completed"
    assert done["result"]["images"][0]["path"].endswith(".jpg")
    import json

    json.dumps(forms)  # every form is plain JSON


async def test_cancel_a_queued_job_through_its_handle(service: FalService, emu: Any) -> None:
    """Concurrency 1: the second job waits in Fal's queue; cancelling it is free."""
    service.budget.limit = 1.0
    running = await service.start_image(service.request("first", seed=1))
    waiting = await service.start_image(service.request("second", seed=2))
    async for event in waiting.events():
        if isinstance(event, QueuedEvent):
            break
    assert await waiting.cancel() in ("OK", "CANCELLATION_REQUESTED")
    with pytest.raises(JobCancelledError):
        await waiting.result()
    last = waiting.history()[-1]
    assert isinstance(last, CancelledEvent)
    assert last.charged is False
    assert (await service.get_job(waiting.job_id)).status == "cancelled"
    await running.result()
    assert service.budget.held == 0.0  # a job that never ran costs nothing
    assert emu.stats.submits == 2


async def test_a_cancelled_running_job_still_counts_against_the_cap(
    service: FalService, emu: Any
) -> None:
    estimate = service.prepare_image("x").estimated_cost
    assert estimate is not None
    service.budget.limit = estimate * 1.5
    handle = await service.start_image(service.request("slow one", seed=1))
    async for event in handle.events():
        if isinstance(event, StartedEvent):
            break
    await handle.cancel()
    with pytest.raises(JobCancelledError):
        await handle.result()
    last = handle.history()[-1]
    assert isinstance(last, CancelledEvent)
    assert last.charged is True
    assert service.budget.held == pytest.approx(estimate)
    with pytest.raises(BudgetExceededError):  # Fal may bill the cancelled one: no room left
        await service.start_image(service.request("another"))
    assert emu.stats.submits == 1


async def test_cancel_before_submit_sends_nothing(emu: Any) -> None:
    from falkit.service.engine import EngineOptions

    options = EngineOptions(submit_lanes=1)
    async with FalService(emulator_settings(emu.base_url), engine_options=options) as service:
        from falkit.emulator import Fault

        emu.faults.add(Fault(route="submit", kind="slow", delay=1.0))
        first = await service.start_image(service.request("slow submit"))
        second = await service.start_image(service.request("never sent"))
        assert await second.cancel() == "OK"
        with pytest.raises(JobCancelledError):
            await second.result()
        await first.result()
        record = await service.get_job(second.job_id)
        assert (record.status, record.request_id) == ("cancelled", None)
        assert emu.stats.submits == 1


async def test_the_webhook_seam_finishes_a_job_without_a_result_call(
    service: FalService, emu: Any
) -> None:
    """What a verified webhook delivers completes the job; nothing more is asked of Fal."""
    engine = await service.engine()
    emu.config.latency = 30.0  # the job would run for half a minute
    handle = await service.start_image(service.request("delivered", seed=5))
    async for event in handle.events():
        if isinstance(event, QueuedEvent):
            request_id = event.request_id
            break
    assert request_id is not None
    emu.config.latency = 0.0
    output = await service.client().run("fal-ai/flux/schnell", {"prompt": "delivered"})
    emu.stats.reset()
    assert engine.deliver(request_id, output)
    result = await asyncio.wait_for(handle.result(), 10)
    assert result.images[0].path.is_file()
    assert "result" not in emu.stats.requests
    assert not engine.deliver(request_id, output)  # once only
