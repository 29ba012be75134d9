"""Submit, handle, status, result, cancel and run over a fake Fal."""

from __future__ import annotations

import json

import httpx
import pytest

from falkit.client import FalClient
from falkit.config import Settings
from falkit.errors import (
    ApiError,
    NotFoundError,
    ServiceDisabledError,
    SubmitUncertainError,
    ValidationError,
)
from falkit.types import Completed, InProgress, LogEntry, Queued, Status
from tests.client.fakes import (
    FAST,
    KEY,
    QUEUE,
    REQUEST_ID,
    FakeFal,
    log,
    make_settings,
    status_body,
)

BASE = f"/fal-ai/flux/requests/{REQUEST_ID}"


def submitted(**overrides: object) -> httpx.Response:
    return httpx.Response(200, json={**status_body("IN_QUEUE", queue_position=0), **overrides})


# ---- submit ----


async def test_submit_posts_the_full_id_and_keeps_the_returned_urls(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("POST", "/fal-ai/flux/dev", submitted())
    handle = await client.submit("fal-ai/flux/dev", {"prompt": "a cat", "seed": 2**64 - 1})

    (request,) = fal.requests
    assert str(request.url) == f"{QUEUE}/fal-ai/flux/dev"
    assert json.loads(request.content) == {"prompt": "a cat", "seed": 2**64 - 1}
    assert request.headers["authorization"] == f"Key {KEY}"
    assert request.headers["user-agent"].startswith("falkit/")
    assert request.headers["content-type"] == "application/json"
    assert handle.request_id == REQUEST_ID
    assert handle.endpoint_id == "fal-ai/flux/dev"
    assert handle.response_url == f"{QUEUE}{BASE}"
    assert handle.status_url == f"{QUEUE}{BASE}/status"
    assert handle.cancel_url == f"{QUEUE}{BASE}/cancel"


async def test_submit_uses_urls_as_returned_even_on_another_host(
    fal: FakeFal, client: FalClient
) -> None:
    other = "https://queue.fal.run/elsewhere/requests/r1"
    fal.on(
        "POST",
        "/fal-ai/flux/dev",
        submitted(response_url=other, status_url=f"{other}/status", cancel_url=f"{other}/c"),
    )
    handle = await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    assert (handle.response_url, handle.status_url, handle.cancel_url) == (
        other,
        f"{other}/status",
        f"{other}/c",
    )


async def test_submit_options_become_query_and_headers(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", "/fal-ai/flux/dev", submitted())
    await client.submit(
        "fal-ai/flux/dev",
        {"prompt": "x"},
        webhook_url="https://example.com/hook?a=1",
        start_timeout=30,
        priority="low",
        hint="lora-abc",
    )
    (request,) = fal.requests
    assert "fal_webhook=https%3A%2F%2Fexample.com%2Fhook%3Fa%3D1" in str(request.url)
    assert request.url.params["fal_webhook"] == "https://example.com/hook?a=1"
    assert request.headers["x-fal-request-timeout"] == "30.0"
    assert request.headers["x-fal-queue-priority"] == "low"
    assert request.headers["x-fal-runner-hint"] == "lora-abc"


async def test_submit_without_options_sends_no_option_headers(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("POST", "/fal-ai/flux/dev", submitted())
    await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    (request,) = fal.requests
    assert "fal_webhook" not in str(request.url)
    assert not {"x-fal-request-timeout", "x-fal-queue-priority", "x-fal-runner-hint"} & set(
        request.headers.keys()
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"start_timeout": 0.5}, "start_timeout"), ({"priority": "urgent"}, "priority")],
)
async def test_submit_rejects_bad_options_before_sending(
    fal: FakeFal, client: FalClient, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        await client.submit("fal-ai/flux/dev", {"prompt": "x"}, **kwargs)  # type: ignore[arg-type]
    assert fal.requests == []


async def test_submit_fills_in_urls_a_server_leaves_out(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", "/fal-ai/flux/dev", httpx.Response(200, json={"request_id": "r-1"}))
    handle = await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    assert handle.status_url == f"{QUEUE}/fal-ai/flux/requests/r-1/status"


async def test_submit_answered_without_request_id_is_uncertain(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("POST", "/fal-ai/flux/dev", httpx.Response(200, text="oops"))
    with pytest.raises(SubmitUncertainError, match="may have been queued"):
        await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    assert fal.count("POST", "/fal-ai/flux/dev") == 1


async def test_submit_rejects_a_malformed_endpoint_id(fal: FakeFal, client: FalClient) -> None:
    with pytest.raises(ValidationError, match="endpoint_id"):
        await client.submit("flux", {"prompt": "x"})
    assert fal.requests == []


# ---- handle(): reattaching by ids ----


@pytest.mark.parametrize(
    ("endpoint_id", "base"),
    [
        ("fal-ai/flux/dev", f"{QUEUE}/fal-ai/flux/requests/R"),
        ("fal-ai/flux-pro/v1.1", f"{QUEUE}/fal-ai/flux-pro/requests/R"),
        ("fal-ai/fast-sdxl", f"{QUEUE}/fal-ai/fast-sdxl/requests/R"),
        ("fal-ai/fast-sdxl/image-to-image/extra", f"{QUEUE}/fal-ai/fast-sdxl/requests/R"),
        ("workflows/me/my-flow/run", f"{QUEUE}/workflows/me/my-flow/requests/R"),
        ("comfy/me/graph", f"{QUEUE}/comfy/me/graph/requests/R"),
        ("1234-myapp", f"{QUEUE}/1234/myapp/requests/R"),
        ("/fal-ai/flux/dev/", f"{QUEUE}/fal-ai/flux/requests/R"),
    ],
)
def test_handle_drops_the_sub_path(client: FalClient, endpoint_id: str, base: str) -> None:
    handle = client.handle(endpoint_id, "R")
    assert handle.response_url == base
    assert handle.status_url == f"{base}/status"
    assert handle.cancel_url == f"{base}/cancel"
    assert handle.endpoint_id == endpoint_id


async def test_handle_under_a_plain_http_path_prefix(fal: FakeFal) -> None:
    settings = make_settings().with_urls("http://127.0.0.1:8765")
    async with FalClient(settings, transport=fal.transport, retry=FAST) as client:
        handle = client.handle("fal-ai/flux/dev", REQUEST_ID)
        assert (
            handle.status_url
            == f"http://127.0.0.1:8765/queue/fal-ai/flux/requests/{REQUEST_ID}/status"
        )
        fal.on(
            "GET",
            f"/queue{BASE}/status",
            httpx.Response(202, json=status_body("IN_PROGRESS", logs=None)),
        )
        assert isinstance(await client.status(handle), InProgress)
        fal.on("POST", "/queue/fal-ai/flux/dev", submitted())
        await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    assert [str(r.url).split("?")[0] for r in fal.requests] == [
        handle.status_url,
        "http://127.0.0.1:8765/queue/fal-ai/flux/dev",
    ]
    assert all(r.headers["authorization"] == f"Key {KEY}" for r in fal.requests)


@pytest.mark.parametrize(
    ("endpoint_id", "request_id"),
    [("", "R"), ("fal-ai", "R"), ("fal-ai/flux?x=1", "R"), ("fal-ai//dev", "R"), ("a/b", "../x"),
     ("a/b", "")],
)  # fmt: skip
def test_handle_rejects_ids_that_are_not_url_safe(
    client: FalClient, endpoint_id: str, request_id: str
) -> None:
    with pytest.raises(ValidationError):
        client.handle(endpoint_id, request_id)


# ---- status: every shape Fal sends ----


async def status_of(
    fal: FakeFal, client: FalClient, code: int, body: object, logs: bool = False
) -> Status:
    fal.on("GET", f"{BASE}/status", httpx.Response(code, json=body))
    return await client.status(client.handle("fal-ai/flux/dev", REQUEST_ID), logs=logs)


async def test_status_in_queue(fal: FakeFal, client: FalClient) -> None:
    status = await status_of(fal, client, 202, status_body("IN_QUEUE", queue_position=3))
    assert status == Queued(position=3, request_id=REQUEST_ID)
    assert fal.requests[0].url.params["logs"] == "0"


async def test_status_in_progress_with_logs(fal: FakeFal, client: FalClient) -> None:
    body = status_body("IN_PROGRESS", logs=[log("step 1/28", "t1"), log("step 2/28", "t2")])
    status = await status_of(fal, client, 202, body, logs=True)
    assert isinstance(status, InProgress)
    assert [e.message for e in status.logs] == ["step 1/28", "step 2/28"]
    assert status.logs[0] == LogEntry("step 1/28", "t1", "INFO", "USER")
    assert fal.requests[0].url.params["logs"] == "1"


async def test_status_completed_with_metrics(fal: FakeFal, client: FalClient) -> None:
    body = status_body("COMPLETED", logs=None, metrics={"inference_time": 1.23})
    status = await status_of(fal, client, 200, body)
    assert status == Completed(metrics={"inference_time": 1.23}, request_id=REQUEST_ID)
    assert not status.failed


async def test_status_completed_with_error(fal: FakeFal, client: FalClient) -> None:
    body = status_body(
        "COMPLETED",
        logs=None,
        metrics={"inference_time": 1.5},
        error="Request timed out",
        error_type="request_timeout",
    )
    status = await status_of(fal, client, 200, body)
    assert isinstance(status, Completed)
    assert status.failed
    assert (status.error, status.error_type) == ("Request timed out", "request_timeout")


async def test_status_is_lenient_to_extra_and_missing_optional_fields(
    fal: FakeFal, client: FalClient
) -> None:
    body = {
        "status": "COMPLETED",
        "logs": [{"message": "done", "labels": {}, "new_field": 1}],
        "surprise": {"nested": True},
    }
    status = await status_of(fal, client, 200, body)
    assert isinstance(status, Completed)
    assert status.metrics == {}
    assert status.logs == (LogEntry("done"),)
    assert status.request_id == REQUEST_ID


@pytest.mark.parametrize("value", ["FAILED", "CANCELLED", None, "in_queue"])
async def test_unknown_status_value_is_a_clear_error(
    fal: FakeFal, client: FalClient, value: str | None
) -> None:
    with pytest.raises(ApiError, match=r"unknown status .*expected one of IN_QUEUE"):
        await status_of(fal, client, 200, status_body(value))  # type: ignore[arg-type]


async def test_status_of_unknown_request_is_not_found(fal: FakeFal, client: FalClient) -> None:
    with pytest.raises(NotFoundError, match="404"):
        await status_of(fal, client, 404, {"detail": "Request not found"})


# ---- result ----


async def test_result_carries_request_id_and_billable_units(
    fal: FakeFal, client: FalClient
) -> None:
    output = {"images": [{"url": "https://v3.fal.media/files/a.jpg", "width": 8}], "seed": 1}
    fal.on(
        "GET",
        BASE,
        httpx.Response(
            200, json=output, headers={"x-fal-request-id": REQUEST_ID, "x-fal-billable-units": "2"}
        ),
    )
    response = await client.result(client.handle("fal-ai/flux/dev", REQUEST_ID))
    assert response.data == output
    assert response.request_id == REQUEST_ID
    assert response.billable_units == 2.0


async def test_result_without_headers(fal: FakeFal, client: FalClient) -> None:
    fal.on("GET", BASE, httpx.Response(200, json={"images": []}))
    response = await client.result(client.handle("fal-ai/flux/dev", REQUEST_ID))
    assert (response.request_id, response.billable_units) == (None, None)


async def test_result_that_is_not_an_object_is_an_error(fal: FakeFal, client: FalClient) -> None:
    fal.on("GET", BASE, httpx.Response(200, text="<html>"))
    with pytest.raises(ApiError, match="not a JSON object"):
        await client.result(client.handle("fal-ai/flux/dev", REQUEST_ID))


async def test_result_of_invalid_input_is_a_validation_error(
    fal: FakeFal, client: FalClient
) -> None:
    detail = [
        {
            "loc": ["body", "num_inference_steps"],
            "msg": "Input should be less than or equal to 12",
            "type": "less_than_equal",
            "ctx": {"le": 12},
            "input": 28,
        }
    ]
    fal.on("GET", BASE, httpx.Response(422, json={"detail": detail}))
    with pytest.raises(ValidationError) as caught:
        await client.result(client.handle("fal-ai/flux/dev", REQUEST_ID))
    assert "num_inference_steps" in str(caught.value)
    assert "le 12" in str(caught.value)
    assert caught.value.status_code == 422
    assert fal.count("GET", BASE) == 1


# ---- cancel ----


@pytest.mark.parametrize(
    ("code", "body", "word"),
    [
        (202, {"status": "CANCELLATION_REQUESTED"}, "CANCELLATION_REQUESTED"),
        (200, {"status": "OK"}, "OK"),
        (400, {"status": "ALREADY_COMPLETED"}, "ALREADY_COMPLETED"),
        (200, {"success": True}, "OK"),
    ],
)
async def test_cancel_returns_fals_word(
    fal: FakeFal, client: FalClient, code: int, body: dict[str, object], word: str
) -> None:
    fal.on("PUT", f"{BASE}/cancel", httpx.Response(code, json=body))
    assert await client.cancel(client.handle("fal-ai/flux/dev", REQUEST_ID)) == word
    (request,) = fal.requests
    assert request.content == b""


async def test_cancel_of_unknown_request_raises(fal: FakeFal, client: FalClient) -> None:
    fal.on("PUT", f"{BASE}/cancel", httpx.Response(404, json={"status": "NOT_FOUND"}))
    with pytest.raises(NotFoundError):
        await client.cancel(client.handle("fal-ai/flux/dev", REQUEST_ID))


async def test_cancel_other_400_raises(fal: FakeFal, client: FalClient) -> None:
    fal.on("PUT", f"{BASE}/cancel", httpx.Response(400, json={"detail": "bad request"}))
    with pytest.raises(ApiError, match="bad request"):
        await client.cancel(client.handle("fal-ai/flux/dev", REQUEST_ID))


# ---- run ----


async def test_run_posts_to_the_run_url(fal: FakeFal, client: FalClient) -> None:
    fal.on(
        "POST",
        "/fal-ai/flux/schnell",
        httpx.Response(
            200,
            json={"images": []},
            headers={"x-fal-request-id": "r", "x-fal-billable-units": "1.5"},
        ),
    )
    response = await client.run("fal-ai/flux/schnell", {"prompt": "x"})
    assert str(fal.requests[0].url) == "https://fal.run/fal-ai/flux/schnell"
    assert response.data == {"images": []}
    assert response.billable_units == 1.5


# ---- no key, stats ----


async def test_every_call_without_a_key_says_how_to_set_it(fal: FakeFal) -> None:
    async with FalClient(make_settings(key=None), transport=fal.transport) as client:
        handle = client.handle("fal-ai/flux/dev", REQUEST_ID)
        calls = [
            client.submit("fal-ai/flux/dev", {}),
            client.status(handle),
            client.result(handle),
            client.cancel(handle),
            client.run("fal-ai/flux/dev", {}),
            client.upload(b"x", "text/plain"),
        ]
        for call in calls:
            with pytest.raises(ServiceDisabledError, match="FAL_API_KEY"):
                await call
        with pytest.raises(ServiceDisabledError, match="FAL_API_KEY"):
            async for _ in client.watch(handle):
                pass
    assert fal.requests == []


async def test_stats_count_requests_per_operation(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", "/fal-ai/flux/dev", httpx.Response(429), submitted())
    fal.on("GET", f"{BASE}/status", httpx.Response(200, json=status_body("COMPLETED", logs=None)))
    fal.on("GET", BASE, httpx.Response(200, json={}))
    handle = await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    await client.status(handle)
    await client.result(handle)
    await client.http.get("https://v3.fal.media/files/x.png")
    assert client.stats.total == 5
    assert client.stats.as_dict() == {
        "total": 5,
        "other": 1,
        "result": 1,
        "status": 1,
        "submit": 2,
    }
    client.stats.reset()
    assert client.stats.as_dict() == {"total": 0}


def test_settings_repr_is_masked(settings: Settings) -> None:
    assert KEY not in repr(settings)
