"""The engine's rules, one at a time and fast: a scripted fake Fal (tests/client/fakes.py), a
SQLite journal, polls every 10 ms. Each test pins something the mutation run found no test
for (docs/testing.md): which URLs a reattached job uses, how a refused or cut-off submit is
journaled, what a delivery or an ended job gives back, when a budget keeps a job's money.
(Handles, cancels and closing: test_engine_cancels.py.)
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from falkit.errors import (
    ApiError,
    BudgetExceededError,
    FalkitError,
    JobCancelledError,
    JobFailedError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
)
from falkit.events import CompletedEvent, FailedEvent, NoteEvent, QueuedEvent
from falkit.service import engine_parts
from falkit.service.budget import Budget
from falkit.service.engine_parts import UNCERTAIN_HINT, close_budgets, error_type
from falkit.service.handle import LiveJob
from falkit.store import JobStore
from falkit.types import FalResponse
from tests.client.fakes import KEY, QUEUE, REQUEST_ID, FakeFal, status_body
from tests.engine.harness import (
    BASE,
    ENDPOINT,
    RESULT,
    STATUS,
    SUBMIT,
    Held,
    done_fal,
    queued,
    until_queued,
)

# ---- a job's whole life, quickly ----


async def test_a_job_is_submitted_followed_finished_and_settled(harness: Any) -> None:
    fal = done_fal()
    h = harness(fal.transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    assert [live.job_id for live in h.engine.running()] == [record.id]
    assert budget.in_flight == 0.5
    result = await handle.result()
    assert result.cost_usd == 0.25
    assert (budget.spent, budget.in_flight) == (0.25, 0.0)
    assert handle.state == "completed"
    events = handle.history()
    assert isinstance(events[0], QueuedEvent)
    assert (events[0].position, events[0].request_id) == (2, REQUEST_ID)
    assert isinstance(events[-1], CompletedEvent)
    stored = await h.store.get_job(record.id)
    assert stored is not None
    # the finish step (here a stub) records completion; the engine saw it run
    assert (stored.status, stored.request_id) == ("running", REQUEST_ID)
    assert stored.status_url == f"{BASE}/status"
    assert fal.count("POST", SUBMIT) == 1
    assert h.engine.running() == []
    assert h.engine.get(record.id) is not None  # kept for late readers


async def test_a_delivered_output_is_scrubbed_and_finishes_the_job(harness: Any) -> None:
    fal = (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, httpx.Response(200, json=status_body("IN_PROGRESS")))
    )
    h = harness(fal.transport)
    record = await h.job()
    handle = h.launch(record)
    await until_queued(handle)
    output = FalResponse(request_id=REQUEST_ID, data={"images": [], "echo": f"key {KEY}"})
    assert h.engine.deliver(REQUEST_ID, output)
    await handle.result()
    (seen,) = h.finished
    assert seen.request_id == REQUEST_ID
    assert KEY not in str(seen.data)
    assert "echo" in seen.data
    assert not h.engine.deliver(REQUEST_ID, output)  # nobody waits for it any more


async def test_deliveries_for_jobs_elsewhere_go_to_the_dispatcher(harness: Any) -> None:
    h = harness(FakeFal().transport)
    passed: list[tuple[str, FalResponse]] = []
    h.engine.dispatcher = SimpleNamespace(
        deliver=lambda rid, response: passed.append((rid, response)) or True,
        follow_now=lambda rid: rid == "elsewhere",
    )
    output = FalResponse(request_id="elsewhere", data={})
    assert h.engine.deliver("elsewhere", output)
    assert passed == [("elsewhere", output)]
    assert h.engine.follow_now("elsewhere")
    assert not h.engine.follow_now("nowhere")


async def test_without_a_dispatcher_an_unknown_delivery_is_refused(harness: Any) -> None:
    h = harness(FakeFal().transport)
    assert not h.engine.deliver("nobody", FalResponse(request_id="nobody", data={}))
    assert not h.engine.follow_now("nobody")


# ---- submits that fail ----


async def test_a_submit_refused_for_good_fails_with_the_reason_and_its_type(
    harness: Any,
) -> None:
    body = {"detail": [{"loc": ["body", "num_images"], "msg": "too many", "type": "x"}]}
    fal = FakeFal().on("POST", SUBMIT, httpx.Response(422, json=body))
    h = harness(fal.transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    with pytest.raises(FalkitError) as caught:
        await handle.result()
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert (stored.status, stored.request_id) == ("failed", None)
    assert stored.error == str(caught.value)
    assert stored.error_type == error_type(caught.value)
    assert stored.error_type == "validation_error"
    assert budget.committed == 0.0  # refused: never billed
    last = handle.history()[-1]
    assert isinstance(last, FailedEvent)
    assert (last.job_id, last.error, last.error_type) == (
        record.id,
        str(caught.value),
        "validation_error",
    )
    assert handle.state == "failed"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (httpx.Response(500, json={"detail": "boom"}), "pending"),  # no app saw it
        (httpx.Response(429), "pending"),
        (httpx.Response(401, json={"detail": "bad key"}), "failed"),
        (httpx.Response(499, json={"detail": "odd"}), "failed"),
    ],
)
async def test_a_submit_that_certainly_missed_goes_back_to_pending(
    harness: Any, reply: httpx.Response, status: str
) -> None:
    fal = FakeFal().on("POST", SUBMIT, reply)
    h = harness(fal.transport)
    record = await h.job()
    handle = h.launch(record)
    with pytest.raises(FalkitError):
        await handle.result()
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert (stored.status, stored.request_id, stored.submitter) == (
        status,
        None,
        None if status == "pending" else stored.submitter,
    )


@pytest.mark.parametrize(
    ("reply", "request_id"),
    [
        (httpx.ReadTimeout("slow"), None),
        # an app's own 5xx: it was queued under this id (reconcile looks it up)
        (httpx.Response(500, json={"detail": "boom"}, headers={"x-fal-request-id": "r-5"}), "r-5"),
    ],
)
async def test_an_uncertain_submit_is_unknown_and_keeps_its_money(
    harness: Any, reply: Any, request_id: str | None
) -> None:
    fal = FakeFal().on("POST", SUBMIT, reply)
    h = harness(fal.transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    with pytest.raises(SubmitUncertainError) as caught:
        await handle.result()
    assert str(caught.value).endswith(UNCERTAIN_HINT)
    assert caught.value.request_id == request_id
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert stored.status == "unknown"
    assert stored.error == str(caught.value)
    assert (budget.held, budget.in_flight) == (0.5, 0.0)
    assert fal.count("POST", SUBMIT) == 1


async def test_a_submit_cut_off_on_the_wire_is_unknown_with_the_hint(harness: Any) -> None:
    transport = Held()
    h = harness(transport, submit_grace=0.01)
    record = await h.job()
    handle = h.launch(record)
    await asyncio.wait_for(transport.arrived.wait(), 10)
    await h.engine.aclose()
    with pytest.raises(FalkitError, match="the service was closed"):
        await handle.result()
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert stored.status == "unknown"
    assert stored.error == "interrupted while submitting; " + UNCERTAIN_HINT
    assert handle.state == "detached"


# ---- reattaching ----


def _record(**fields: Any) -> Any:
    base: dict[str, Any] = {"id": "j_1", "endpoint_id": ENDPOINT, "request_id": "r-9"}
    base.update(status_url=None, response_url=None, cancel_url=None)
    return SimpleNamespace(**{**base, **fields})


async def test_stored_urls_under_the_queue_are_used_as_they_are(harness: Any) -> None:
    h = harness(FakeFal().transport)
    urls = {name: f"{QUEUE}/custom/{name}" for name in ("status_url", "response_url", "cancel_url")}
    handle = h.engine._handle_for(_record(**urls))
    assert (handle.endpoint_id, handle.request_id) == (ENDPOINT, "r-9")
    assert (handle.status_url, handle.response_url, handle.cancel_url) == (
        urls["status_url"],
        urls["response_url"],
        urls["cancel_url"],
    )


@pytest.mark.parametrize("missing", ["status_url", "response_url", "cancel_url"])
async def test_urls_missing_or_elsewhere_are_rebuilt_under_the_queue(
    harness: Any, missing: str
) -> None:
    h = harness(FakeFal().transport)
    urls: dict[str, Any] = {
        name: f"{QUEUE}/custom/{name}" for name in ("status_url", "response_url", "cancel_url")
    }
    rebuilt = h.client.handle(ENDPOINT, "r-9")
    for broken in (None, f"https://elsewhere.example/{missing}", f"{QUEUE}evil.example/x"):
        handle = h.engine._handle_for(_record(**{**urls, missing: broken}))
        assert handle == rebuilt
        assert (handle.endpoint_id, handle.request_id) == (ENDPOINT, "r-9")


async def test_a_job_attached_twice_while_it_runs_is_run_once(harness: Any) -> None:
    """A queue that hands a worker the same job again (a late heartbeat) or a second resume:
    the running job's handle, not a second run of it."""
    fal = done_fal()
    h = harness(fal.transport)
    record = await h.job()
    first = h.engine.attach(record, h.finish)
    second = h.engine.attach(record, h.finish)
    assert len(h.engine.running()) == 1
    assert (await first.result()) is (await second.result())
    assert fal.count("POST", SUBMIT) == 1
    assert len(h.finished) == 1


# ---- handles on jobs this engine did not run ----


async def test_a_handle_on_an_ended_job_tells_its_end(harness: Any, store: JobStore) -> None:
    h = harness(FakeFal().transport)
    record = await h.job()
    final = CompletedEvent(record.id, "the result")
    handle = h.engine.ended(record, final, "the result", error=False)
    assert handle.done
    assert handle.job_id == record.id
    assert handle.kind == "image"
    assert handle.state == record.status
    assert await handle.result() == "the result"
    assert [event.seq for event in handle.history()] == [1]
    assert h.engine.get(record.id) is not None
    assert h.engine.running() == []

    failed = JobFailedError("it broke")
    other = await h.job()
    bad = h.engine.ended(other, FailedEvent(other.id, "it broke", None), failed, error=True)
    with pytest.raises(JobFailedError, match="it broke"):
        await bad.result()
    assert isinstance(bad.history()[0], FailedEvent)


async def test_a_job_held_before_its_task_ran_ends_detached_and_frees_its_money(
    harness: Any,
) -> None:
    h = harness(FakeFal().on("POST", SUBMIT, queued()).transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    assert handle.stop_unsent()  # at once: the job's task has not run yet
    with pytest.raises(FalkitError, match="held before it was sent"):
        await handle.result()
    assert handle.state == "detached"
    assert budget.committed == 0.0
    assert h.engine.running() == []
    assert h.engine.get(record.id) is not None
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert stored.status == "pending"


# ---- which endings keep a job's money ----


@pytest.mark.parametrize(
    ("request_id", "error", "kept"),
    [
        (None, SubmitUncertainError("maybe sent"), True),
        ("r-1", SubmitUncertainError("maybe sent"), True),
        ("r-1", TransportError("stopped following"), True),  # at Fal, no longer followed
        ("r-1", FalkitError("closed"), True),
        ("r-1", JobFailedError("Fal says it failed"), False),
        (None, TransportError("never connected"), False),
        (None, ApiError("refused", status_code=422), False),
        (None, JobFailedError("failed"), False),
    ],
)
async def test_a_budget_keeps_what_fal_may_still_bill(
    request_id: str | None, error: FalkitError, kept: bool
) -> None:
    budgets = (Budget(limit=1.0), Budget(limit=2.0))
    live = LiveJob("j_1", "image", SimpleNamespace(request_id=request_id), 0.5, budgets)
    for budget in budgets:
        budget.reserve("j_1", 0.5)
    close_budgets(live, error)
    for budget in budgets:
        assert (budget.held, budget.in_flight) == ((0.5, 0.0) if kept else (0.0, 0.0))


async def test_a_job_with_no_record_yet_is_never_billed() -> None:
    budget = Budget(limit=1.0)
    budget.reserve("j_1", 0.5)
    close_budgets(LiveJob("j_1", "image", None, 0.5, (budget,)), FalkitError("prepare failed"))
    assert (budget.held, budget.in_flight) == (0.0, 0.0)


def test_error_types() -> None:
    assert error_type(ValidationError("bad")) == "validation_error"
    assert error_type(JobFailedError("x", error_type="runner_disconnected")) == (
        "runner_disconnected"
    )
    assert error_type(JobCancelledError("x")) is None
    assert error_type(ValueError("x")) is None


# ---- jobs that end at Fal ----


@pytest.mark.parametrize(
    ("error_type", "cancel", "status", "raised"),
    [
        (None, False, "failed", JobFailedError),
        ("runner_disconnected", False, "failed", JobFailedError),
        ("request_cancelled", False, "cancelled", JobCancelledError),
        (None, True, "cancelled", JobCancelledError),  # our cancel, Fal gave no type
        ("runner_disconnected", True, "failed", JobFailedError),  # failed before the cancel
    ],
)
async def test_a_job_fal_ended_with_an_error_is_journaled_as_it_ended(
    harness: Any, error_type: str | None, cancel: bool, status: str, raised: type[Exception]
) -> None:
    ended = status_body("COMPLETED", error="it went wrong", error_type=error_type)
    cancelled = asyncio.Event()

    def state(request: httpx.Request) -> httpx.Response:
        if cancel and not cancelled.is_set():
            return httpx.Response(200, json=status_body("IN_QUEUE", queue_position=0))
        return httpx.Response(200, json=ended)

    def cancel_reply(request: httpx.Request) -> httpx.Response:
        cancelled.set()
        return httpx.Response(202, json={"status": "CANCELLATION_REQUESTED"})

    fal = (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, state)
        .on("PUT", f"{RESULT}/cancel", cancel_reply)
    )
    h = harness(fal.transport)
    record = await h.job()
    handle = h.launch(record)
    if cancel:
        await until_queued(handle)
        assert await handle.cancel() == "CANCELLATION_REQUESTED"
    with pytest.raises(raised) as caught:
        await handle.result()
    assert caught.value.request_id == REQUEST_ID
    assert caught.value.error_type == error_type
    words = "was cancelled" if status == "cancelled" else "failed: it went wrong"
    assert str(caught.value) == f"job {record.id} {words}"
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert (stored.status, stored.error, stored.error_type) == (status, "it went wrong", error_type)
    assert handle.state == status
    assert fal.count("GET", RESULT) == 0  # a failed job's result is never asked for


@pytest.mark.parametrize(
    ("status_replies", "journaled"),
    [
        ([httpx.Response(403, json={"detail": "forbidden"})], "submitted"),  # status refused
        ([httpx.Response(200, json=status_body("COMPLETED"))], "running"),  # result refused
    ],
)
async def test_a_job_that_cannot_be_followed_is_detached_and_keeps_its_money(
    harness: Any, status_replies: list[httpx.Response], journaled: str
) -> None:
    fal = (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, *status_replies)
        .on("GET", RESULT, httpx.Response(403, json={"detail": "forbidden"}))
    )
    h = harness(fal.transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    with pytest.raises(ApiError):
        await asyncio.wait_for(handle.result(), 10)
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert stored.status == journaled
    assert handle.state == "detached"  # still at Fal: `falkit jobs resume` picks it up
    assert (budget.held, budget.in_flight) == (0.5, 0.0)


@pytest.mark.parametrize(
    ("endpoint", "units", "billed"),
    [
        ("fal-ai/flux/dev", "3", 0.075),  # 3 megapixels at $0.025: what Fal billed counts
        ("fal-ai/flux/dev", None, 0.5),  # no billable units: the estimate still counts
        ("someone/custom-model", "3", 0.5),  # no price known: the estimate still counts
    ],
)
async def test_once_fal_answers_a_job_counts_what_it_billed_while_it_finishes(
    harness: Any, endpoint: str, units: str | None, billed: float
) -> None:
    headers = {"x-fal-billable-units": units} if units is not None else {}
    fal = (  # the submit's answer points status and result at the same paths for any endpoint
        FakeFal()
        .on("POST", f"/{endpoint}", queued())
        .on("GET", STATUS, httpx.Response(200, json=status_body("COMPLETED")))
        .on("GET", RESULT, httpx.Response(200, json={"images": []}, headers=headers))
    )
    h = harness(fal.transport)
    record = await h.store.create_job(
        kind="image", model=endpoint, endpoint_id=endpoint, arguments={"prompt": "a fox"},
        estimated_cost=0.5,
    )  # fmt: skip
    budget = Budget(limit=1.0)
    seen: list[tuple[float, float]] = []

    async def finish(record: Any, response: FalResponse, emit: Any) -> Any:
        seen.append((budget.in_flight, budget.spent))
        return SimpleNamespace(cost_usd=None, job_id=record.id)

    handle = h.engine.launch(record.id, "image", finish=finish, record=record, estimate=0.5,
                             budgets=[budget])  # fmt: skip
    await asyncio.wait_for(handle.result(), 10)
    assert seen == [(billed, 0.0)]
    assert (budget.spent, budget.in_flight) == (billed, 0.0)  # settled: no cost recorded


async def test_a_handle_tells_the_queue_position_then_that_the_job_started(
    harness: Any,
) -> None:
    moving = asyncio.Event()
    polls: list[str] = []

    def state(request: httpx.Request) -> httpx.Response:
        if not moving.is_set():  # first where the submit said (4), then next in line but one
            body = status_body("IN_QUEUE", queue_position=1 if polls else 4)
        else:
            body = status_body("IN_PROGRESS" if "moving" not in polls else "COMPLETED")
        polls.append("moving" if moving.is_set() else "queued")
        return httpx.Response(200, json=body)

    fal = (
        FakeFal()
        .on("POST", SUBMIT, queued(position=4))
        .on("GET", STATUS, state)
        .on("GET", RESULT, httpx.Response(200, json={"images": []}))
    )
    h = harness(fal.transport)
    record = await h.job()
    handle = h.launch(record)
    seen: list[tuple[str, bool]] = []
    handle.on_state(lambda state: seen.append((state, handle.started)))
    async for event in handle.events():
        if isinstance(event, QueuedEvent) and event.position == 1:
            break
    assert (handle.state, handle.position, handle.started) == ("queued", 1, False)
    moving.set()
    await asyncio.wait_for(handle.result(), 10)
    assert seen == [
        ("submitting", False), ("queued", False), ("running", True), ("downloading", True),
        ("completed", True),
    ]  # fmt: skip
    assert handle.position is None  # out of the queue
    queue = [e.position for e in handle.history() if isinstance(e, QueuedEvent)]
    assert queue == [4, 1]  # the position the submit gave is not told twice
    assert {e.job_id for e in handle.history()} == {record.id}


async def test_image_codecs_load_once_in_a_thread_while_the_first_job_waits(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_parts, "WARMED", [])
    h = harness(done_fal().transport)
    record = await h.job()
    await h.launch(record).result()
    engine_parts.prewarm()  # as the next submit does: nothing more
    (warming,) = engine_parts.WARMED  # started once, by the first submit
    await warming  # it loaded without error
    assert "PIL.Image" in sys.modules


async def test_a_result_fal_refuses_fails_the_job_with_fals_words(harness: Any) -> None:
    body = {"detail": [{"loc": ["body", "prompt"], "msg": "flagged", "type": "content_policy"}]}
    fal = (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, httpx.Response(200, json=status_body("COMPLETED")))
        .on("GET", RESULT, httpx.Response(422, json=body))
    )
    h = harness(fal.transport)
    record = await h.job()
    budget = Budget(limit=1.0)
    handle = h.launch(record, [budget], 0.5)
    with pytest.raises(JobFailedError) as caught:
        await asyncio.wait_for(handle.result(), 10)
    stored = await h.store.get_job(record.id)
    assert stored is not None
    assert stored.status == "failed"
    assert stored.error is not None
    assert "flagged" in stored.error
    assert str(caught.value) == f"job {record.id} failed: {stored.error}"
    assert stored.error_type == caught.value.error_type == "validation_error"
    assert budget.committed == 0.0  # failed at Fal: not billed


async def test_a_journaled_job_not_pending_and_never_sent_is_not_sent_again(
    harness: Any,
) -> None:
    fal = done_fal()
    h = harness(fal.transport)
    record = await h.job()
    failed = await h.store.fail_job(record.id, error="refused", status="failed")
    handle = h.engine.launch(record.id, "image", finish=h.finish, record=failed)
    with pytest.raises(ValidationError) as caught:
        await handle.result()
    assert str(caught.value) == (
        f"invalid input: job_id: job {record.id} is failed; it will not be submitted again"
    )
    assert fal.requests == []


async def test_a_bug_while_finishing_is_logged_and_ends_the_job_as_internal_error(
    harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(done_fal().transport)
    record = await h.job()

    async def broken(record: Any, response: FalResponse, emit: Any) -> Any:
        raise RuntimeError("disk on fire")

    handle = h.engine.launch(record.id, "image", finish=broken, record=record)
    with caplog.at_level("ERROR", logger="falkit"), pytest.raises(FalkitError) as caught:
        await handle.result()
    assert str(caught.value) == f"job {record.id}: internal error: RuntimeError('disk on fire')"
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == f"job {record.id}: unexpected error"
    assert logged.exc_info is not None


async def test_what_a_preparation_tells_is_on_the_handle(harness: Any) -> None:
    h = harness(done_fal().transport)

    async def prepare(emit: Any) -> Any:
        emit(NoteEvent("j_told", "uploading 1 LoRA", "INFO"))
        return await h.store.create_job(
            kind="image", model="flux-dev", endpoint_id=ENDPOINT, arguments={"prompt": "x"},
            estimated_cost=None, job_id="j_told",
        )  # fmt: skip

    handle = h.engine.launch("j_told", "image", finish=h.finish, prepare=prepare)
    await asyncio.wait_for(handle.result(), 10)
    notes = [e.message for e in handle.history() if isinstance(e, NoteEvent)]
    assert notes == ["uploading 1 LoRA"]


def test_a_job_is_held_in_every_budget_or_in_none() -> None:
    roomy, full = Budget(limit=1.0), Budget(limit=0.4, name="batch budget")
    with pytest.raises(BudgetExceededError) as refused:
        engine_parts.reserve_all((roomy, full), "j_1", 0.5, "this flux-dev job")
    assert "this flux-dev job is estimated at $0.5000" in str(refused.value)
    assert "batch budget" in str(refused.value)
    assert not roomy.holds("j_1")  # the first budget's hold was taken back
    assert roomy.committed == 0.0
