"""Error responses as Fal sends them, transport failures, retries and the no-double-submit rule."""

from __future__ import annotations

import httpx
import pytest

from falkit.client import FalClient, RetryPolicy
from falkit.config import Settings
from falkit.errors import (
    ApiError,
    AuthenticationError,
    FalTimeoutError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
)
from tests.client.conftest import VirtualClock
from tests.client.fakes import FAST, REQUEST_ID, FakeFal, status_body

SUBMIT = "/fal-ai/flux/dev"
STATUS = f"/fal-ai/flux/requests/{REQUEST_ID}/status"
RESULT = f"/fal-ai/flux/requests/{REQUEST_ID}"
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
NGINX_503 = NGINX_502.replace("502 Bad Gateway", "503 Service Temporarily Unavailable")
RUNNER_503 = {"detail": "Runner disconnected", "error_type": "runner_disconnected"}
RID = {"x-fal-request-id": REQUEST_ID}
OK = httpx.Response(200, json=status_body("IN_QUEUE", queue_position=0))


async def submit(client: FalClient) -> None:
    await client.submit("fal-ai/flux/dev", {"prompt": "x"})


async def result(client: FalClient) -> None:
    await client.result(client.handle("fal-ai/flux/dev", REQUEST_ID))


@pytest.mark.parametrize(
    ("response", "error", "words"),
    [
        (
            httpx.Response(401, json={"detail": "No user found for Key ID and Secret"}),
            AuthenticationError,
            ["401", "No user found for Key ID and Secret", "FAL_API_KEY"],
        ),
        (
            httpx.Response(
                403,
                json={
                    "detail": "User is locked. Reason: Exhausted balance. "
                    "Top up your balance at fal.ai/dashboard/billing."
                },
            ),
            AuthenticationError,
            ["403", "Exhausted balance", "Top up"],
        ),
        (
            httpx.Response(404, json={"detail": "Application 'nonexistent' not found"}),
            NotFoundError,
            ["404", "Application 'nonexistent' not found"],
        ),
        (
            httpx.Response(
                422,
                json={
                    "detail": [
                        {
                            "loc": ["body", "guidance_scale"],
                            "msg": "Input should be less than or equal to 20",
                            "type": "less_than_equal",
                            "ctx": {"le": 20},
                            "input": 35,
                        }
                    ]
                },
            ),
            ValidationError,
            ["guidance_scale", "less than or equal to 20", "le 20"],
        ),
        (
            httpx.Response(429, json={"detail": "Too many requests"}, headers={"Retry-After": "0"}),
            RateLimitedError,
            ["429", "Too many requests", "gave up after 4 attempts"],
        ),
        (
            httpx.Response(500, json={"detail": "Internal error", "error_type": "internal"}),
            ServerError,
            ["500", "Internal error"],
        ),
        (
            httpx.Response(502, text=NGINX_502, headers={"content-type": "text/html"}),
            ServerError,
            ["502", "502 Bad Gateway (from Fal's gateway)", "gave up after 4 attempts"],
        ),
        (
            httpx.Response(503, text=NGINX_503, headers={"content-type": "text/html"}),
            ServerError,
            ["503", "Service Temporarily Unavailable", "gave up after 4 attempts"],
        ),
    ],
    ids=["401", "403", "404", "422", "429", "500", "502-nginx", "503-nginx"],
)
async def test_error_responses_become_clear_exceptions(
    fal: FakeFal,
    client: FalClient,
    response: httpx.Response,
    error: type[Exception],
    words: list[str],
) -> None:
    fal.on("GET", RESULT, response)
    with pytest.raises(error) as caught:
        await result(client)
    text = str(caught.value)
    for word in words:
        assert word in text
    assert "<html>" not in text


async def test_429_carries_retry_after(
    fal: FakeFal, settings: Settings, clock: VirtualClock
) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, deadline=0.5)
    fal.on("GET", RESULT, httpx.Response(429, headers={"Retry-After": "120"}))
    async with FalClient(settings, transport=fal.transport, retry=policy) as client:
        with pytest.raises(RateLimitedError) as caught:
            await result(client)
    # 120 s is past the deadline: give up at once instead of sleeping through it
    assert clock.sleeps == []
    assert caught.value.retry_after == pytest.approx(120, abs=1)
    assert fal.count("GET", RESULT) == 1


async def test_retry_after_is_waited_for(
    fal: FakeFal, client: FalClient, clock: VirtualClock
) -> None:
    fal.on("GET", STATUS, httpx.Response(429, headers={"Retry-After": "0.2"}), OK)
    await client.status(client.handle("fal-ai/flux/dev", REQUEST_ID))
    assert clock.sleeps == [0.2]  # the server's hint, not the policy's few milliseconds
    assert fal.count("GET", STATUS) == 2


async def test_503_with_request_id_on_result_is_retried_then_reported(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("GET", RESULT, httpx.Response(503, json=RUNNER_503, headers=RID))
    with pytest.raises(ServerError) as caught:
        await result(client)
    assert caught.value.error_type == "runner_disconnected"
    assert caught.value.request_id == REQUEST_ID
    assert "Runner disconnected" in str(caught.value)
    assert fal.count("GET", RESULT) == client._http.policy.max_attempts


async def test_ingress_503_on_a_read_is_retried_until_it_passes(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("GET", STATUS, httpx.Response(503, text=NGINX_503), httpx.Response(502), OK)
    status = await client.status(client.handle("fal-ai/flux/dev", REQUEST_ID))
    assert status.request_id == REQUEST_ID
    assert fal.count("GET", STATUS) == 3


async def test_504_from_the_start_timeout_is_not_retried(fal: FakeFal, client: FalClient) -> None:
    fal.on(
        "GET",
        RESULT,
        httpx.Response(
            504,
            json={"detail": "Request timed out", "error_type": "request_timeout"},
            headers={"X-Fal-Request-Timeout-Type": "user", "X-Fal-Error-Type": "request_timeout"},
        ),
    )
    with pytest.raises(ServerError, match="Request timed out") as caught:
        await result(client)
    assert caught.value.error_type == "request_timeout"
    assert fal.count("GET", RESULT) == 1


async def test_read_timeouts_on_reads_are_retried_then_reported(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("GET", RESULT, httpx.ReadTimeout("timed out"))
    with pytest.raises(FalTimeoutError, match=r"result timed out .*gave up after 4 attempts"):
        await result(client)
    assert fal.count("GET", RESULT) == FAST.max_attempts


async def test_connection_errors_become_transport_errors(fal: FakeFal, client: FalClient) -> None:
    fal.on("GET", RESULT, httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(TransportError, match="Connection refused") as caught:
        await result(client)
    assert not isinstance(caught.value, FalTimeoutError)
    assert caught.value.__class__.__module__ == "falkit.errors"


async def test_the_deadline_bounds_all_attempts(
    fal: FakeFal, settings: Settings, clock: VirtualClock
) -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=0.02, max_delay=0.02, deadline=0.15)
    fal.on("GET", RESULT, httpx.Response(503))
    async with FalClient(settings, transport=fal.transport, retry=policy) as client:
        with pytest.raises(ServerError, match="gave up after"):
            await result(client)
    assert sum(clock.sleeps) <= 0.15
    assert all(0.01 <= delay <= 0.02 for delay in clock.sleeps)  # jittered, capped
    assert fal.count("GET", RESULT) == len(clock.sleeps) + 1
    assert 8 <= fal.count("GET", RESULT) <= 16


@pytest.mark.parametrize(("hint", "attempts"), [("0.049", 4), ("0.051", 3), ("0.07", 3)])
async def test_a_wait_that_would_end_past_the_deadline_is_not_begun(
    fal: FakeFal, settings: Settings, clock: VirtualClock, hint: str, attempts: int
) -> None:
    """Deadline 0.15 s: waits of 0.049 s end by 0.147 (three of them, so four attempts); a
    third wait of 0.051 s would end past it, so three attempts."""
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, max_delay=1.0, deadline=0.15)
    fal.on("GET", RESULT, httpx.Response(503, headers={"Retry-After": hint}))
    async with FalClient(settings, transport=fal.transport, retry=policy) as client:
        with pytest.raises(ServerError, match=f"gave up after {attempts} attempts"):
            await result(client)
    assert clock.sleeps == [float(hint)] * (attempts - 1)


# ---- no double submit ----


@pytest.mark.parametrize(
    "failure",
    [
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("timed out"),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
    ],
    ids=["dropped", "read-timeout", "read-error", "write-error"],
)
async def test_submit_whose_connection_drops_after_sending_is_not_resent(
    fal: FakeFal, client: FalClient, failure: Exception
) -> None:
    fal.on("POST", SUBMIT, failure, OK)
    with pytest.raises(SubmitUncertainError, match="the job may have been queued"):
        await submit(client)
    assert fal.count("POST", SUBMIT) == 1
    assert client.stats.by_operation["submit"] == 1


async def test_submit_5xx_with_request_id_is_uncertain_and_carries_the_id(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("POST", SUBMIT, httpx.Response(503, json=RUNNER_503, headers=RID), OK)
    with pytest.raises(SubmitUncertainError) as caught:
        await submit(client)
    assert caught.value.request_id == REQUEST_ID
    assert REQUEST_ID in str(caught.value)
    assert fal.count("POST", SUBMIT) == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.Response(429, json={"detail": "slow down"}),
        httpx.Response(408),
        httpx.Response(409),
        httpx.Response(502, text=NGINX_502),
        httpx.Response(503, text=NGINX_503),
        httpx.Response(504, text="<html><title>504 Gateway Time-out</title></html>"),
    ],
    ids=["connect", "connect-timeout", "429", "408", "409", "502", "503", "504"],
)
async def test_submit_that_certainly_missed_fal_is_retried(
    fal: FakeFal, client: FalClient, failure: httpx.Response | Exception
) -> None:
    fal.on("POST", SUBMIT, failure, OK)
    handle = await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    assert handle.request_id == REQUEST_ID
    assert fal.count("POST", SUBMIT) == 2


async def test_submit_500_is_not_retried(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", SUBMIT, httpx.Response(500, json={"detail": "boom"}), OK)
    with pytest.raises(ServerError, match="boom"):
        await submit(client)
    assert fal.count("POST", SUBMIT) == 1


async def test_submit_still_throttled_after_all_attempts_is_rate_limited(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on("POST", SUBMIT, httpx.Response(429, json={"detail": "slow down"}))
    with pytest.raises(RateLimitedError):
        await submit(client)
    assert fal.count("POST", SUBMIT) == FAST.max_attempts


async def test_run_dropped_after_sending_is_not_resent(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", "/fal-ai/flux/schnell", httpx.ReadTimeout("timed out"), OK)
    with pytest.raises(TransportError, match="may have executed"):
        await client.run("fal-ai/flux/schnell", {"prompt": "x"})
    assert fal.count("POST", "/fal-ai/flux/schnell") == 1


async def test_webhook_url_is_kept_out_of_error_messages(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", SUBMIT, httpx.ReadTimeout("timed out"))
    with pytest.raises(SubmitUncertainError) as caught:
        await client.submit("fal-ai/flux/dev", {}, webhook_url="https://me.example/hook?token=s3")
    assert "s3" not in str(caught.value)


async def test_api_error_is_the_base_of_http_errors(fal: FakeFal, client: FalClient) -> None:
    fal.on("GET", RESULT, httpx.Response(418, text="teapot"))
    with pytest.raises(ApiError, match=r"Fal error \(418\): teapot"):
        await result(client)
