"""A blocking facade over FalService, for scripts and notebooks.

Every public method of FalService is here too, generated from it (so the two cannot drift):
each call runs the coroutine on a private event loop in a background thread and waits for it.
Jobs started here keep running between calls (the loop never stops while the facade is open),
and it works where an event loop already runs (a notebook). Handles come back as
:class:`SyncJobHandle`; async iterators as plain iterators.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from falkit.service.core import FalService

if TYPE_CHECKING:
    from falkit.config import Settings
    from falkit.events import Event
    from falkit.service.handle import JobHandle

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread; coroutines are handed to it and awaited."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="falkit-sync", daemon=True
        )
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self.run(_next(iterator))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _next(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()


class SyncJobHandle:
    """A JobHandle for blocking code: ``job_id``, ``result()``, ``cancel()``, ``events()``."""

    def __init__(self, handle: JobHandle, loop: _Loop) -> None:
        self._handle = handle
        self._loop = loop

    def __repr__(self) -> str:
        return f"Sync{self._handle!r}"

    @property
    def job_id(self) -> str:
        return self._handle.job_id

    @property
    def state(self) -> str:
        return self._handle.state

    @property
    def done(self) -> bool:
        return self._handle.done

    def result(self, timeout: float | None = None) -> Any:
        return self._loop.run(self._handle.result(timeout))

    def cancel(self) -> str:
        return self._loop.run(self._handle.cancel())

    def events(self, after: int = 0) -> Iterator[Event]:
        return self._loop.iterate(self._handle.events(after))


class SyncFalService:
    """FalService for code that is not async; see the module docstring.

    ``SyncFalService(settings, **options)`` takes what FalService takes; ``.service`` is the
    FalService underneath.
    """

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        self._loop = _Loop()
        self.service = FalService(settings, **kwargs)

    @property
    def enabled(self) -> bool:
        return self.service.enabled

    @property
    def settings(self) -> Settings:
        return self.service.settings

    def close(self) -> None:
        try:
            self._loop.run(self.service.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> SyncFalService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wrap(self, value: Any) -> Any:
        from falkit.service.handle import JobHandle

        if isinstance(value, JobHandle):
            return SyncJobHandle(value, self._loop)
        return value

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...


def _blocking(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        def iterate(self: SyncFalService, *args: Any, **kwargs: Any) -> Iterator[Any]:
            return self._loop.iterate(getattr(self.service, name)(*args, **kwargs))

        return iterate

    @functools.wraps(method)
    def call(self: SyncFalService, *args: Any, **kwargs: Any) -> Any:
        outcome = getattr(self.service, name)(*args, **kwargs)
        if inspect.isawaitable(outcome):
            outcome = self._loop.run(_awaited(outcome))
        return self._wrap(outcome)

    return call


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    """The public methods of a class (its own and inherited), by name."""
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


for _name, _method in public_methods(FalService).items():
    if not hasattr(SyncFalService, _name):
        setattr(SyncFalService, _name, _blocking(_name, _method))
