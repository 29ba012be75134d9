"""The engine's rules for handles, cancels and closing, over the same harness as
test_engine_rules.py (a scripted fake Fal, a SQLite journal, polls every 10 ms).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from falkit.errors import (
    FalkitError,
    JobCancelledError,
)
from falkit.events import CancelledEvent, CompletedEvent, QueuedEvent
from falkit.service.budget import Budget
from falkit.service.engine_parts import error_type
from falkit.service.handle import LiveJob
from falkit.store import JobRecord
from falkit.types import FalResponse
from tests.client.fakes import REQUEST_ID, FakeFal, status_body
from tests.engine.harness import (
    RESULT,
    STATUS,
    SUBMIT,
    Held,
    cancellable_fal,
    done_fal,
    queued,
    until_queued,
)

# ---- handles ----


async def test_handles_come_from_this_engine(harness: Any) -> None:
    transport = Held()
    h = harness(transport, submit_grace=0.01)
    record = await h.job()
    handle = h.engine.attach(record, h.finish)
    assert handle.kind == "image"
    assert handle.job_id == record.id
    await asyncio.wait_for(transport.arrived.wait(), 10)
    (running,) = h.engine.running()
    found = h.engine.get(record.id)
    assert found is not None
    for each in (handle, running, found):
        assert each._engine is h.engine
        assert each.job_id == record.id
        assert each.state == "submitting"
    assert h.engine.get("j_nobody") is None


async def test_an_ended_jobs_handle_knows_its_record_and_engine(harness: Any) -> None:
    h = harness(FakeFal().transport)
    record = await h.job()
    handle = h.engine.ended(record, CompletedEvent(record.id, None), None, error=False)
    assert handle.record == record
    assert await handle.cancel() == f"ALREADY_{record.status.upper()}"


def test_an_error_type_that_is_not_text_is_none() -> None:
    odd = FalkitError("x")
    odd.error_type = 5  # type: ignore[attr-defined]
    assert error_type(odd) is None


async def test_a_job_cancelled_while_preparing_ends_cancelled_and_journals_nothing(
    harness: Any,
) -> None:
    h = harness(FakeFal().transport)
    preparing = asyncio.Event()

    async def prepare(emit: Any) -> JobRecord:
        preparing.set()
        await asyncio.Event().wait()  # an upload that never ends
        raise AssertionError("unreachable")

    budget = Budget(limit=1.0)
    handle = h.engine.launch("j_prep", "image", finish=h.finish, prepare=prepare, estimate=0.5,
                             budgets=[budget])  # fmt: skip
    await asyncio.wait_for(preparing.wait(), 10)
    assert handle.state == "preparing"
    assert await handle.cancel() == "OK"
    with pytest.raises(JobCancelledError, match="j_prep was cancelled"):
        await handle.result()
    assert handle.state == "cancelled"
    assert budget.committed == 0.0
    assert await h.store.get_job("j_prep") is None


async def test_a_webhook_job_waits_for_its_delivery_until_told_to_follow(harness: Any) -> None:
    fal = done_fal()
    h = harness(fal.transport, webhook_url="https://me.example/hook", webhook_grace=60.0)
    record = await h.job()
    handle = h.launch(record)
    await until_queued(handle)
    (posted,) = [r for r in fal.requests if r.method == "POST"]
    assert posted.url.params["fal_webhook"] == "https://me.example/hook"
    assert fal.count("GET", STATUS) == 0  # waiting for the webhook, not polling
    assert h.engine.follow_now(REQUEST_ID)
    await asyncio.wait_for(handle.result(), 10)
    assert fal.count("GET", STATUS) >= 1
    assert not h.engine.follow_now(REQUEST_ID)  # no longer waiting


class _Gated(httpx.AsyncBaseTransport):
    """A fake Fal whose submits wait at a gate until ``open()`` (a POST on the wire)."""

    def __init__(self, fal: FakeFal) -> None:
        self.fal = fal
        self.arrived = asyncio.Event()
        self._open = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.arrived.set()
            await self._open.wait()
        return self.fal.handler(request)


async def test_a_cancel_during_the_post_waits_for_it_then_cancels_at_fal(harness: Any) -> None:
    fal = cancellable_fal()
    gated = _Gated(fal)
    h = harness(gated)
    record = await h.job()
    handle = h.launch(record)
    await asyncio.wait_for(gated.arrived.wait(), 10)
    assert handle.state == "submitting"
    cancelling = asyncio.ensure_future(handle.cancel())
    await asyncio.sleep(0)  # one loop turn: the cancel is waiting for the POST's answer
    assert not cancelling.done()
    gated.open()
    assert await asyncio.wait_for(cancelling, 10) == "CANCELLATION_REQUESTED"
    with pytest.raises(JobCancelledError):
        await handle.result()
    assert fal.count("POST", SUBMIT) == 1
    assert fal.count("PUT", f"{RESULT}/cancel") == 1
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert (stored.status, stored.request_id) == ("cancelled", REQUEST_ID)


async def test_a_job_waiting_for_a_lane_is_cancelled_or_held_without_being_sent(
    harness: Any,
) -> None:
    fal = done_fal()
    gated = _Gated(fal)
    h = harness(gated, submit_lanes=1)
    first = await h.job()
    h.launch(first)
    await asyncio.wait_for(gated.arrived.wait(), 10)  # the only lane is taken

    budget = Budget(limit=1.0)
    waiting = await h.job()
    cancelled = h.engine.launch(waiting.id, "image", finish=h.finish, record=waiting,
                                estimate=0.5, budgets=[budget])  # fmt: skip
    held_record = await h.job()
    held = h.engine.launch(held_record.id, "image", finish=h.finish, record=held_record,
                           estimate=0.25, budgets=[budget])  # fmt: skip
    await asyncio.sleep(0)  # both tasks run up to the lane
    assert budget.in_flight == 0.75
    assert await cancelled.cancel() == "OK"
    with pytest.raises(JobCancelledError) as caught:
        await cancelled.result()
    assert str(caught.value) == f"job {waiting.id} was cancelled"
    assert held.stop_unsent()
    with pytest.raises(FalkitError) as stopped:
        await held.result()
    assert str(stopped.value) == f"job {held_record.id} was held before it was sent"
    assert budget.committed == 0.0
    gated.open()
    cancelled_row = await h.store.get_job(waiting.id)
    held_row = await h.store.get_job(held_record.id)
    assert cancelled_row is not None
    assert held_row is not None
    assert (cancelled_row.status, cancelled_row.error) == ("cancelled", "cancelled before submit")
    assert (held_row.status, held_row.error) == ("pending", None)
    assert fal.count("POST", SUBMIT) == 1


async def test_closing_the_service_detaches_a_followed_job(harness: Any) -> None:
    fal = (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, httpx.Response(200, json=status_body("IN_QUEUE", queue_position=3)))
    )
    h = harness(fal.transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    await until_queued(handle)
    await h.engine.aclose()
    with pytest.raises(FalkitError) as caught:
        await handle.result()
    assert str(caught.value) == (
        f"stopped following job {record.id}: the service was closed; "
        "`falkit jobs resume` finishes it"
    )
    assert handle.state == "detached"
    assert budget.committed == 0.0  # this engine no longer counts it
    with pytest.raises(FalkitError, match="the job engine is closed"):
        h.engine.launch("j_new", "image", finish=h.finish, record=record)


async def test_cancelling_a_job_not_here(harness: Any) -> None:
    h = harness(FakeFal().transport)
    from falkit.errors import LookupFailedError

    with pytest.raises(LookupFailedError) as caught:
        await h.engine.cancel("j_elsewhere")
    assert str(caught.value) == "job j_elsewhere is not running here"


async def test_a_cluster_cancels_its_jobs_through_the_dispatcher(harness: Any) -> None:
    transport = Held()
    h = harness(transport, submit_grace=0.01)
    record = await h.job()
    handle = h.launch(record)
    asked: list[Any] = []

    async def cancel(live: LiveJob) -> str:
        asked.append(live)
        return "PASSED_ON"

    h.engine.dispatcher = SimpleNamespace(cancel=cancel)
    assert await handle.cancel() == "PASSED_ON"
    assert [live.job_id for live in asked] == [record.id]
    h.engine.dispatcher = None


async def test_a_journal_that_fails_during_a_cancel_still_ends_the_job(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancelled job's row cannot be written (the database went away): the handle still
    ends, cancelled, instead of waiting forever."""
    from falkit.errors import StoreError

    gated = _Gated(done_fal())
    h = harness(gated, submit_lanes=1)
    first = await h.job()
    h.launch(first)
    await asyncio.wait_for(gated.arrived.wait(), 10)
    waiting = await h.job()
    handle = h.launch(waiting)
    await asyncio.sleep(0)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("library database error: disk I/O error")

    monkeypatch.setattr(h.store, "fail_job", broken)
    await handle.cancel()
    with pytest.raises(JobCancelledError):
        await asyncio.wait_for(handle.result(), 10)
    gated.open()


@pytest.mark.parametrize(
    ("answer", "charged"),
    [
        ("CANCELLATION_REQUESTED", True),  # Fal: it may still run (it was about to leave)
        ("OK", False),  # removed from the queue: never billed
    ],
)
async def test_a_queued_job_cancelled_keeps_its_money_only_while_fal_may_run_it(
    harness: Any, answer: str, charged: bool
) -> None:
    fal = cancellable_fal(httpx.Response(202 if charged else 200, json={"status": answer}))
    h = harness(fal.transport)
    record = await h.job(estimate=0.5)
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    await handle.wait_while(("pending", "submitting"), 10)
    assert await handle.cancel() == answer
    with pytest.raises(JobCancelledError):
        await handle.result()
    assert not handle.started
    (last,) = [e for e in handle.history() if isinstance(e, CancelledEvent)]
    assert last.charged is charged
    assert (budget.held, budget.in_flight) == ((0.5 if charged else 0.0), 0.0)
    assert handle.state == "cancelled"


async def test_a_job_whose_preparation_fails_ends_failed_and_frees_its_money(
    harness: Any,
) -> None:
    h = harness(FakeFal().transport)
    budget = Budget(limit=1.0)

    async def prepare(emit: Any) -> JobRecord:
        raise FalkitError("LoRA 'nobody' is not in your library")

    handle = h.engine.launch("j_prep", "image", finish=h.finish, prepare=prepare, estimate=0.5,
                             budgets=[budget])  # fmt: skip
    with pytest.raises(FalkitError, match="not in your library"):
        await handle.result()
    assert handle.state == "failed"
    assert budget.committed == 0.0


async def test_closing_before_a_jobs_task_ran_ends_its_handle(harness: Any) -> None:
    h = harness(done_fal().transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    await h.engine.aclose()  # no loop turn in between: the task never ran
    assert handle.done
    with pytest.raises(FalkitError):
        await handle.result()
    assert h.engine.running() == []
    assert budget.committed == 0.0  # never sent: nothing to count
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert stored.status == "pending"  # journaled, for `falkit jobs resume`


async def test_a_webhook_job_asks_fal_nothing_while_it_waits_and_a_delivery_finishes_it(
    harness: Any,
) -> None:
    polled = asyncio.Event()

    def status(request: httpx.Request) -> httpx.Response:
        polled.set()
        return httpx.Response(200, json=status_body("COMPLETED"))

    fal = FakeFal().on("POST", SUBMIT, queued()).on("GET", STATUS, status)
    h = harness(fal.transport, webhook_url="https://me.example/hook", webhook_grace=60.0)
    record = await h.job()
    handle = h.launch(record)
    await until_queued(handle)
    with pytest.raises(TimeoutError):  # polls every 10 ms when following: 30 polls' time
        await asyncio.wait_for(polled.wait(), 0.3)
    output = {"images": [{"url": "https://v3.fal.media/files/x.png"}]}
    assert h.engine.deliver(REQUEST_ID, FalResponse(request_id=REQUEST_ID, data=output))
    await asyncio.wait_for(handle.result(), 10)
    assert [r.method for r in fal.requests] == ["POST"]  # one request to Fal in all
    assert h.finished[0].data == output


async def test_a_webhook_that_never_comes_leaves_the_job_followed_after_the_grace(
    harness: Any,
) -> None:
    fal = done_fal()
    h = harness(fal.transport, webhook_url="https://me.example/hook", webhook_grace=0.05)
    record = await h.job()
    handle = h.launch(record)
    await asyncio.wait_for(handle.result(), 10)  # followed once the grace ran out
    assert fal.count("GET", STATUS) >= 1
    assert not h.engine.follow_now(REQUEST_ID)  # no longer waiting for the webhook


async def test_a_submit_answer_without_a_position_is_next_in_line(harness: Any) -> None:
    answer = queued().json()
    del answer["queue_position"]
    h = harness(done_fal().on("POST", SUBMIT, httpx.Response(200, json=answer)).transport)
    record = await h.job()
    handle = h.launch(record)
    await asyncio.wait_for(handle.result(), 10)
    (first,) = [e for e in handle.history() if isinstance(e, QueuedEvent)]
    assert (first.position, first.request_id) == (0, REQUEST_ID)
