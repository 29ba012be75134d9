"""The HTTP layer itself (falkit.client.http): the client it builds, the key's scope, the send
probe, retries of garbled and cut-off reads, and the words of every error it gives back.

Written against the mutation run's survivors (docs/testing.md): each test pins a behaviour
that a one-token change to http.py would break without any other test noticing.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from falkit.client import RetryPolicy
from falkit.client.http import (
    OPERATION_KEY,
    FalAuth,
    FalHttp,
    RequestStats,
    SendProbe,
    build_http_client,
    exception_text,
    json_body,
    user_agent,
)
from falkit.config import mask_key
from falkit.errors import (
    ApiError,
    FalTimeoutError,
    SubmitUncertainError,
    TransportError,
)
from tests.client.conftest import VirtualClock
from tests.client.fakes import FAST, KEY, FakeFal, make_settings

URL = "https://queue.fal.run/fal-ai/flux/requests/r1/status"
SUBMIT_URL = "https://queue.fal.run/fal-ai/flux/dev"
RUN_URL = "https://fal.run/fal-ai/flux/dev"


def _http(fal: FakeFal, policy: RetryPolicy = FAST) -> FalHttp:
    settings = make_settings()
    client = build_http_client(settings, transport=fal.transport, timeout=30, stats=RequestStats())
    return FalHttp(settings, client, policy)


class _Chunks(httpx.AsyncByteStream):
    """A body that arrives in pieces (not read yet), and may break off half-way."""

    def __init__(self, *chunks: bytes, then: Exception | None = None) -> None:
        self.chunks, self.then = chunks, then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.then is not None:
            raise self.then


# ---- the client ----


def test_the_client_is_built_with_its_timeouts_pool_and_no_redirects() -> None:
    settings = make_settings()
    client = build_http_client(settings, transport=None, timeout=30.0, stats=RequestStats())
    assert client.timeout == httpx.Timeout(30.0, connect=10.0, read=30.0, pool=None)
    assert client.follow_redirects is False
    assert client.headers["user-agent"] == user_agent()
    pool: Any = client._transport._pool  # type: ignore[attr-defined]
    assert (pool._max_connections, pool._max_keepalive_connections) == (16, 16)
    assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED

    short = build_http_client(settings, transport=None, timeout=5.0, stats=RequestStats(),
                              read_timeout=300.0, connections=3)  # fmt: skip
    assert short.timeout == httpx.Timeout(5.0, connect=5.0, read=300.0, pool=None)
    pool = short._transport._pool  # type: ignore[attr-defined]
    assert (pool._max_connections, pool._max_keepalive_connections) == (3, 3)


def test_a_given_tls_context_is_the_one_used() -> None:
    context = ssl.create_default_context()
    client = build_http_client(make_settings(), transport=None, timeout=30.0,
                               stats=RequestStats(), tls=context)  # fmt: skip
    assert client._transport._pool._ssl_context is context  # type: ignore[attr-defined]


async def test_requests_are_counted_by_operation_and_the_probe_is_handed() -> None:
    stats = RequestStats()
    fal = FakeFal().on("GET", "/x", httpx.Response(200, json={}))
    client = build_http_client(make_settings(), transport=fal.transport, timeout=30, stats=stats)
    probe = SendProbe()
    request = client.build_request(
        "GET", "https://queue.fal.run/x", extensions={OPERATION_KEY: "status", "trace": probe}
    )
    assert probe.never_sent
    await client.send(request)
    await client.get("https://queue.fal.run/x")
    assert stats.as_dict() == {"total": 2, "other": 1, "status": 1}
    assert not probe.never_sent  # handed to a transport that cannot say whether it sent


# ---- the key's scope ----


def test_auth_applies_under_each_base_whatever_its_trailing_slash() -> None:
    auth = FalAuth(KEY, ["https://queue.fal.run/", "https://fal.run/appX"])
    assert auth.applies_to("https://queue.fal.run/fal-ai/flux/dev")
    assert auth.applies_to("https://fal.run/appX/run")
    assert auth.applies_to("https://fal.run/appX?x=1")
    assert not auth.applies_to("https://fal.run/app/run")  # not under .../appX
    assert not auth.applies_to("https://fal.run/appXY")


def test_auth_repr_masks_the_key() -> None:
    text = repr(FalAuth(KEY, ["https://queue.fal.run"]))
    assert mask_key(KEY) in text
    assert KEY not in text
    assert "queue.fal.run" in text


# ---- the send probe ----


def test_the_probe_follows_a_request_from_idle_to_sent() -> None:
    probe = SendProbe()
    assert probe.never_sent
    probe.handed()
    assert not probe.never_sent  # a custom transport: handed may mean sent
    probe.exact = True
    assert probe.never_sent  # httpx's own transport: handed, no header written yet
    probe.missed()
    assert probe.never_sent


async def test_the_probe_is_sent_once_the_headers_start() -> None:
    probe = SendProbe()
    probe.exact = True
    probe.handed()
    await probe("connection.connect_tcp.started", {})
    assert probe.never_sent
    await probe("http11.send_request_headers.started", {})
    assert not probe.never_sent
    probe.missed()
    assert probe.never_sent


async def test_send_puts_the_probe_on_the_request_and_idles_it_on_retry() -> None:
    seen: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("trace"))
        return httpx.Response(429 if len(seen) == 1 else 200, json={"request_id": "r"})

    fal = FakeFal().on("POST", "/fal-ai/flux/dev", answer)
    probe = SendProbe()
    await _http(fal).send("submit", "POST", SUBMIT_URL, json={}, probe=probe)
    assert seen == [probe, probe]
    assert not probe.never_sent  # the second attempt was handed over, and answered

    refused = FakeFal().on("POST", "/fal-ai/flux/dev", httpx.Response(429))
    probe = SendProbe()
    with pytest.raises(ApiError):
        await _http(refused, RetryPolicy(max_attempts=1)).send(
            "submit", "POST", SUBMIT_URL, json={}, probe=probe
        )
    assert not probe.never_sent  # not retried: the last attempt stays "maybe sent"

    plain = FakeFal().on("GET", "/x", answer)
    await _http(plain).send("status", "GET", "https://queue.fal.run/x")
    assert seen[-1] is None  # no probe given, none put on the request


# ---- reads: garbled, streamed, cut off ----


async def test_a_garbled_read_is_read_again() -> None:
    fal = FakeFal().on(
        "GET",
        "/fal-ai/flux/requests/r1/status",
        httpx.Response(200, text="<html>oops"),
        httpx.Response(200, json={"status": "IN_QUEUE"}),
    )
    response = await _http(fal).send("status", "GET", URL)
    assert json_body(response) == {"status": "IN_QUEUE"}
    assert len(fal.requests) == 2


async def test_garbled_reads_stop_at_max_attempts() -> None:
    fal = FakeFal().on("GET", "/fal-ai/flux/requests/r1/status", httpx.Response(200, text="no"))
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001, deadline=5)
    response = await _http(fal, policy).send("status", "GET", URL)
    assert json_body(response) is None  # the caller reports the body it cannot parse
    assert len(fal.requests) == 2


async def test_garbled_reads_stop_at_the_deadline(clock: VirtualClock) -> None:
    clock.now = 1000.0  # far from zero: the deadline is measured from the first attempt
    fal = FakeFal().on("GET", "/fal-ai/flux/requests/r1/status", httpx.Response(200, text="no"))
    policy = RetryPolicy(max_attempts=50, base_delay=0.01, max_delay=0.01, deadline=0.035)
    await _http(fal, policy).send("status", "GET", URL)
    assert clock.sleeps
    assert sum(clock.sleeps) <= 0.035
    assert len(fal.requests) == len(clock.sleeps) + 1
    assert len(fal.requests) <= 8  # waits of 0.005-0.01 s within 0.035 s


async def test_a_garbled_submit_or_error_page_is_not_read_again() -> None:
    fal = FakeFal().on("POST", "/fal-ai/flux/dev", httpx.Response(200, text="not json"))
    response = await _http(fal).send("submit", "POST", SUBMIT_URL, json={})
    assert response.text == "not json"
    assert len(fal.requests) == 1


async def test_a_read_is_returned_read_and_a_stream_unread() -> None:
    fal = FakeFal().on("GET", "/x", lambda r: httpx.Response(200, stream=_Chunks(b'{"a": ', b"1}")))
    http = _http(fal)
    response = await http.send("status", "GET", "https://queue.fal.run/x")
    assert response.is_closed
    assert json_body(response) == {"a": 1}
    async with http.stream("stream", "GET", "https://queue.fal.run/x") as streamed:
        assert not streamed.is_stream_consumed
        assert [chunk async for chunk in streamed.aiter_bytes()] == [b'{"a": ', b"1}"]
    assert streamed.is_closed


async def test_an_error_body_is_read_even_when_streaming() -> None:
    fal = FakeFal().on(
        "GET",
        "/x",
        lambda r: httpx.Response(422, stream=_Chunks(b'{"detail": "bad ', b'thing"}')),
    )
    with pytest.raises(ApiError, match="bad thing"):
        await _http(fal).send("stream", "GET", "https://queue.fal.run/x", stream=True)


async def test_a_body_cut_off_midway_is_read_again() -> None:
    cut = httpx.ReadError("connection reset")
    fal = FakeFal().on(
        "GET",
        "/fal-ai/flux/requests/r1/status",
        lambda r: httpx.Response(200, stream=_Chunks(b'{"status": ', then=cut)),
        httpx.Response(200, json={"status": "COMPLETED"}),
    )
    response = await _http(fal).send("status", "GET", URL)
    assert json_body(response) == {"status": "COMPLETED"}
    assert len(fal.requests) == 2


def test_json_body_is_none_for_text_and_parsed_once() -> None:
    text = httpx.Response(200, text="plain")
    assert json_body(text) is None
    assert json_body(text) is None
    data = httpx.Response(200, json={"a": [1]})
    first = json_body(data)
    assert first == {"a": [1]}
    assert json_body(data) is first  # cached on the response


# ---- giving up: which error, and its words ----


async def test_a_submit_never_connected_is_a_plain_transport_error() -> None:
    fal = FakeFal().on("POST", "/fal-ai/flux/dev", httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as caught:
        await _http(fal).send("submit", "POST", SUBMIT_URL, json={})
    assert type(caught.value) is TransportError  # not "uncertain": it never left
    assert str(caught.value) == (
        f"submit could not talk to Fal ({SUBMIT_URL}): ConnectError: refused "
        "(gave up after 4 attempts)"
    )


async def test_one_attempt_says_nothing_of_attempts() -> None:
    fal = FakeFal().on("GET", "/fal-ai/flux/requests/r1/status", httpx.Response(404, json={}))
    with pytest.raises(ApiError) as caught:
        await _http(fal).send("status", "GET", URL)
    assert "attempt" not in str(caught.value)


async def test_two_attempts_are_told() -> None:
    fal = FakeFal().on("GET", "/fal-ai/flux/requests/r1/status", httpx.Response(503))
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001, deadline=5)
    with pytest.raises(ApiError, match=r"\(gave up after 2 attempts\)$"):
        await _http(fal, policy).send("status", "GET", URL)


async def test_a_timed_out_read_names_the_url_without_its_query() -> None:
    fal = FakeFal().on("GET", "/fal-ai/flux/requests/r1/status", httpx.ReadTimeout(""))
    with pytest.raises(FalTimeoutError) as caught:
        await _http(fal, RetryPolicy(max_attempts=1)).send("status", "GET", URL + "?logs=1")
    assert str(caught.value) == f"status timed out talking to Fal ({URL}): ReadTimeout"


async def test_an_uncertain_submit_names_its_cause_and_request_id() -> None:
    fal = FakeFal().on(
        "POST",
        "/fal-ai/flux/dev",
        httpx.Response(500, headers={"x-fal-request-id": "rid-1"}, json={"detail": "boom"}),
    )
    with pytest.raises(SubmitUncertainError) as caught:
        await _http(fal).send("submit", "POST", SUBMIT_URL + "?fal_webhook=secret", json={})
    error = caught.value
    assert (error.request_id, error.status_code) == ("rid-1", 500)
    assert str(error) == (
        f"submit to {SUBMIT_URL} failed after sending (HTTP 500); the job may have been "
        "queued (request id rid-1), so it was not sent again"
    )
    assert len(fal.requests) == 1


async def test_an_uncertain_submit_without_request_id() -> None:
    fal = FakeFal().on("POST", "/fal-ai/flux/dev", httpx.ReadTimeout("slow"))
    with pytest.raises(SubmitUncertainError) as caught:
        await _http(fal).send("submit", "POST", SUBMIT_URL, json={})
    assert (caught.value.request_id, caught.value.status_code) == (None, None)
    assert str(caught.value) == (
        f"submit to {SUBMIT_URL} failed after sending (ReadTimeout: slow); the job may have "
        "been queued, so it was not sent again"
    )


async def test_an_uncertain_run_says_it_may_have_been_billed() -> None:
    fal = FakeFal().on(
        "POST", "/fal-ai/flux/dev", httpx.Response(502, headers={"x-fal-request-id": "rid-2"})
    )
    with pytest.raises(TransportError) as caught:
        await _http(fal).send("run", "POST", RUN_URL, json={})
    error = caught.value
    assert type(error) is TransportError
    assert (error.request_id, error.status_code) == ("rid-2", 502)
    assert str(error) == (
        f"run at {RUN_URL} failed after sending (HTTP 502); it may have executed and been "
        "billed, so it was not sent again"
    )
    dropped = FakeFal().on("POST", "/fal-ai/flux/dev", httpx.RemoteProtocolError("gone"))
    with pytest.raises(TransportError, match=r"failed after sending \(RemoteProtocolError: gone"):
        await _http(dropped).send("run", "POST", RUN_URL, json={})


async def test_an_error_body_that_echoes_the_key_is_scrubbed() -> None:
    fal = FakeFal().on(
        "GET", "/x", httpx.Response(401, json={"detail": f"bad key {KEY}", "key": KEY})
    )
    with pytest.raises(ApiError) as caught:
        await _http(fal).send("status", "GET", "https://queue.fal.run/x")
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value.body)
    assert caught.value.body is not None


async def test_a_url_that_cannot_be_built_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="invalid URL for status: "):
        await _http(FakeFal()).send("status", "GET", "https://[::1")


def test_exception_text() -> None:
    assert exception_text(httpx.ReadTimeout("")) == "ReadTimeout"
    assert exception_text(httpx.ReadTimeout("  ")) == "ReadTimeout"
    assert exception_text(ValueError(" bad ")) == "ValueError: bad"


# ---- what the log says ----


async def test_each_retry_and_attempt_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    fal = FakeFal().on(
        "GET",
        "/fal-ai/flux/requests/r1/status",
        httpx.Response(503),
        httpx.ConnectError("refused"),
        httpx.Response(200, json={}),
    )
    with caplog.at_level(logging.DEBUG, logger="falkit.client"):
        await _http(fal).send("status", "GET", URL + "?logs=1")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == f"GET {URL} -> 503"
    assert lines[1].startswith(f"retrying status {URL} in 0.")
    assert lines[1].endswith("s (attempt 1: HTTP 503)")
    assert lines[2] == f"GET {URL} failed: ConnectError('refused')"
    assert lines[3].endswith("s (attempt 2: ConnectError)")
    assert lines[4] == f"GET {URL} -> 200"
