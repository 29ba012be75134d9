"""watch(): the SSE status stream, its fallback to polling, and log de-duplication."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from falkit.client import FalClient
from falkit.errors import ApiError
from falkit.types import Completed, InProgress, Queued, Status
from tests.client.fakes import REQUEST_ID, FakeFal, log, sse, sse_response, status_body

STATUS = f"/fal-ai/flux/requests/{REQUEST_ID}/status"
STREAM = f"{STATUS}/stream"


def in_progress(*lines: str) -> dict[str, Any]:
    return status_body("IN_PROGRESS", logs=[log(line, f"t-{line}") for line in lines])


def completed(*lines: str, **extra: Any) -> dict[str, Any]:
    return status_body(
        "COMPLETED",
        logs=[log(line, f"t-{line}") for line in lines],
        metrics={"inference_time": 0.5},
        **extra,
    )


def polled(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200 if body["status"] == "COMPLETED" else 202, json=body)


def cut_stream(*bodies: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    """A stream that sends these events, then drops the connection mid-body."""

    async def chunks() -> AsyncIterator[bytes]:
        yield sse(*bodies)
        raise httpx.RemoteProtocolError("peer closed connection without complete body")

    return lambda request: sse_response(chunks())


async def watch_all(client: FalClient, **kwargs: Any) -> list[Status]:
    handle = client.handle("fal-ai/flux/dev", REQUEST_ID)
    return [status async for status in client.watch(handle, **kwargs)]


def messages(status: Status) -> list[str]:
    return [] if isinstance(status, Queued) else [entry.message for entry in status.logs]


async def test_stream_yields_every_event_then_completes(fal: FakeFal, client: FalClient) -> None:
    fal.on(
        "GET",
        STREAM,
        sse_response(
            sse(
                status_body("IN_QUEUE", queue_position=1),
                status_body("IN_QUEUE", queue_position=0),
                in_progress("loading"),
                in_progress("loading", "step 1/4"),
                completed("step 1/4", "step 4/4"),
            )
        ),
    )
    statuses = await watch_all(client)

    assert [type(s) for s in statuses] == [Queued, Queued, InProgress, InProgress, Completed]
    assert [s.position for s in statuses[:2] if isinstance(s, Queued)] == [1, 0]
    assert [messages(s) for s in statuses[2:]] == [["loading"], ["step 1/4"], ["step 4/4"]]
    assert isinstance(statuses[-1], Completed)
    assert statuses[-1].metrics == {"inference_time": 0.5}
    (request,) = fal.requests
    assert request.url.params["logs"] == "1"
    assert request.headers["accept"] == "text/event-stream"
    assert client.stats.as_dict() == {"total": 1, "stream": 1}


async def test_logs_are_a_moving_window_deduped_by_timestamp_and_message(
    fal: FakeFal, client: FalClient
) -> None:
    again = status_body("IN_PROGRESS", logs=[log("tick", "t2"), log("tick", "t3")])
    fal.on(
        "GET",
        STREAM,
        sse_response(
            sse(
                in_progress("a", "b"),
                in_progress("b", "c"),  # "a" slid out of the window: nothing to re-report
                status_body("IN_PROGRESS", logs=[log("tick", "t1")]),
                again,  # same message, new timestamps: new lines
                again,  # same window again: nothing new
                in_progress("c"),  # an old line re-appearing is not new either
                completed("d"),
            )
        ),
    )
    statuses = await watch_all(client)
    assert [messages(s) for s in statuses] == [
        ["a", "b"],
        ["c"],
        ["tick"],
        ["tick", "tick"],
        [],
        [],
        ["d"],
    ]


async def test_without_logs_the_stream_is_asked_for_none(fal: FakeFal, client: FalClient) -> None:
    fal.on("GET", STREAM, sse_response(sse(completed())))
    await watch_all(client, logs=False)
    assert fal.requests[0].url.params["logs"] == "0"


async def test_stream_cut_mid_way_is_retried_once_then_polling_ends_it(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("GET", STREAM, cut_stream(in_progress("a")), cut_stream(in_progress("a", "b")))
    fal.on("GET", STATUS, polled(in_progress("b", "c")), polled(completed("c", "d")))
    statuses = await watch_all(client, poll_interval=0.001)

    assert [messages(s) for s in statuses] == [["a"], ["b"], ["c"], ["d"]]
    assert isinstance(statuses[-1], Completed)
    assert fal.count("GET", STREAM) == 2
    assert fal.count("GET", STATUS) == 2


async def test_stream_closed_before_completed_reconnects(fal: FakeFal, client: FalClient) -> None:
    fal.on(
        "GET",
        STREAM,
        sse_response(sse(status_body("IN_QUEUE", queue_position=0))),
        sse_response(sse(in_progress("x"), completed("x"))),
    )
    statuses = await watch_all(client)
    assert [type(s) for s in statuses] == [Queued, InProgress, Completed]
    assert fal.count("GET", STREAM) == 2
    assert fal.count("GET", STATUS) == 0


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(404, json={"detail": "Path /status/stream not found"}),
        httpx.Response(500, json={"detail": "boom"}),
        httpx.Response(200, json=status_body("IN_QUEUE", queue_position=0)),  # not SSE
        httpx.ConnectError("refused"),
    ],
    ids=["404", "500", "not-sse", "connect-error"],
)
async def test_stream_failing_to_open_falls_back_to_polling(
    fal: FakeFal, client: FalClient, failure: httpx.Response | Exception
) -> None:
    fal.on("GET", STREAM, failure)
    fal.on(
        "GET",
        STATUS,
        polled(status_body("IN_QUEUE", queue_position=2)),
        polled(in_progress("a")),
        polled(completed("a", "b")),
    )
    statuses = await watch_all(client, poll_interval=0.001)
    assert [type(s) for s in statuses] == [Queued, InProgress, Completed]
    assert [messages(s) for s in statuses] == [[], ["a"], ["b"]]
    assert fal.count("GET", STATUS) == 3
    assert all(r.url.params["logs"] == "1" for r in fal.requests)


async def test_polling_intervals_double_up_to_the_maximum(fal: FakeFal, client: FalClient) -> None:
    seen: list[float] = []

    def queued(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return polled(status_body("IN_QUEUE", queue_position=0))

    def done(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return polled(completed())

    fal.on("GET", STREAM, httpx.Response(404))
    fal.on("GET", STATUS, *([queued] * 6), done)
    statuses = await watch_all(client, poll_interval=0.01, max_poll_interval=0.02)

    assert isinstance(statuses[-1], Completed)
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    expected = [0.01, 0.02, 0.02, 0.02, 0.02, 0.02]
    assert len(gaps) == len(expected)
    assert all(gap >= 0.9 * want for gap, want in zip(gaps, expected, strict=True))
    # uncapped doubling would need 0.63 s in all; capped at 0.02 it is about 0.11 s
    assert sum(gaps) < 0.4


async def test_watch_ends_at_a_failed_completion(fal: FakeFal, client: FalClient) -> None:
    fal.on(
        "GET",
        STREAM,
        sse_response(
            sse(
                in_progress("a"),
                completed(error="Runner disconnected", error_type="runner_disconnected"),
            )
        ),
    )
    statuses = await watch_all(client)
    final = statuses[-1]
    assert isinstance(final, Completed)
    assert final.failed
    assert final.error_type == "runner_disconnected"
    assert [r.url.path for r in fal.requests] == [STREAM]  # no result fetch, no polling


async def test_unknown_status_in_the_stream_is_an_error(fal: FakeFal, client: FalClient) -> None:
    fal.on("GET", STREAM, sse_response(sse(status_body("FAILED"))))
    fal.on("GET", STATUS, polled(status_body("FAILED")))
    with pytest.raises(ApiError, match="unknown status 'FAILED'"):
        await watch_all(client)


async def test_events_without_json_are_skipped(fal: FakeFal, client: FalClient) -> None:
    body = b"event: ping\ndata: \n\ndata: not json\n\n" + sse(completed("x"), ping=False)
    fal.on("GET", STREAM, sse_response(body))
    statuses = await watch_all(client)
    assert [type(s) for s in statuses] == [Completed]
