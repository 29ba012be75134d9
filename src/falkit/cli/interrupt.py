"""Ctrl-C during a job: ask whether to cancel it at Fal or leave it for `falkit jobs resume`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from falkit.cli.render import ProgressView
    from falkit.service import FalService

T = TypeVar("T")


async def interruptible(service: FalService, view: ProgressView, work: Coroutine[Any, Any, T]) -> T:
    """Run work; on Ctrl-C ask (interactive) or leave the job running (non-interactive)."""
    try:
        return await work
    except (KeyboardInterrupt, asyncio.CancelledError):
        await _on_interrupt(service, view)
        raise


async def _on_interrupt(service: FalService, view: ProgressView) -> None:
    from falkit.cli.common import stderr

    view.__exit__(None, None, None)
    console = stderr()
    job_id = view.job_id
    if not job_id:
        console.print("interrupted before the job was queued")
        return
    if sys.stdin.isatty() and _ask(f"Cancel job {job_id} at Fal? [y/N] "):
        outcome = await asyncio.shield(service.cancel_job(job_id))
        console.print(f"cancel requested: {outcome}")
        return
    console.print(f"job {job_id} left running; `falkit jobs resume` will fetch its images")


def _ask(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        return False
