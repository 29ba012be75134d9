"""Helpers for the hardening tests: emulators, services and journal states made on purpose."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from falkit.request import ImageRequest
from falkit.service import FalService
from falkit.store import JobRecord
from tests.integration.helpers import emulator_env, emulator_settings

DEAD_SUBMITTER = "a-host-that-is-gone:4242:1"
"""A submitter nobody can vouch for (another host): treated as dead."""


def service_for(emu: Any, **settings: Any) -> FalService:
    """A service over the emulator; ``reconcile_after=0`` unless told otherwise."""
    settings.setdefault("reconcile_after", 0.0)
    return FalService(emulator_settings(emu.base_url, **settings))


async def journal_unknown(service: FalService, prompt: str, **params: Any) -> JobRecord:
    """A job left as a crash mid-submit leaves it, whose POST never reached Fal: journaled,
    claimed by a dead process, then marked unknown by a resume."""
    prepared = ImageRequest.build(prompt, **params).prepare()
    job = await service.create_job(prepared)
    store = await service.store()
    await store.mark_submitting(job.id, submitter=DEAD_SUBMITTER)
    return await store.fail_job(job.id, error="interrupted while submitting", status="unknown")


def cli_env(emu: Any, home: Path, **extra: str) -> dict[str, str]:
    env = emulator_env(emu.base_url, home)
    env.update(extra)
    return env


def falkit_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m falkit ARGS` in a child with the default SIGINT handler."""
    return subprocess.run(
        [sys.executable, "-m", "falkit", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, check=False, preexec_fn=default_sigint,
    )  # fmt: skip


def default_sigint() -> None:
    """In a child: Ctrl-C does what it does at a terminal, whatever the parent ignores."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def statuses(db: Path) -> dict[str, int]:
    """Jobs by status, read straight from the SQLite library."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
    return dict(rows)
