"""Truthful submit states: a submit that certainly did not reach Fal leaves the job ``pending``
(or ``failed`` with no request id when Fal refused it for good), never ``unknown``; one that
may have reached Fal is ``unknown`` and reconciled; a live submitter's job is left to it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falkit.client.retry import RetryPolicy
from falkit.emulator import EmulatorConfig, EmulatorServer, Fault, run_emulator
from falkit.errors import (
    AuthenticationError,
    FalkitError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from falkit.service import FalService
from falkit.service.engine import EngineOptions
from falkit.store import JobRecord
from tests.hardening.reconcile_support import (
    cli_env,
    default_sigint,
    falkit_cli,
    gated_emulator,
    job_rows,
    service_for,
    wait_for,
)

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, deadline=10)


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.05, concurrency=4)) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pointed(emu: EmulatorServer, queue_url: str | None = None, **options: Any) -> FalService:
    engine = EngineOptions(retry=FAST, **options)
    service = service_for(emu)
    if queue_url is not None:
        service._settings = service.settings.model_copy(update={"queue_url": queue_url})
    service._engine_options = engine
    return service


async def _only_job(service: FalService) -> JobRecord:
    (job,) = await service.list_jobs()
    return job


async def _resumed_once(emu: EmulatorServer, job: JobRecord) -> None:
    """The job, still unsent, goes out exactly once when the way to Fal works again."""
    async with service_for(emu) as service:
        (result,) = await service.resume()
        assert result.job_id == job.id
        assert result.status == "completed"
    assert emu.stats.submits == 1


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("refused", TransportError),
        ("dns", TransportError),
        ("scheme", TransportError),
    ],
)
async def test_unreachable_fal_leaves_the_job_pending(
    emu: EmulatorServer, where: str, error: type[FalkitError]
) -> None:
    url = {
        "refused": f"http://127.0.0.1:{_closed_port()}/queue",
        "dns": "http://falkit-nowhere.invalid/queue",
        "scheme": "ftp://127.0.0.1/queue",  # a bad configured URL: httpx cannot send to it
    }[where]
    async with _pointed(emu, url) as service:
        with pytest.raises(error):
            await service.generate_image(f"unreachable by {where}", seed=1)
        job = await _only_job(service)
    assert (job.status, job.request_id, job.submitter) == ("pending", None, None)
    await _resumed_once(emu, job)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(route="submit", kind="429", times=None, retry_after=0.01), RateLimitedError),
        (Fault(route="submit", kind="5xx", times=None), ServerError),  # ingress: no request id
    ],
)
async def test_refusals_before_the_queue_leave_the_job_pending(
    emu: EmulatorServer, fault: Fault, error: type[FalkitError]
) -> None:
    emu.faults.add(fault)
    async with _pointed(emu) as service:
        with pytest.raises(error):
            await service.generate_image("throttled", seed=2)
        job = await _only_job(service)
    assert (job.status, job.request_id) == ("pending", None)
    assert emu.stats.submits == 0
    emu.faults.clear()
    await _resumed_once(emu, job)


async def test_a_request_fal_refuses_for_good_fails_without_a_request_id(
    emu: EmulatorServer,
) -> None:
    """4xx at submit (no such app, bad key): the same POST would be refused again, so the job
    ends failed, never unknown; its missing request id says it was never queued."""
    async with _pointed(emu) as service:
        with pytest.raises(NotFoundError):
            await service.generate_image("nowhere", model="fal-ai/no-such-app")
        emu.engine.config.api_keys = {"some-other-key:secret"}
        with pytest.raises(AuthenticationError):
            await service.generate_image("refused key", seed=3)
        jobs = await service.list_jobs()
    assert sorted((j.status, j.request_id, j.error_type) for j in jobs) == [
        ("failed", None, None),
        ("failed", None, None),
    ]
    assert emu.stats.submits == 0


async def test_a_job_stopped_while_waiting_for_a_lane_stays_pending(
    emu: EmulatorServer,
) -> None:
    server, gate = gated_emulator(EmulatorConfig(latency=0.05))
    with server:
        async with _pointed(server, submit_lanes=1) as service:
            first = await service.start_image(service.request("holds the only lane", seed=1))
            await asyncio.to_thread(gate.holding.wait, 30)
            second = await service.start_image(service.request("waits for the lane", seed=2))
            assert second.stop_unsent()  # what Ctrl-C does to a job not yet sent
            with pytest.raises(FalkitError, match="held before it was sent"):
                await second.result()
            gate.open()
            await first.result()
            store = await service.store()
            held = await store.get_job(second.job_id)
    assert held is not None
    assert (held.status, held.request_id, held.submitter) == ("pending", None, None)
    assert server.stats.submits == 1


async def test_a_post_stopped_before_its_bytes_left_stays_pending(emu: EmulatorServer) -> None:
    """One connection, held by a slow read: the submit waits for it inside httpx. Closing the
    service then stops the POST before any byte left, so the job goes back to pending."""
    emu.faults.add(Fault(route="history", kind="slow", delay=5.0))
    service = _pointed(emu, connections=1, submit_grace=0.05)
    client = service.client()
    blocker = asyncio.ensure_future(
        client.platform.request_history("fal-ai/flux/schnell", start=_now())
    )
    await _until(lambda: emu.stats.requests["history"] == 1)
    handle = await service.start_image(service.request("never left", seed=4))
    store = await service.store()
    await _until_async(lambda: _status(store, handle.job_id, "submitting"))
    await service.aclose()
    blocker.cancel()
    async with service_for(emu) as again:
        job = await again.get_job(handle.job_id)
    assert (job.status, job.request_id) == ("pending", None)
    assert emu.stats.submits == 0


async def test_a_post_stopped_after_its_bytes_left_is_unknown_then_found() -> None:
    """The POST reached the emulator, which queued the job and holds its answer; the service
    stops waiting: unknown, not pending. Reconciling finds the request: exactly one submit."""
    server, gate = gated_emulator(EmulatorConfig(latency=0.05), hold="response")
    with server:
        service = _pointed(server, submit_grace=0.05)
        handle = await service.start_image(service.request("on the wire", seed=5))
        await asyncio.to_thread(gate.holding.wait, 30)
        await service.aclose()
        async with service_for(server) as again:
            assert (await again.get_job(handle.job_id)).status == "unknown"
            gate.open()
            ((found, result),) = await again.reconcile()
        assert found.verdict == "found"
        assert result.status == "completed"
        assert server.stats.submits == 1


@pytest.mark.parametrize("throttled_first", [False, True], ids=["slow", "429-then-slow"])
def test_resume_next_to_a_slow_submit_leaves_it_to_its_submitter(
    tmp_path: Path, throttled_first: bool
) -> None:
    """`falkit generate` in one process is mid-submit (held at the emulator, after a 429 with
    Retry-After in the second case); `falkit jobs resume` and `falkit jobs reconcile` in others
    leave the job alone; the generate completes it; exactly one submit."""
    server, gate = gated_emulator(
        EmulatorConfig(latency=0.05), hold_from=2 if throttled_first else 1
    )
    if throttled_first:
        server.faults.add(Fault(route="submit", kind="429", retry_after=0.2))
    home = tmp_path / "home"
    with server:
        env = cli_env(server, home, FALKIT_RECONCILE_AFTER="0")
        generate = subprocess.Popen(
            [sys.executable, "-m", "falkit", "generate", "a slow submit", "--seed", "1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, preexec_fn=default_sigint,
        )  # fmt: skip
        try:
            wait_for(lambda: gate.holding.is_set(), "the submit to reach the emulator")
            (row,) = job_rows(home / "falkit.db")
            assert row["status"] == "submitting"
            resumed = falkit_cli("jobs", "resume", env=env)
            assert "left to it" in resumed.stderr, resumed.stderr
            reconciled = falkit_cli("jobs", "reconcile", env=env)
            assert reconciled.returncode == 0, reconciled.stderr
            (row,) = job_rows(home / "falkit.db")
            assert row["status"] == "submitting"
            gate.open()
            _out, err = generate.communicate(timeout=120)
        finally:
            gate.open()
            if generate.poll() is None:
                generate.kill()
                generate.wait()
        assert generate.returncode == 0, err
        (row,) = job_rows(home / "falkit.db")
        assert row["status"] == "completed"
        assert server.stats.submits == 1
        assert server.stats.requests["submit"] == (2 if throttled_first else 1)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


async def _status(store: Any, job_id: str, status: str) -> bool:
    job = await store.get_job(job_id)
    return job is not None and job.status == status


async def _until(check: Any, deadline: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


async def _until_async(check: Any, deadline: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)
