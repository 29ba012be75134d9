"""Following many jobs at Fal: a capped number of status streams, polls for the rest.

A status stream (SSE) tells the moment a job moves and costs one request, but holds a
connection for the job's whole life; thousands of jobs cannot each hold one. So at most
``stream_cap`` jobs are streamed at once; every other job is polled with growing, jittered
intervals (and all polls together stay under ``poll_rate`` a second), and is promoted to a
stream as soon as one frees up (streams are handed out first come, first served).

Nothing local ever ends the following of a job Fal accepted: transport errors, full pools,
timeouts and Fal's own 5xx are waited out and tried again. Only Fal's answer about the job
ends it — its output, its error, or that it does not exist. A webhook (or anything else that
learns the outcome) can finish a job through :meth:`Follow.deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from falkit.client.status import LogWindow
from falkit.errors import (
    ApiError,
    AuthenticationError,
    FalkitError,
    NotFoundError,
    ServiceDisabledError,
    TransportError,
    ValidationError,
)
from falkit.types import Completed, FalResponse, RequestHandle, Status

if TYPE_CHECKING:
    from falkit.client import FalClient

logger = logging.getLogger("falkit.follow")


@dataclass(frozen=True)
class FollowOptions:
    """How jobs are followed; see the module docstring."""

    stream_cap: int = 48
    """At most this many status streams open at once."""
    poll_initial: float = 0.5
    """First poll interval (seconds); it grows by ``poll_growth`` up to ``poll_max``."""
    poll_growth: float = 1.6
    poll_max: float = 15.0
    poll_rate: float = 200.0
    """All polls together: at most this many a second."""
    retry_max: float = 30.0
    """Longest wait between tries after a transport error or a 5xx while following."""

    def __post_init__(self) -> None:
        if self.stream_cap < 0:
            raise ValueError("stream_cap must be 0 or more")
        if self.poll_initial <= 0 or self.poll_max < self.poll_initial or self.poll_rate <= 0:
            raise ValueError("poll intervals and rate must be positive")


class PollGate:
    """Spaces requests so that together they stay under ``rate`` a second."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._gap
        if slot > now:
            await asyncio.sleep(slot - now)


#: Errors about the job itself or the account: following cannot go on (the job stays journaled).
_FATAL = (AuthenticationError, ServiceDisabledError, NotFoundError, ValidationError)


def is_transient(exc: BaseException) -> bool:
    """An error that following waits out: the job at Fal is unaffected by it."""
    if isinstance(exc, _FATAL):
        return False
    return isinstance(exc, TransportError | ApiError)


OnStatus = Callable[[Status], Awaitable[None]]


class Follower:
    """Follows jobs to their end for one engine: shared stream slots and poll pacing."""

    def __init__(self, client: FalClient, options: FollowOptions) -> None:
        self.client = client
        self.options = options
        self._streams = asyncio.Semaphore(options.stream_cap) if options.stream_cap else None
        self._gate = PollGate(options.poll_rate)
        self.open_streams = 0
        self.peak_streams = 0

    def follow(
        self,
        handle: RequestHandle,
        on_status: OnStatus,
        delivered: asyncio.Future[FalResponse],
        *,
        logs: bool = True,
    ) -> Follow:
        return Follow(self, handle, on_status, delivered, logs=logs)


class Follow:
    """One job being followed until Fal reports it COMPLETED (or ``delivered`` is set)."""

    def __init__(
        self,
        follower: Follower,
        handle: RequestHandle,
        on_status: OnStatus,
        delivered: asyncio.Future[FalResponse],
        *,
        logs: bool = True,
    ) -> None:
        self.follower = follower
        self.logs = logs
        self.handle = handle
        self.on_status = on_status
        self.delivered = delivered
        self.window = LogWindow()
        self.delay = follower.options.poll_initial
        self.stream_failures = 0
        self.errors = 0

    async def completed(self) -> Completed | FalResponse:
        """Fal's final status, or the response delivered from outside (a webhook)."""
        while True:
            if self.delivered.done():
                return self.delivered.result()
            slot = await self._stream_slot()
            if self.delivered.done():
                if slot:
                    self._release()
                return self.delivered.result()
            try:
                final = await self._racing(self._streamed() if slot else self._polled())
            except FalkitError as exc:
                if not is_transient(exc):
                    raise
                await self._pause(exc)
                continue
            finally:
                if slot:
                    self._release()
            if final is not None:
                return final

    async def _racing(self, attempt: Coroutine[Any, Any, Completed | None]) -> Completed | None:
        """One stream or poll, abandoned if the outcome is delivered meanwhile."""
        task: asyncio.Future[Any] = asyncio.ensure_future(attempt)
        waiters: set[asyncio.Future[Any]] = {task, self.delivered}
        try:
            await asyncio.wait(waiters, return_when="FIRST_COMPLETED")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, FalkitError):
                    await task
        if task.done() and not task.cancelled():
            final: Completed | None = task.result()
            return final
        return None

    async def _stream_slot(self) -> bool:
        """Wait up to the current poll interval for a stream; False: poll this time."""
        follower = self.follower
        if follower._streams is None or self.stream_failures >= 2:
            await _wait(self.delivered, self._next_delay())
            return False
        acquire: asyncio.Future[Any] = asyncio.ensure_future(follower._streams.acquire())
        waiters: set[asyncio.Future[Any]] = {acquire, self.delivered}
        try:
            await asyncio.wait(waiters, timeout=self._next_delay(), return_when="FIRST_COMPLETED")
        finally:
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            follower.open_streams += 1
            follower.peak_streams = max(follower.peak_streams, follower.open_streams)
            return True
        return False

    def _release(self) -> None:
        follower = self.follower
        follower.open_streams -= 1
        assert follower._streams is not None
        follower._streams.release()

    def _next_delay(self) -> float:
        """The wait before the next poll: growing, jittered to 75-125 %."""
        options = self.follower.options
        delay = self.delay * (0.75 + random.random() / 2)
        self.delay = min(options.poll_max, self.delay * options.poll_growth)
        return delay

    async def _streamed(self) -> Completed | None:
        received = 0
        try:
            stream = self.follower.client.stream_status(self.handle, logs=self.logs)
            async with aclosing(stream) as statuses:
                async for status in statuses:
                    received += 1
                    final = await self._seen(status)
                    if final is not None:
                        return final
        except FalkitError:
            if received == 0:
                self.stream_failures += 1
            raise
        if received == 0:
            self.stream_failures += 1
        self.delay = self.follower.options.poll_initial  # cut mid-way: look again soon
        return None

    async def _polled(self) -> Completed | None:
        await self.follower._gate.wait()
        status = await self.follower.client.status(self.handle, logs=self.logs)
        return await self._seen(status)

    async def _seen(self, status: Status) -> Completed | None:
        self.errors = 0
        fresh = self.window.fresh(status)
        await self.on_status(fresh)
        return fresh if isinstance(fresh, Completed) else None

    async def _pause(self, exc: FalkitError) -> None:
        """Wait out a passing failure (growing, capped), then try again."""
        self.errors += 1
        wait = min(self.follower.options.retry_max, 0.25 * 2 ** min(self.errors, 8))
        logger.info("following %s: %s; trying again in %.1fs", self.handle.request_id, exc, wait)
        await _wait(self.delivered, wait * (0.75 + random.random() / 2))


async def _wait(future: asyncio.Future[FalResponse], seconds: float) -> None:
    """Sleep, waking early if the outcome is delivered meanwhile."""
    if future.done():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), seconds)


async def with_retries(
    fetch: Callable[[], Awaitable[FalResponse]],
    delivered: asyncio.Future[FalResponse],
    retry_max: float,
) -> FalResponse:
    """A read of a finished job's output, retried through passing failures until it answers."""
    errors = 0
    while True:
        if delivered.done():
            return delivered.result()
        try:
            return await fetch()
        except FalkitError as exc:
            if not is_transient(exc):
                raise
            errors += 1
            wait = min(retry_max, 0.25 * 2 ** min(errors, 8))
            await _wait(delivered, wait * (0.75 + random.random() / 2))
