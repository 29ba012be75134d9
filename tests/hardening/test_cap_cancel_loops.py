"""The MCP spend cap holds when a chat loops generate_image + cancel_job: a job cancelled after
it started may still be billed, so it keeps counting, and the cap refuses in time."""

from __future__ import annotations

from typing import Any

import pytest

from falkit.emulator.engine import QUEUED
from tests.integration.conftest import emu, service
from tests.mcp.conftest import connect
from tests.mcp.helpers import data, ok, text

__all__ = ["connect", "emu", "service"]

ONE_IMAGE = 0.003 * 1024 * 768 / 1_000_000  # flux-schnell at its default size
CAP = ONE_IMAGE * 3.5


def _may_be_billed(emu: Any) -> float:
    """What Fal could bill: every job that left the queue (ran, even if cancelled then)."""
    ran = [job for job in emu.engine.jobs.values() if job.state != QUEUED and job.started]
    return len(ran) * ONE_IMAGE


async def test_generate_and_cancel_loops_stay_under_the_cap(connect: Any, emu: Any) -> None:
    """Each job runs before its cancel, so each may be billed: the fourth is refused."""
    emu.engine.config.latency = 30.0  # running until cancelled
    emu.engine.config.concurrency = 8
    refusal = None
    rounds = 0
    async with connect(max_spend_usd=CAP, wait_seconds=0.3) as client:
        for i in range(12):
            started = await client.call_tool("generate_image", {"prompt": f"fox {i}"})
            if started.is_error:
                refusal = text(started)
                break
            rounds += 1
            await _cancel_and_check(client, emu, data(started)["job_id"])
        submits = emu.stats.submits
        again = await client.call_tool("generate_image", {"prompt": "one more fox"})
    assert refusal is not None, f"never refused after {rounds} generate+cancel rounds"
    assert "refused before submitting" in refusal
    assert "--max-spend-usd" in refusal
    assert again.is_error
    assert (rounds, submits, emu.stats.submits) == (3, 3, 3), "a refused job is never sent"
    assert _may_be_billed(emu) <= CAP + 1e-9


async def test_jobs_cancelled_in_the_queue_free_the_cap(connect: Any, emu: Any) -> None:
    """Behind a running job, each new one is cancelled while queued: never billed, so the
    loop goes on without a refusal, and what may be billed stays one job."""
    emu.engine.config.latency = 30.0
    emu.engine.config.concurrency = 1
    async with connect(max_spend_usd=CAP, wait_seconds=0.3) as client:
        ok(await client.call_tool("generate_image", {"prompt": "the running fox"}))
        for i in range(6):
            started = ok(await client.call_tool("generate_image", {"prompt": f"queued {i}"}))
            await _cancel_and_check(client, emu, data(started)["job_id"])
    assert emu.stats.submits == 7
    assert _may_be_billed(emu) == pytest.approx(ONE_IMAGE)


async def _cancel_and_check(client: Any, emu: Any, job_id: str) -> None:
    ok(await client.call_tool("cancel_job", {"job_id": job_id}))
    committed = data(ok(await client.call_tool("estimate_cost", {"prompt": "x"})))
    assert committed["spent_usd"] <= CAP + 1e-9
    assert _may_be_billed(emu) <= CAP + 1e-9
