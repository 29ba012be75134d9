"""Table tests of the pure retry rules."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from falkit.client import RetryPolicy, retry_delay, should_retry
from falkit.client.retry import may_have_reached_fal, parse_retry_after

POLICY = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=8.0, deadline=60.0)
RID = {"x-fal-request-id": "abc"}
TIMEOUT_TYPE = {"X-Fal-Request-Timeout-Type": "user"}
_REQ = httpx.Request("GET", "https://queue.fal.run/x")

CONNECT = httpx.ConnectError("refused", request=_REQ)
CONNECT_TIMEOUT = httpx.ConnectTimeout("slow", request=_REQ)
POOL_TIMEOUT = httpx.PoolTimeout("pool", request=_REQ)
READ_TIMEOUT = httpx.ReadTimeout("slow", request=_REQ)
READ_ERROR = httpx.ReadError("reset", request=_REQ)
DROPPED = httpx.RemoteProtocolError("Server disconnected", request=_REQ)
WRITE_ERROR = httpx.WriteError("broken pipe", request=_REQ)
UNSUPPORTED = httpx.UnsupportedProtocol("ftp", request=_REQ)


@pytest.mark.parametrize(
    ("operation", "status_code", "exc", "headers", "expected"),
    [
        # throttling: every operation, submit included (the request was not processed)
        ("submit", 429, None, {}, True),
        ("submit", 408, None, {}, True),
        ("submit", 409, None, {}, True),
        ("status", 429, None, {"Retry-After": "3"}, True),
        # ingress 502/503/504 (no request id): nobody saw it, so even a submit may go again
        ("submit", 502, None, {}, True),
        ("submit", 503, None, {}, True),
        ("submit", 504, None, {}, True),
        ("run", 503, None, {}, True),
        # an app answered (request id): a submit may have been queued -> never again
        ("submit", 503, None, RID, False),
        ("submit", 502, None, RID, False),
        ("run", 504, None, RID, False),
        # ...but the queue's status/cancel/stream infrastructure failing is transient
        ("status", 503, None, RID, True),
        ("cancel", 502, None, RID, True),
        ("stream", 504, None, RID, True),
        # a result is fetched only after COMPLETED without error, so its 5xx is transient
        ("result", 503, None, RID, True),
        ("result", 503, None, {}, True),
        # 500: reads of the queue go again (bounded); a submit or a cancel never
        ("submit", 500, None, {}, False),
        ("cancel", 500, None, {}, False),
        ("status", 500, None, {}, True),
        ("result", 500, None, RID, True),
        # never a 504 caused by the caller's own start timeout
        ("submit", 504, None, TIMEOUT_TYPE, False),
        ("status", 504, None, TIMEOUT_TYPE, False),
        # client errors are final
        ("status", 400, None, {}, False),
        ("submit", 401, None, {}, False),
        ("result", 404, None, {}, False),
        ("result", 422, None, {}, False),
        # connection never made: safe for everything
        ("submit", None, CONNECT, {}, True),
        ("submit", None, CONNECT_TIMEOUT, {}, True),
        ("submit", None, POOL_TIMEOUT, {}, True),
        ("run", None, CONNECT, {}, True),
        # failures after sending: reads go again, submit/run never
        ("submit", None, READ_TIMEOUT, {}, False),
        ("submit", None, READ_ERROR, {}, False),
        ("submit", None, DROPPED, {}, False),
        ("submit", None, WRITE_ERROR, {}, False),
        ("run", None, READ_TIMEOUT, {}, False),
        ("status", None, READ_TIMEOUT, {}, True),
        ("result", None, DROPPED, {}, True),
        ("cancel", None, READ_ERROR, {}, True),
        ("stream", None, READ_TIMEOUT, {}, True),
        ("token", None, READ_ERROR, {}, True),
        ("upload", None, WRITE_ERROR, {}, True),
        # errors that a second try cannot fix
        ("status", None, UNSUPPORTED, {}, False),
        ("status", None, ValueError("bug"), {}, False),
        ("status", None, None, {}, False),
    ],
)
def test_should_retry(
    operation: str,
    status_code: int | None,
    exc: BaseException | None,
    headers: dict[str, str],
    expected: bool,
) -> None:
    decided = should_retry(
        operation=operation,
        status_code=status_code,
        exc=exc,
        headers=headers,
        attempt=1,
        policy=POLICY,
    )
    assert decided is expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, True), (4, True), (5, False), (9, False)])
def test_should_retry_stops_at_max_attempts(attempt: int, expected: bool) -> None:
    decided = should_retry(
        operation="status", status_code=503, exc=None, headers={}, attempt=attempt, policy=POLICY
    )
    assert decided is expected


def test_header_names_match_whatever_their_case() -> None:
    for headers in ({"X-FAL-REQUEST-ID": "a"}, httpx.Headers({"x-fal-request-id": "a"})):
        assert not should_retry(
            operation="submit", status_code=503, exc=None, headers=headers, attempt=1, policy=POLICY
        )


@pytest.mark.parametrize(
    ("status_code", "exc", "headers", "reached"),
    [
        (None, CONNECT, {}, False),
        (None, CONNECT_TIMEOUT, {}, False),
        (None, POOL_TIMEOUT, {}, False),
        (None, READ_TIMEOUT, {}, True),
        (None, DROPPED, {}, True),
        (None, WRITE_ERROR, {}, True),
        (429, None, {}, False),
        (503, None, {}, False),
        (503, None, RID, True),
        (500, None, RID, True),
        (500, None, {}, False),
        (422, None, RID, False),
        (None, None, {}, True),
    ],
)
def test_may_have_reached_fal(
    status_code: int | None, exc: BaseException | None, headers: dict[str, str], reached: bool
) -> None:
    assert may_have_reached_fal(status_code=status_code, exc=exc, headers=headers) is reached


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [
        (1, 0.5, 0.5),  # base, no jitter at the midpoint
        (2, 0.5, 1.0),
        (3, 0.5, 2.0),
        (4, 0.5, 4.0),
        (5, 0.5, 8.0),  # reaches the cap
        (9, 0.5, 8.0),  # stays at the cap
        (1, 0.0, 0.25),  # jitter low end: 50 %
        (1, 0.999, 0.7495),  # jitter high end: almost 150 %
        (5, 0.999, 8.0),  # jitter never exceeds the cap
    ],
)
def test_retry_delay_backoff(attempt: int, rng: float, expected: float) -> None:
    delay = retry_delay(attempt=attempt, headers={}, policy=POLICY, rng=lambda: rng)
    assert delay == pytest.approx(expected)


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("3", 3.0),  # the server's hint wins over backoff (0.5)
        ("0", 0.0),
        ("1.5", 1.5),
        ("30", 30.0),  # above max_delay: still honoured...
        ("600", 60.0),  # ...but never past the deadline
        ("-4", 0.0),
        (email.utils.formatdate(NOW + 12, usegmt=True), 12.0),  # HTTP date
        (email.utils.formatdate(NOW - 12, usegmt=True), 0.0),  # a date in the past
        ("soon", 0.5),  # unreadable: backoff
        ("", 0.5),
    ],
)
def test_retry_delay_honours_retry_after(retry_after: str, expected: float) -> None:
    delay = retry_delay(
        attempt=1, headers={"Retry-After": retry_after}, policy=POLICY, rng=lambda: 0.5, now=NOW
    )
    assert delay == pytest.approx(expected)


def test_parse_retry_after_absent() -> None:
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}, {"deadline": -1.0}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"base_delay": -0.001}, "delays and deadline must not be negative"),
        ({"max_delay": -1.0}, "delays and deadline must not be negative"),
        ({"deadline": -1.0}, "delays and deadline must not be negative"),
    ],
)
def test_policy_says_what_is_wrong(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_edges_are_allowed() -> None:
    """One attempt (never retry) and zero waits are policies, not mistakes."""
    policy = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, deadline=0.0)
    assert policy.max_attempts == 1
    assert not should_retry(
        operation="status", status_code=503, exc=None, headers={}, attempt=1, policy=policy
    )


def test_a_500_on_the_status_stream_is_retried_like_other_queue_reads() -> None:
    for operation in ("status", "stream", "result"):
        assert should_retry(
            operation=operation, status_code=500, exc=None, headers={}, attempt=1, policy=POLICY
        )
    for operation in ("cancel", "token", "upload", "submit", "run"):
        assert not should_retry(
            operation=operation, status_code=500, exc=None, headers={}, attempt=1, policy=POLICY
        )


def test_an_http_date_is_read_against_the_clock_when_no_time_is_given() -> None:
    import time

    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = parse_retry_after(soon)
    assert waited is not None
    assert 25 <= waited <= 30
