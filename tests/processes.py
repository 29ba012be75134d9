"""Child processes and waiting, for every test layer.

Every child a test starts gets the default SIGINT handler (``default_sigint``, through ``run``
and ``popen``): a parent that ignores SIGINT (pytest started in the background, by nohup, by a
CI runner) would otherwise hand that on, and a child Python that starts with SIGINT ignored
never raises KeyboardInterrupt, so a test's Ctrl-C would do nothing.

Waiting is polling with a deadline (``wait_until``, ``until``): a test waits for the state it
needs, never for a guessed number of seconds, and fails saying what it waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

POLL = 0.02  # seconds between two looks


def default_sigint() -> None:
    """In a child (``preexec_fn``): Ctrl-C does what it does at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(args: Sequence[str] | str, **options: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` with the default SIGINT handler in the child."""
    options.setdefault("preexec_fn", default_sigint)
    return subprocess.run(args, **options)


def popen(args: Sequence[str] | str, **options: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` with the default SIGINT handler in the child."""
    options.setdefault("preexec_fn", default_sigint)
    return subprocess.Popen(args, **options)


def wait_until(check: Callable[[], T], what: str, deadline: float = 60.0) -> T:
    """Poll ``check()`` until it returns something truthy (returned); fail after ``deadline``
    seconds, naming ``what`` was awaited."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < end, f"timed out after {deadline:g} s waiting for {what}"
        time.sleep(POLL)


async def until(
    check: Callable[[], T] | Callable[[], Awaitable[T]], what: str, deadline: float = 60.0
) -> T:
    """``wait_until`` inside an event loop; ``check`` may be a coroutine function."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        assert loop.time() < end, f"timed out after {deadline:g} s waiting for {what}"
        await asyncio.sleep(POLL)
