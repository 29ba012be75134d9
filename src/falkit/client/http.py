"""The HTTP layer under FalClient: auth scoped to Fal's URLs, request counting, retries.

Every request to Fal goes through :meth:`FalHttp.send`, the one place where

* retries happen (decided by :mod:`falkit.client.retry`),
* error responses become exceptions (through :func:`falkit.errors.error_from_response`),
* httpx's own exceptions become TransportError / FalTimeoutError / SubmitUncertainError.

The API key is attached by :class:`FalAuth` only to URLs under ``settings.fal_urls``, so the
same ``httpx.AsyncClient`` can download output files from anywhere without leaking it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Container, Generator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from falkit.client.retry import RetryPolicy, may_have_reached_fal, retry_delay, should_retry
from falkit.client.status import Scrubber
from falkit.errors import (
    ApiError,
    FalkitError,
    FalTimeoutError,
    ServiceDisabledError,
    SubmitUncertainError,
    TransportError,
    error_from_response,
)

if TYPE_CHECKING:
    from falkit.config import Settings

logger = logging.getLogger("falkit.client")

#: Request extension naming the operation, read by the request counter.
OPERATION_KEY = "falkit_operation"


class FalAuth(httpx.Auth):
    """``Authorization: Key …`` on requests to Fal's configured URLs, and nowhere else.

    A request that already carries an Authorization header (a CDN upload token) keeps it.
    """

    def __init__(self, key: str | None, bases: Iterable[str]) -> None:
        self._key = key
        self._bases = tuple(str(httpx.URL(base)).rstrip("/") for base in bases)

    def __repr__(self) -> str:
        from falkit.config import mask_key

        return f"FalAuth(key={mask_key(self._key)}, bases={self._bases!r})"

    def applies_to(self, url: httpx.URL | str) -> bool:
        """Whether ``url`` lies under one of the configured bases (whole path segments only)."""
        text = str(url)
        return any(
            text == base or text.startswith((base + "/", base + "?")) for base in self._bases
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._key and "authorization" not in request.headers and self.applies_to(request.url):
            request.headers["Authorization"] = f"Key {self._key}"
        yield request


class SendProbe:
    """Whether a request's bytes may have left this process (a submit's, through retries).

    Passed to :meth:`FalHttp.send` as ``probe``; it rides on the request as httpcore's
    ``trace`` extension. An attempt is *handed* when httpx gives it to the transport, *sent*
    once httpcore starts writing its headers; a retried attempt (a certain miss) makes it
    idle again. With httpx's own transport (``exact``) a handed attempt has sent nothing;
    a custom transport (tests' ASGI apps) tells nothing, so handed counts as maybe sent.
    """

    def __init__(self) -> None:
        self.exact = False
        self._state = "idle"

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name.endswith("send_request_headers.started"):
            self._state = "sent"

    def handed(self) -> None:
        self._state = "handed"

    def missed(self) -> None:
        """The attempt certainly did not reach Fal (it is about to be retried)."""
        self._state = "idle"

    @property
    def never_sent(self) -> bool:
        """No byte of the request (of any attempt still unanswered) can have left."""
        return self._state == "idle" or (self.exact and self._state == "handed")


@dataclass
class RequestStats:
    """HTTP requests made, in total and per operation (submit, status, stream, result, …)."""

    total: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)

    def count(self, operation: str) -> None:
        self.total += 1
        self.by_operation[operation] += 1

    def reset(self) -> None:
        self.total = 0
        self.by_operation.clear()

    def as_dict(self) -> dict[str, int]:
        """``{"total": n, "<operation>": n, …}`` for reports and benchmarks."""
        return {"total": self.total, **dict(sorted(self.by_operation.items()))}


def user_agent() -> str:
    from falkit import __version__

    return f"falkit/{__version__}"


def build_http_client(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None,
    timeout: float,
    stats: RequestStats,
    connections: int = 16,
    read_timeout: float | None = None,
    tls: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An httpx client: scoped auth, user agent, timeouts, request counting, a sized pool.

    Waiting for a free connection never times out (``pool=None``): a full pool is a local
    limit, and a local limit must never fail a job Fal has accepted; callers bound how many
    requests they start instead.
    """

    async def _count(request: httpx.Request) -> None:
        stats.count(str(request.extensions.get(OPERATION_KEY, "other")))
        probe = request.extensions.get("trace")
        if isinstance(probe, SendProbe):
            probe.handed()  # the transport has it now

    return httpx.AsyncClient(
        auth=FalAuth(settings.key, settings.fal_urls),
        headers={"User-Agent": user_agent()},
        timeout=httpx.Timeout(
            timeout,
            connect=min(timeout, 10.0),
            read=timeout if read_timeout is None else read_timeout,
            pool=None,
        ),
        transport=transport
        or httpx.AsyncHTTPTransport(
            verify=tls if tls is not None else True,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        ),
        event_hooks={"request": [_count]},
        follow_redirects=False,
    )


def _where(url: httpx.URL) -> str:
    """A URL for messages: no query string (it may carry a webhook URL with a secret)."""
    return str(url.copy_with(query=None))


@dataclass
class _Outcome:
    """What one attempt got: a response or an exception, never both."""

    response: httpx.Response | None = None
    exc: httpx.HTTPError | None = None

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers if self.response is not None else httpx.Headers()


class FalHttp:
    """Sends requests to Fal with the retry policy and maps every outcome to falkit's errors."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
    ) -> None:
        self.settings = settings
        self.client = client
        self.policy = policy
        self.scrub = Scrubber(settings.key, settings.masked_key)
        """Masks the key in anything Fal sent back (see falkit.client.status)."""

    def __repr__(self) -> str:
        return f"FalHttp(key={self.settings.masked_key}, policy={self.policy!r})"

    async def send(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        accept: Container[int] = (),
        stream: bool = False,
        probe: SendProbe | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; a 2xx (or a code in ``accept``) response, or a falkit error.

        With ``stream=True`` the body is not read: the caller must close the response.
        ``probe`` follows whether the request's bytes may have left (see SendProbe).
        """
        if not self.settings.enabled:
            raise ServiceDisabledError()
        request = self._build(operation, method, url, **kwargs)
        if probe is not None:
            request.extensions["trace"] = probe
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(request, stream=stream, accept=accept)
            response = outcome.response
            if response is not None and _ok(response, accept):
                if stream or not _garbled_read(operation, response):
                    return response
                delay = self._garbled_delay(attempt, started)
                if delay is None:
                    return response  # the caller reports the body it cannot parse
            else:
                delay = self._next_delay(operation, outcome, attempt, started)
            if delay is None:
                raise await self._give_up(operation, request, outcome, attempt)
            if response is not None:
                await response.aclose()
            if probe is not None:
                probe.missed()  # retried, so certainly not received: nothing in flight
            logger.info(
                "retrying %s %s in %.2fs (attempt %d: %s)",
                *(operation, _where(request.url), delay, attempt, _describe(outcome)),
            )
            await asyncio.sleep(delay)

    @asynccontextmanager
    async def stream(
        self, operation: str, method: str, url: str, **kwargs: Any
    ) -> AsyncIterator[httpx.Response]:
        """Open a streamed response (retrying the open like any read); closed on exit."""
        response = await self.send(operation, method, url, stream=True, **kwargs)
        try:
            yield response
        finally:
            await response.aclose()

    def _build(self, operation: str, method: str, url: str, **kwargs: Any) -> httpx.Request:
        try:
            return self.client.build_request(
                method, url, extensions={OPERATION_KEY: operation}, **kwargs
            )
        except httpx.InvalidURL as exc:  # nothing was sent: a configuration problem
            raise TransportError(f"invalid URL for {operation}: {exc}") from None

    async def _attempt(
        self, request: httpx.Request, *, stream: bool, accept: Container[int]
    ) -> _Outcome:
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            logger.debug("%s %s failed: %r", request.method, _where(request.url), exc)
            return _Outcome(exc=exc)
        logger.debug("%s %s -> %d", request.method, _where(request.url), response.status_code)
        if stream and _ok(response, accept):
            return _Outcome(response=response)
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            await response.aclose()
            return _Outcome(exc=exc)
        return _Outcome(response=response)

    def _garbled_delay(self, attempt: int, started: float) -> float | None:
        """A read answered 2xx with a body that is not JSON: a passing fault, read again."""
        if attempt >= self.policy.max_attempts:
            return None
        delay = retry_delay(attempt=attempt, headers={}, policy=self.policy)
        return None if time.monotonic() - started + delay > self.policy.deadline else delay

    def _next_delay(
        self, operation: str, outcome: _Outcome, attempt: int, started: float
    ) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        if not should_retry(
            operation=operation,
            status_code=outcome.status_code,
            exc=outcome.exc,
            headers=outcome.headers,
            attempt=attempt,
            policy=self.policy,
        ):
            return None
        delay = retry_delay(attempt=attempt, headers=outcome.headers, policy=self.policy)
        if time.monotonic() - started + delay > self.policy.deadline:
            return None
        return delay

    async def _give_up(
        self, operation: str, request: httpx.Request, outcome: _Outcome, attempt: int
    ) -> FalkitError:
        """The exception for a request that will not be sent again."""
        if outcome.response is not None:
            await outcome.response.aclose()  # its body was read by _attempt
        unsafe_miss = operation in ("submit", "run") and may_have_reached_fal(
            status_code=outcome.status_code, exc=outcome.exc, headers=outcome.headers
        )
        if unsafe_miss:
            error: FalkitError = _uncertain(operation, request, outcome)
        elif outcome.response is not None:
            error = error_from_response(outcome.response)
        else:
            error = _transport_error(operation, request, outcome.exc)
        if attempt > 1:
            error.message = f"{error.message} (gave up after {attempt} attempts)"
        return self.redact(error)

    def redact(self, error: FalkitError) -> FalkitError:
        """Defence in depth: a server echoing the key must not put it in our errors."""
        error.message = self.scrub.text(error.message)
        if isinstance(error, ApiError):
            error.body = self.scrub(error.body)
        error.args = (error.message,)
        return error


def _ok(response: httpx.Response, accept: Container[int]) -> bool:
    return response.is_success or response.status_code in accept


_JSON_READS = frozenset({"status", "result", "cancel", "token"})


_PARSED = "falkit_json"
_NOT_JSON = object()


def json_body(response: httpx.Response) -> Any:
    """The response's JSON body (None if it is not JSON), parsed once per response."""
    cached = response.extensions.get(_PARSED)
    if cached is None:
        try:
            cached = response.json()
        except ValueError:
            cached = _NOT_JSON
        response.extensions[_PARSED] = cached
    return None if cached is _NOT_JSON else cached


def _garbled_read(operation: str, response: httpx.Response) -> bool:
    """A JSON read whose 2xx body does not parse (reads only: a submit is never re-sent)."""
    if operation not in _JSON_READS or not response.is_success:
        return False
    json_body(response)
    return response.extensions.get(_PARSED) is _NOT_JSON


def exception_text(exc: BaseException) -> str:
    """``Type: message``, or just the type when the message is empty (httpx timeouts)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe(outcome: _Outcome) -> str:
    if outcome.exc is not None:
        return type(outcome.exc).__name__
    return f"HTTP {outcome.status_code}"


def _transport_error(
    operation: str, request: httpx.Request, exc: httpx.HTTPError | None
) -> TransportError:
    detail = exception_text(exc) if exc is not None else "no response"
    where = _where(request.url)
    if isinstance(exc, httpx.TimeoutException):
        return FalTimeoutError(f"{operation} timed out talking to Fal ({where}): {detail}")
    return TransportError(f"{operation} could not talk to Fal ({where}): {detail}")


def _uncertain(operation: str, request: httpx.Request, outcome: _Outcome) -> TransportError:
    """A submit or run that may have reached Fal: reported, never re-sent."""
    request_id = outcome.headers.get("x-fal-request-id")
    cause = (
        exception_text(outcome.exc) if outcome.exc is not None else f"HTTP {outcome.status_code}"
    )
    where = _where(request.url)
    if operation == "run":
        return TransportError(
            f"run at {where} failed after sending ({cause}); it may have executed and been "
            "billed, so it was not sent again",
            request_id=request_id,
            status_code=outcome.status_code,
        )
    known = f" (request id {request_id})" if request_id else ""
    return SubmitUncertainError(
        f"submit to {where} failed after sending ({cause}); the job may have been queued"
        f"{known}, so it was not sent again",
        request_id=request_id,
        status_code=outcome.status_code,
    )
