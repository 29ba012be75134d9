"""FalClient: Fal's queue (submit, status, watch, result, cancel), sync run and uploads.

One async implementation over one ``httpx.AsyncClient``. A request's URLs are the ones submit
returned (kept in a RequestHandle); :meth:`FalClient.handle` rebuilds them from the ids alone to
reattach to a request after a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from falkit.client.endpoints import EndpointId, check_under, rebuild_handle, stream_url
from falkit.client.http import (
    FalHttp,
    RequestStats,
    SendProbe,
    build_http_client,
    exception_text,
    json_body,
)
from falkit.client.retry import RetryPolicy
from falkit.client.status import LogWindow, Scrubber, parse_status
from falkit.client.storage import Uploader
from falkit.errors import (
    ApiError,
    ServiceDisabledError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
    error_from_response,
)
from falkit.types import Completed, FalResponse, RequestHandle, Status

if TYPE_CHECKING:
    from falkit.client.platform import PlatformClient
    from falkit.config import Settings

logger = logging.getLogger("falkit.client")

Priority = Literal["normal", "low"]
#: Stream connections tried per watch() before polling (the second only after a cut).
STREAM_CONNECTIONS = 2
#: Connections for short requests (submit, status, result, cancel, uploads, downloads).
DEFAULT_CONNECTIONS = 16
#: Connections for status streams: at most this many jobs are streamed at once.
DEFAULT_STREAM_CONNECTIONS = 48
#: A status stream silent this long is dropped (Fal and the emulator ping every few seconds).
STREAM_READ_TIMEOUT = 60.0


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _json_body(response: httpx.Response) -> Any:
    return json_body(response)


def _position(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _billable_units(response: httpx.Response) -> float | None:
    value = response.headers.get("x-fal-billable-units")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _to_fal_response(response: httpx.Response, what: str, scrub: Scrubber) -> FalResponse:
    """The output as Fal sent it, the key masked in it (see falkit.client.status)."""
    body = scrub(_json_body(response))
    request_id = response.headers.get("x-fal-request-id")
    if not isinstance(body, dict):
        raise ApiError(
            f"Fal's {what} is not a JSON object: {scrub.text(response.text[:200])!r}",
            request_id=request_id,
            status_code=response.status_code,
        )
    return FalResponse(data=body, request_id=request_id, billable_units=_billable_units(response))


def _submit_headers(
    start_timeout: float | None, priority: Priority | None, hint: str | None
) -> dict[str, str]:
    """Optional submit headers, validated before anything is sent."""
    headers: dict[str, str] = {}
    if start_timeout is not None:
        if start_timeout <= 1:
            raise ValidationError.field(
                "start_timeout", f"{start_timeout} is too short", "more than 1 second"
            )
        headers["X-Fal-Request-Timeout"] = str(float(start_timeout))
    if priority is not None:
        if priority not in ("normal", "low"):
            raise ValidationError.field("priority", f"{priority!r} is unknown", "normal, low")
        headers["X-Fal-Queue-Priority"] = priority
    if hint:
        headers["X-Fal-Runner-Hint"] = hint
    return headers


class FalClient:
    """The one async client for Fal: queue, sync run, uploads; retries and errors built in.

    Without an API key every call raises ServiceDisabledError saying how to set FAL_API_KEY.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        connections: int = DEFAULT_CONNECTIONS,
        stream_connections: int = DEFAULT_STREAM_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self.stats = RequestStats()
        self.retry = retry or RetryPolicy()
        self._transport, self._timeout = transport, timeout
        self._stream_connections = stream_connections
        self._tls = None if transport is not None else httpx.create_ssl_context()
        self._client = build_http_client(
            settings, transport=transport, timeout=timeout, stats=self.stats,
            connections=connections, tls=self._tls,
        )  # fmt: skip
        self._http = FalHttp(settings, self._client, self.retry)
        self._streams: FalHttp | None = None
        self._uploader = Uploader(self._http)

    @property
    def _stream_http(self) -> FalHttp:
        """Status streams live in their own pool (made on first use), so open streams never
        starve short requests."""
        if self._streams is None:
            client = build_http_client(
                self.settings, transport=self._transport, timeout=self._timeout,
                stats=self.stats, connections=self._stream_connections,
                read_timeout=STREAM_READ_TIMEOUT, tls=self._tls,
            )  # fmt: skip
            self._streams = FalHttp(self.settings, client, self.retry)
        return self._streams

    def __repr__(self) -> str:
        return f"FalClient(key={self.settings.masked_key}, queue_url={self.settings.queue_url})"

    def scrub(self, value: Any) -> Any:
        """``value`` (text or JSON data from Fal: a webhook's payload, say) with the API key
        masked; the client does this itself to every status, result and error."""
        return self._http.scrub(value)

    @property
    def platform(self) -> PlatformClient:
        """Fal's platform API (request history), over the short-request pool."""
        from falkit.client.platform import PlatformClient

        self._require_enabled()
        return PlatformClient(self._http)

    @property
    def http(self) -> httpx.AsyncClient:
        """The short-request httpx client (the key is only ever sent to ``settings.fal_urls``)."""
        return self._client

    async def __aenter__(self) -> FalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._streams is not None:
            await self._streams.client.aclose()

    def _require_enabled(self) -> None:
        if not self.settings.enabled:
            raise ServiceDisabledError()

    # ---- queue ----

    async def submit(
        self,
        endpoint_id: str,
        arguments: dict[str, Any],
        *,
        webhook_url: str | None = None,
        start_timeout: float | None = None,
        priority: Priority | None = None,
        hint: str | None = None,
        probe: SendProbe | None = None,
    ) -> RequestHandle:
        """Queue a request once; its handle holds the URLs Fal returned.

        Raises SubmitUncertainError (never re-sends) when the submit may have reached Fal.
        ``probe`` tells, if this is interrupted, whether the POST may have left.
        """
        if probe is not None:
            probe.exact = self._transport is None  # httpcore traces its own writes
        self._require_enabled()
        endpoint = EndpointId.parse(endpoint_id)
        headers = _submit_headers(start_timeout, priority, hint)
        params = {"fal_webhook": webhook_url} if webhook_url else None
        url = check_under(self.settings.queue_url, f"{self.settings.queue_url}/{endpoint.full}")
        response = await self._http.send(
            "submit", "POST", url, json=arguments, headers=headers, params=params, probe=probe
        )
        return self._handle_from_submit(endpoint_id, response)

    def _handle_from_submit(self, endpoint_id: str, response: httpx.Response) -> RequestHandle:
        body = _json_body(response)
        fields = body if isinstance(body, dict) else {}
        request_id = fields.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise SubmitUncertainError(
                f"Fal accepted the submit ({response.status_code}) without a request id; "
                "the job may have been queued, so it was not sent again",
                request_id=response.headers.get("x-fal-request-id"),
                status_code=response.status_code,
            )
        names = ("status_url", "response_url", "cancel_url")
        urls = {name: fields.get(name) for name in names}
        if not all(isinstance(value, str) and value for value in urls.values()):
            # Lenient: a server that leaves a URL out gets the one Fal's layout implies.
            try:
                rebuilt = rebuild_handle(self.settings.queue_url, endpoint_id, request_id)
            except ValidationError:
                raise SubmitUncertainError(
                    f"Fal queued request {request_id!r} but gave no usable status URLs",
                    request_id=request_id,
                ) from None
            urls = {
                name: value if isinstance(value, str) and value else getattr(rebuilt, name)
                for name, value in urls.items()
            }
        return RequestHandle(
            endpoint_id=endpoint_id,
            request_id=request_id,
            status_url=str(urls["status_url"]),
            response_url=str(urls["response_url"]),
            cancel_url=str(urls["cancel_url"]),
            queue_position=_position(fields.get("queue_position")),
        )

    def handle(self, endpoint_id: str, request_id: str) -> RequestHandle:
        """Reattach to a request by ids: ``{queue_url}/{owner}/{alias}/requests/{id}``."""
        return rebuild_handle(self.settings.queue_url, endpoint_id, request_id)

    async def status(self, handle: RequestHandle, *, logs: bool = False) -> Status:
        """The request's current status (its logs are Fal's current window, not just new ones)."""
        response = await self._http.send(
            "status", "GET", handle.status_url, params={"logs": _flag(logs)}
        )
        body = _json_body(response)
        return parse_status(body, request_id=handle.request_id, scrub=self._http.scrub)

    async def watch(
        self,
        handle: RequestHandle,
        *,
        logs: bool = True,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
    ) -> AsyncIterator[Status]:
        """Follow a request to its end: the SSE status stream, else polling with backoff.

        Each InProgress/Completed carries only log lines not yielded before; the last status
        yielded is the Completed one (whose ``error`` is set if the job failed).
        """
        self._require_enabled()
        window = LogWindow()
        async with aclosing(self._streamed(handle, logs)) as streamed:
            async for status in streamed:
                fresh = window.fresh(status)
                yield fresh
                if isinstance(fresh, Completed):
                    return
        delay = max(0.0, poll_interval)
        while True:
            fresh = window.fresh(await self.status(handle, logs=logs))
            yield fresh
            if isinstance(fresh, Completed):
                return
            await asyncio.sleep(delay)
            delay = min(max_poll_interval, delay * 2)

    async def _streamed(self, handle: RequestHandle, logs: bool) -> AsyncGenerator[Status]:
        """Statuses from the SSE stream until COMPLETED; ends early if it cannot be used.

        A stream that will not open ends this at once; one cut after events is reconnected once.
        """
        for _ in range(STREAM_CONNECTIONS):
            received = 0
            try:
                async with aclosing(self._one_stream(handle, logs)) as events:
                    async for status in events:
                        received += 1
                        yield status
                        if isinstance(status, Completed):
                            return
                reason = "the stream closed before COMPLETED"
            except (TransportError, ApiError) as exc:
                reason = str(exc)
            logger.info("status stream of %s ended early: %s", handle.request_id, reason)
            if received == 0:
                return

    async def stream_status(
        self, handle: RequestHandle, *, logs: bool = True
    ) -> AsyncGenerator[Status]:
        """Statuses from one SSE status stream connection, until COMPLETED or the stream ends.

        Uses the stream pool; raises TransportError or ApiError when the stream fails. The
        statuses carry Fal's log window as it is (dedupe with a LogWindow).
        """
        self._require_enabled()
        async with aclosing(self._one_stream(handle, logs)) as events:
            async for status in events:
                yield status
                if isinstance(status, Completed):
                    return

    async def _one_stream(self, handle: RequestHandle, logs: bool) -> AsyncGenerator[Status]:
        from httpx_sse import EventSource

        url = stream_url(handle.status_url)
        params = {"logs": _flag(logs)}
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        async with self._stream_http.stream(
            "stream", "GET", url, params=params, headers=headers
        ) as resp:
            try:
                async for event in EventSource(resp).aiter_sse():
                    try:
                        body = json.loads(event.data) if event.data.strip() else None
                    except ValueError:
                        body = None
                    if body is not None:
                        yield parse_status(
                            body, request_id=handle.request_id, scrub=self._http.scrub
                        )
            except httpx.HTTPError as exc:
                raise TransportError(
                    f"status stream of {handle.request_id} failed: {exception_text(exc)}"
                ) from exc

    async def result(self, handle: RequestHandle) -> FalResponse:
        """The request's output; a failed job's error code and body become its exception."""
        response = await self._http.send("result", "GET", handle.response_url)
        return _to_fal_response(response, "result", self._http.scrub)

    async def cancel(self, handle: RequestHandle) -> str:
        """Ask Fal to cancel; Fal's word for the outcome (ALREADY_COMPLETED is not an error)."""
        response = await self._http.send("cancel", "PUT", handle.cancel_url, accept=(400,))
        body = _json_body(response)
        word = self._http.scrub(body.get("status")) if isinstance(body, dict) else None
        if response.status_code == 400:
            if word == "ALREADY_COMPLETED":
                return "ALREADY_COMPLETED"
            raise self._http.redact(error_from_response(response))
        return str(word) if word else "OK"

    # ---- sync run and uploads ----

    async def run(self, endpoint_id: str, arguments: dict[str, Any]) -> FalResponse:
        """Run synchronously on ``{run_url}/{endpoint_id}`` (no queue; never re-sent once sent)."""
        self._require_enabled()
        full = EndpointId.parse(endpoint_id).full
        url = check_under(self.settings.run_url, f"{self.settings.run_url}/{full}")
        response = await self._http.send("run", "POST", url, json=arguments)
        return _to_fal_response(response, "run output", self._http.scrub)

    async def upload(self, data: bytes, content_type: str, file_name: str | None = None) -> str:
        """Upload bytes (CDN v3, falling back to initiate + PUT); the URL models can read."""
        self._require_enabled()
        return await self._uploader.upload(data, content_type, file_name)

    async def upload_file(self, path: Path) -> str:
        """Upload a local file under its own name and guessed MIME type."""
        self._require_enabled()
        return await self._uploader.upload_file(Path(path))
