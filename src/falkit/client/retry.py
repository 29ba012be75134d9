"""When to retry a request to Fal, and how long to wait: pure functions, table-tested.

The rule that matters most: **a submit (or a sync run) is retried only when it certainly did not
reach Fal** — the connection was never made, or Fal's gateway answered 408/409/429 or an
ingress-style 502/503/504 (no ``x-fal-request-id``, so no app saw it). Anything else that may have
queued a job (a timeout after sending, a dropped connection, a 5xx carrying a request id) is not
re-sent: the caller gets SubmitUncertainError instead of a second paid job.

Everything else is safe to repeat and retries any transient failure: the reads (status, stream,
result), cancel (idempotent), the upload token, and uploads (a duplicate upload is only a spare
copy of a file). Never retried: 500 (a bug will not go away), and a 504 carrying
``X-Fal-Request-Timeout-Type`` (the caller's own start timeout expired).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

#: Operations that may start a paid job; repeated only when the request certainly never arrived.
UNSAFE_OPERATIONS = frozenset({"submit", "run"})
#: Status codes Fal's gateway uses for "slow down / try again" (the request was not processed).
THROTTLE_CODES = frozenset({408, 409, 429})
#: Gateway codes retried when they come from the ingress (no request id) or on a read.
GATEWAY_CODES = frozenset({502, 503, 504})
#: Exceptions raised before any byte of the request reached the server.
NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
#: Exceptions raised before any connection was tried (a URL httpx cannot send to): not
#: retried, and certainly not received.
UNSENDABLE_ERRORS: tuple[type[BaseException], ...] = (httpx.UnsupportedProtocol,)
#: Exceptions that may go away on a second try (a read may repeat them freely).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in all, backoff base and cap (seconds), overall deadline."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 10.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.deadline) < 0:
            raise ValueError("delays and deadline must not be negative")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value, whatever the case of the mapping's keys."""
    if isinstance(headers, httpx.Headers):
        found: str | None = headers.get(name)
        return found
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def is_ingress_error(status_code: int, headers: Mapping[str, str]) -> bool:
    """A 502/503/504 from Fal's gateway itself: no app handled the request (no request id)."""
    return status_code in GATEWAY_CODES and _header(headers, "x-fal-request-id") is None


def may_have_reached_fal(
    *, status_code: int | None, exc: BaseException | None, headers: Mapping[str, str]
) -> bool:
    """Whether a failed unsafe request (submit, run) may have been accepted by Fal.

    Only connection failures before sending (refused, DNS, a URL that cannot be sent to),
    throttling answers and ingress errors are certain misses; everything else (timeouts after
    sending, dropped connections, 5xx with a request id, unknown failures) may have queued a
    job.
    """
    if exc is not None:
        return not isinstance(exc, NOT_SENT_ERRORS + UNSENDABLE_ERRORS)
    if status_code is None:
        return True
    # Only an app's own 5xx carries a request id; 4xx (throttling included) and the gateway's
    # ingress errors were answered before any app took the request.
    return status_code >= 500 and _header(headers, "x-fal-request-id") is not None


def should_retry(
    *,
    operation: str,
    status_code: int | None,
    exc: BaseException | None,
    headers: Mapping[str, str],
    attempt: int,
    policy: RetryPolicy,
) -> bool:
    """Whether to send again after ``attempt`` (1-based) failed with this status or exception."""
    if attempt >= policy.max_attempts:
        return False
    unsafe = operation in UNSAFE_OPERATIONS
    if exc is not None:
        if isinstance(exc, NOT_SENT_ERRORS):
            return True
        return not unsafe and isinstance(exc, TRANSIENT_ERRORS)
    if status_code is None:
        return False
    if status_code in THROTTLE_CODES:
        return True
    if status_code == 500 and not unsafe and operation in ("status", "stream", "result"):
        # The queue's own reads fail now and then; the job itself is unaffected. (A failed
        # job's result is never fetched without its COMPLETED status saying so first.)
        return True
    if status_code not in GATEWAY_CODES:
        return False  # includes other 5xx and every 4xx: sending again gets the same answer
    if status_code == 504 and _header(headers, "x-fal-request-timeout-type") is not None:
        return False  # the caller's start timeout expired; retrying would only expire again
    if is_ingress_error(status_code, headers):
        return True
    # The app answered; for a read it is the queue's infrastructure failing, which passes.
    return not unsafe


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_delay(
    *,
    attempt: int,
    headers: Mapping[str, str],
    policy: RetryPolicy,
    rng: Callable[[], float] = random.random,
    now: float | None = None,
) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based).

    The server's Retry-After wins when present (bounded by the policy's deadline); otherwise
    exponential backoff from base_delay, jittered to 50-150 % and capped at max_delay.
    """
    hinted = parse_retry_after(_header(headers, "retry-after"), now=now)
    if hinted is not None:
        return min(hinted, policy.deadline)
    backoff = min(policy.max_delay, policy.base_delay * 2.0 ** max(0, attempt - 1))
    return min(policy.max_delay, backoff * (0.5 + rng()))
