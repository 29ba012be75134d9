"""A budget that runs out mid-way: Fal bills more than estimated, submitting stops in time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from falkit.errors import ValidationError
from falkit.service import FalService
from falkit.service.batch import resume_batch
from tests.batch.helpers import Overbilling, manifest
from tests.integration.helpers import emulator_settings

PROMPTS = [f"harbour at dawn {i}" for i in range(20)]
EACH = 0.000786  # flux-schnell at 512x512: 0.262144 MP x $0.003


async def test_budget_running_out_midway_stops_submitting(emu: Any) -> None:
    budget = 20 * EACH + 0.0001  # the estimate fits; the real bills (twice as much) will not
    settings = emulator_settings(emu.base_url)
    async with FalService(settings, transport=Overbilling(2.0)) as service:
        result = await service.generate_batch(
            PROMPTS, budget=budget, concurrency=4, defaults={"image_size": "square"}
        )
    assert result.budget_stopped
    assert not result.ok
    assert result.completed + result.pending == 20
    assert 5 <= result.completed < 20
    assert emu.stats.submits == result.completed, "nothing submitted past the budget"
    # spend + estimates in flight never passed the budget; only the overbilling of the
    # jobs in flight (at most 4 of them, each EACH over its estimate) can go beyond it
    assert result.spent_usd == pytest.approx(result.completed * 2 * EACH, rel=1e-3)
    assert result.spent_usd <= budget + 4 * EACH
    not_sent = [f for f in result.failures if f.status == "pending"]
    assert len(not_sent) == result.pending
    assert all("not submitted" in f.error for f in not_sent)
    rows = manifest(result.folder)
    assert [r["status"] for r in rows] == ["completed"] * result.completed + ["pending"] * (
        20 - result.completed
    )

    async with FalService(settings) as service:
        with pytest.raises(ValidationError, match="more than the budget"):
            await resume_batch(service, result.batch_id)
        assert emu.stats.submits == result.completed
        finished = await resume_batch(service, result.batch_id, budget=1.0)
        # done: the stored budget (now exceeded by the real bills) has nothing left to refuse
        settled = await resume_batch(service, result.batch_id)
    assert (settled.ok, settled.submitted) == (True, 0)
    assert finished.ok
    assert finished.submitted == 20 - result.completed
    assert emu.stats.submits == 20
    assert finished.budget_usd == 1.0


async def test_unknown_price_cannot_be_budgeted(service: FalService, emu: Any) -> None:
    with pytest.raises(ValidationError, match="cost of someone/custom-model is unknown"):
        await service.generate_batch([{"prompt": "x", "model": "someone/custom-model"}], budget=1.0)
    assert sum(emu.stats.requests.values()) == 0


@pytest.mark.parametrize("budget", [0.0, -1.0, float("nan")])
async def test_budget_must_be_positive(service: FalService, budget: float) -> None:
    with pytest.raises(ValidationError, match="budget"):
        await service.generate_batch(["x"], budget=budget)


async def test_a_job_still_downloading_counts_what_fal_billed(emu: Any) -> None:
    """Once Fal's answer says what a job is billed, every budget counts that, not the estimate,
    even while its images download: the next admission sees the overrun."""
    async with FalService(
        emulator_settings(emu.base_url), transport=Overbilling(2.0), spend_cap=1.0
    ) as service:
        real, entered, gate = service.image_finisher, asyncio.Event(), asyncio.Event()
        seen: list[tuple[float, float]] = []

        def held_finisher(out_dir: Path | None) -> Any:
            finish = real(out_dir)

            async def held(record: Any, response: Any, emit: Any) -> Any:
                seen.append((service.budget.in_flight, service.budget.spent))
                entered.set()
                await gate.wait()
                return await finish(record, response, emit)

            return held

        service.image_finisher = held_finisher  # type: ignore[method-assign]
        handle = await service.start_image(service.request("a harbour", image_size="square"))
        assert service.budget.in_flight == pytest.approx(EACH)  # the estimate, until Fal answers
        await asyncio.wait_for(entered.wait(), 30)
        assert seen == [(pytest.approx(2 * EACH, abs=1e-6), 0.0)]
        gate.set()
        result = await handle.result()
    assert result.cost_usd == pytest.approx(2 * EACH, abs=1e-6)
    assert (service.budget.spent, service.budget.in_flight) == (
        pytest.approx(2 * EACH, abs=1e-6),
        0.0,
    )
