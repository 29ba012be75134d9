"""Ctrl-C during a job: ask whether to cancel it at Fal or leave it for `falkit jobs resume`.

A POST already on the wire is let finish (the engine does that), so what is reported is what
really happened: queued at Fal (left running, or cancelled), or never sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from falkit.cli.render import ProgressView
    from falkit.service.handle import JobHandle

T = TypeVar("T")
SETTLE_SECONDS = 30.0  # at most this long for a submit on the wire to be answered


async def interruptible(handle: JobHandle, view: ProgressView, work: Coroutine[Any, Any, T]) -> T:
    """Run work; on Ctrl-C ask (interactive) or leave the job as it is (non-interactive)."""
    try:
        return await work
    except (KeyboardInterrupt, asyncio.CancelledError):
        await asyncio.shield(_on_interrupt(handle, view))
        raise


async def _on_interrupt(handle: JobHandle, view: ProgressView) -> None:
    from falkit.cli.common import stderr

    view.__exit__(None, None, None)
    console = stderr()
    handle.stop_unsent()
    await handle.wait_while(("submitting",), SETTLE_SECONDS)
    record = handle.record
    sent = record is not None and record.request_id is not None
    if handle.done and sent:
        console.print(f"job {handle.job_id} ended: {handle.state}")
        return
    if sent and sys.stdin.isatty() and _ask(f"Cancel job {handle.job_id} at Fal? [y/N] "):
        outcome = await handle.cancel()
        console.print(f"cancel requested: {outcome}")
        return
    if sent:
        assert record is not None
        console.print(
            f"job {handle.job_id} is queued at Fal (request {record.request_id}) and left "
            "running; `falkit jobs resume` will fetch its images"
        )
        return
    if record is not None and record.status in ("unknown", "submitting"):
        console.print(  # a POST cut off after it left: only Fal's history can tell
            f"interrupted while job {handle.job_id} was being submitted: it may have reached "
            "Fal; `falkit jobs reconcile` looks it up (reattached if it arrived, else sent once)"
        )
        return
    console.print(
        f"interrupted before job {handle.job_id} was sent: nothing reached Fal; "
        f"`falkit jobs resume` sends it, `falkit jobs cancel {handle.job_id}` drops it"
    )


def _ask(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        return False
