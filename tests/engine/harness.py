"""The engine's test harness: a scripted fake Fal (tests/client/fakes.py), a SQLite journal,
polls every 10 ms. Fixtures in tests/engine/conftest.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx

from falkit.client import FalClient
from falkit.events import QueuedEvent
from falkit.service.budget import Budget
from falkit.service.engine import EngineOptions, JobEngine
from falkit.service.follow import FollowOptions
from falkit.service.handle import JobHandle
from falkit.store import JobRecord, JobStore
from falkit.types import FalResponse
from tests.client.fakes import FAST, QUEUE, REQUEST_ID, FakeFal, make_settings, status_body

ENDPOINT = "fal-ai/flux/dev"
SUBMIT = f"/{ENDPOINT}"
BASE = f"{QUEUE}/fal-ai/flux/requests/{REQUEST_ID}"
STATUS = f"/fal-ai/flux/requests/{REQUEST_ID}/status"
RESULT = f"/fal-ai/flux/requests/{REQUEST_ID}"
QUICK = FollowOptions(stream_cap=0, poll_initial=0.01, poll_max=0.02)


def queued(position: int = 2) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "request_id": REQUEST_ID,
            "status_url": f"{BASE}/status",
            "response_url": BASE,
            "cancel_url": f"{BASE}/cancel",
            "queue_position": position,
        },
    )


def done_fal(output: dict[str, Any] | None = None) -> FakeFal:
    """A Fal that queues the submit, says COMPLETED, and gives ``output``."""
    return (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, httpx.Response(200, json=status_body("COMPLETED")))
        .on("GET", RESULT, httpx.Response(200, json=output or {"images": []}))
    )


class Harness:
    """An engine over a fake Fal and a real journal; ``finished`` holds what finish saw."""

    def __init__(self, store: JobStore, transport: httpx.AsyncBaseTransport, **options: Any):
        self.store = store
        self.client = FalClient(make_settings(), transport=transport, retry=FAST)
        self.engine = JobEngine(
            self.client, store, EngineOptions(follow=QUICK, retry=FAST, **options)
        )
        self.finished: list[FalResponse] = []

    async def finish(self, record: JobRecord, response: FalResponse, emit: Any) -> Any:
        self.finished.append(response)
        return SimpleNamespace(cost_usd=0.25, job_id=record.id)

    async def job(self, estimate: float | None = 0.5) -> JobRecord:
        return await self.store.create_job(
            kind="image", model="flux-dev", endpoint_id=ENDPOINT,
            arguments={"prompt": "a fox"}, estimated_cost=estimate,
        )  # fmt: skip

    def launch(
        self, record: JobRecord, budgets: list[Budget] | None = None, estimate: float | None = None
    ) -> JobHandle:
        """Run a journaled job on the engine, its estimate reserved in ``budgets``."""
        return self.engine.launch(record.id, record.kind, finish=self.finish, record=record,
                                  estimate=estimate, budgets=budgets or [])  # fmt: skip

    async def close(self) -> None:
        await self.engine.aclose()
        await self.client.aclose()


async def until_queued(handle: JobHandle) -> None:
    """Read the job's events until Fal has queued it."""
    async for event in handle.events():
        if isinstance(event, QueuedEvent):
            return


class Held(httpx.AsyncBaseTransport):
    """Takes every request and never answers (a POST on the wire)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def cancellable_fal(answer: httpx.Response | None = None) -> FakeFal:
    """A Fal that queues the submit and keeps it queued until a cancel (answered ``answer``,
    by default 202 CANCELLATION_REQUESTED); after it, the job ends cancelled."""
    cancelled = asyncio.Event()
    reply = answer or httpx.Response(202, json={"status": "CANCELLATION_REQUESTED"})

    def state(request: httpx.Request) -> httpx.Response:
        body = (
            status_body("COMPLETED", error="cancelled", error_type="request_cancelled")
            if cancelled.is_set()
            else status_body("IN_QUEUE", queue_position=0)
        )
        return httpx.Response(200, json=body)

    def cancel_reply(request: httpx.Request) -> httpx.Response:
        cancelled.set()
        return reply

    return (
        FakeFal()
        .on("POST", SUBMIT, queued())
        .on("GET", STATUS, state)
        .on("PUT", f"{RESULT}/cancel", cancel_reply)
    )
