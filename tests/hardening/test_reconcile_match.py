"""Which request of Fal's history is an unknown job's: its arguments, its time, no other job's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, EmulatorServer, run_emulator
from falkit.service.reconcile import same_input
from tests.hardening.reconcile_support import journal_unknown, service_for


@pytest.mark.parametrize(
    ("sent", "seen", "same"),
    [
        ({"prompt": "a", "seed": 1}, {"prompt": "a", "seed": 1}, True),
        ({"prompt": "a"}, {"prompt": "a", "num_inference_steps": 4}, True),  # Fal's defaults
        ({"guidance_scale": 3}, {"guidance_scale": 3.0}, True),
        ({"seed": None, "prompt": "a"}, {"prompt": "a"}, True),
        ({"loras": [{"path": "u", "scale": 1}]}, {"loras": [{"path": "u", "scale": 1.0}]}, True),
        ({"prompt": "a", "seed": 1}, {"prompt": "a", "seed": 2}, False),
        ({"prompt": "a", "seed": 1}, {"prompt": "a"}, False),
        ({"prompt": "a"}, {"prompt": "A"}, False),
        ({"sync_mode": True}, {"sync_mode": 1}, False),
        ({"seed": 1}, {"seed": "1"}, False),
        ({"loras": [{"path": "u"}]}, {"loras": [{"path": "u"}, {"path": "v"}]}, False),
        ({"prompt": "a"}, "prompt a", False),
    ],
)
def test_same_input(sent: dict[str, Any], seen: Any, same: bool) -> None:
    assert same_input(sent, seen) is same


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.05, concurrency=4)) as server:
        yield server


async def test_a_request_sent_long_after_the_job_is_not_its(emu: EmulatorServer) -> None:
    """Same arguments, but Fal received that request an hour after the job's submit (another
    tool, a later run): not the job's, so the job never arrived and is sent once."""
    async with service_for(emu) as service:
        job = await journal_unknown(service, "a later twin", seed=8)
        db = service.settings.home / "falkit.db"
        with sqlite3.connect(db) as conn:  # the job's submit was an hour ago
            conn.execute(
                "UPDATE jobs SET created_at = datetime(created_at, '-1 hour'), "
                "updated_at = datetime(updated_at, '-1 hour') WHERE id = ?",
                (job.id,),
            )
        other = await service.client().submit(job.endpoint_id, dict(job.arguments))
        ((verdict, result),) = await service.reconcile()
    assert (verdict.job_id, verdict.verdict) == (job.id, "released")
    assert result.request_id != other.request_id
    assert emu.stats.submits == 2


async def test_a_job_older_than_the_history_is_never_released(emu: EmulatorServer) -> None:
    """Not found, but its submit was 31 days ago: Fal's history may have forgotten it."""
    async with service_for(emu) as service:
        job = await journal_unknown(service, "long ago", seed=9)
        with sqlite3.connect(service.settings.home / "falkit.db") as conn:
            conn.execute(
                "UPDATE jobs SET created_at = datetime(created_at, '-31 days'), "
                "updated_at = datetime(updated_at, '-31 days') WHERE id = ?",
                (job.id,),
            )
        ((verdict, result),) = await service.reconcile()
        assert (await service.get_job(job.id)).status == "unknown"
    assert verdict.verdict == "waiting"
    assert "older than" in verdict.message
    assert result is None
    assert emu.stats.submits == 0


async def test_release_unknown_moves_only_unknown_jobs_without_a_request_id(
    emu: EmulatorServer,
) -> None:
    async with service_for(emu) as service:
        store = await service.store()
        job = await journal_unknown(service, "to release", seed=10)
        released = await store.release_unknown(job.id)
        assert (released.status, released.error, released.submitter) == ("pending", None, None)
        assert (await store.release_unknown(job.id)).status == "pending"  # left as stored
        other = await journal_unknown(service, "found meanwhile", seed=11)
        await store.set_submitted(
            other.id, request_id="r-1", status_url="s", response_url="r", cancel_url="c"
        )
        await store.fail_job(other.id, error="lost track", status="unknown")
        kept = await store.release_unknown(other.id)  # it has a request id: reattach instead
        assert (kept.status, kept.request_id) == ("unknown", "r-1")
