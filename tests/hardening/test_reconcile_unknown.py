"""Unknown jobs are settled with Fal's request history: found ones reattached, missing ones
sent once, doubtful ones left alone; never a second paid submit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from falkit.emulator import EmulatorConfig, EmulatorServer, Fault, run_emulator
from falkit.errors import SubmitUncertainError
from tests.hardening.reconcile_support import (
    cli_env,
    falkit_cli,
    journal_unknown,
    service_for,
    statuses,
)


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.05, concurrency=4)) as server:
        yield server


async def test_a_lost_submit_answer_is_found_and_reattached(emu: EmulatorServer) -> None:
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    async with service_for(emu) as service:
        with pytest.raises(SubmitUncertainError, match="falkit jobs reconcile"):
            await service.generate_image("a fox whose submit answer is lost", seed=1)
        (job,) = await service.list_jobs()
        assert job.status == "unknown"
        (result,) = await service.resume()
        assert result.job_id == job.id
        assert result.status == "completed"
        assert result.paths
    (request_id,) = [j.id for j in emu.engine.jobs.values()]
    assert result.request_id == request_id
    assert emu.stats.submits == 1


async def test_a_submit_that_never_arrived_is_sent_once(emu: EmulatorServer) -> None:
    async with service_for(emu) as service:
        job = await journal_unknown(service, "a fox that never left", seed=2)
        ((verdict, result),) = await service.reconcile()
        assert (verdict.job_id, verdict.verdict) == (job.id, "released")
        assert result.status == "completed"
        assert result.job_id == job.id
        assert await service.reconcile() == []
        assert await service.resume() == []
    assert emu.stats.submits == 1


async def test_a_recent_unknown_job_waits_for_the_safe_delay(emu: EmulatorServer) -> None:
    async with service_for(emu, reconcile_after=600.0) as service:
        job = await journal_unknown(service, "too fresh to tell", seed=3)
        (outcome,) = await service.resume()
        assert isinstance(outcome, SubmitUncertainError)
        assert "look again in" in str(outcome)
        assert (await service.get_job(job.id)).status == "unknown"
    assert emu.stats.submits == 0
    assert emu.stats.requests["history"] == 1


async def test_twins_take_matching_requests_one_each(emu: EmulatorServer) -> None:
    """Two unknown jobs with the same arguments; only one reached Fal: it is found, the other
    is sent once."""
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    async with service_for(emu) as service:
        with pytest.raises(SubmitUncertainError):
            await service.generate_image("twin", seed=7)
        twin = await journal_unknown(service, "twin", seed=7)
        outcomes = await service.reconcile()
        verdicts = sorted((v.verdict, v.job_id == twin.id) for v, _ in outcomes)
        assert verdicts == [("found", False), ("released", True)]
        assert all(result.status == "completed" for _, result in outcomes)
        ids = {result.request_id for _, result in outcomes}
    assert len(ids) == 2
    assert emu.stats.submits == 2


async def test_a_request_held_by_another_job_is_not_taken(emu: EmulatorServer) -> None:
    async with service_for(emu) as service:
        done = await service.generate_image("same words", seed=9)
        job = await journal_unknown(service, "same words", seed=9)
        ((verdict, result),) = await service.reconcile()
        assert verdict.verdict == "released"
        assert result.request_id != done.request_id
        assert verdict.job_id == job.id
    assert emu.stats.submits == 2


async def test_an_unreadable_history_leaves_jobs_unknown(emu: EmulatorServer) -> None:
    emu.faults.add(Fault(route="history", kind="5xx", status=500, times=None))
    async with service_for(emu) as service:
        job = await journal_unknown(service, "history down", seed=4)
        ((verdict, result),) = await service.reconcile()
        assert verdict.verdict == "waiting"
        assert "could not be read" in verdict.message
        assert result is None
        assert (await service.get_job(job.id)).status == "unknown"
    assert emu.stats.submits == 0


async def test_retry_of_an_unknown_job_reattaches_instead_of_paying_twice(
    emu: EmulatorServer,
) -> None:
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    async with service_for(emu) as service:
        with pytest.raises(SubmitUncertainError):
            await service.generate_image("retry me", seed=5)
        (job,) = await service.list_jobs()
        retried = await service.retry_job(job.id)
        assert retried.job_id == job.id
    assert emu.stats.submits == 1


async def test_retry_of_a_doubtful_unknown_job_retires_it(emu: EmulatorServer) -> None:
    async with service_for(emu, reconcile_after=600.0) as service:
        job = await journal_unknown(service, "retry a fresh one", seed=6)
        retried = await service.retry_job(job.id)
        assert retried.job_id != job.id
        old = await service.get_job(job.id)
        assert old.status == "failed"
        assert f"retried as job {retried.job_id}" in (old.error or "")
        assert await service.resume() == []
    assert emu.stats.submits == 1


def test_the_reconcile_command(emu: EmulatorServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(emu, home, FALKIT_RECONCILE_AFTER="0")
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    lost = falkit_cli("generate", "lost answer", "--seed", "1", env=env)
    assert lost.returncode != 0
    assert "falkit jobs reconcile" in lost.stderr
    assert statuses(home / "falkit.db") == {"unknown": 1}
    done = falkit_cli("jobs", "reconcile", "--json", env=env)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["verdict"] == "found"
    assert row["status"] == "completed"
    assert statuses(home / "falkit.db") == {"completed": 1}
    again = falkit_cli("jobs", "reconcile", env=env)
    assert again.returncode == 0
    assert "reconciled 0 job(s)" in again.stderr
    assert emu.stats.submits == 1
