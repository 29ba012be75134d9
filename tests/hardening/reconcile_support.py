"""Helpers for the hardening tests: emulators, services and journal states made on purpose."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from falkit.emulator import EmulatorConfig, EmulatorServer
from falkit.request import ImageRequest
from falkit.service import FalService
from falkit.store import JobRecord
from tests.integration.helpers import emulator_env, emulator_settings
from tests.processes import default_sigint, wait_until

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


def statuses(db: Path) -> dict[str, int]:
    """Jobs by status, read straight from the SQLite library."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
    return dict(rows)


HOLD_LIMIT = 60.0  # seconds a held request waits for open() at most


class SubmitGate:
    """ASGI middleware in front of an emulator: holds queue submits from the ``hold_from``-th
    on until :meth:`open` (a slow submit that ends when the test says, not after a delay).

    ``hold="request"`` holds a submit before the emulator reads it (the job is queued only
    once the gate opens, and not at all if the client has gone by then); ``hold="response"``
    holds its answer after the job was queued (a lost answer, once the client gives up).
    """

    def __init__(self, app: Any, hold_from: int = 1, hold: str = "request") -> None:
        self.app = app
        self.hold_from = hold_from
        self.hold = hold
        self.seen = 0
        self.holding = threading.Event()
        self._opened = threading.Event()

    def open(self) -> None:
        self._opened.set()

    async def _wait(self) -> None:
        self.holding.set()
        # Bounded: a test that fails before open() must not leave a worker thread blocked
        # forever (the interpreter joins those threads at exit, so pytest would never end).
        await asyncio.to_thread(self._opened.wait, HOLD_LIMIT)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith("/queue/"):
            self.seen += 1
            if self.seen >= self.hold_from and not self._opened.is_set():
                if self.hold == "request":
                    await self._wait()
                else:
                    send = self._held(send)
        await self.app(scope, receive, send)

    def _held(self, send: Any) -> Any:
        async def held(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await self._wait()
            await send(message)

        return held


def gated_emulator(
    config: EmulatorConfig, hold_from: int = 1, hold: str = "request"
) -> tuple[EmulatorServer, SubmitGate]:
    """An emulator (not started) whose queue submits wait at a gate."""
    server = EmulatorServer(config)
    gate = SubmitGate(server.app, hold_from, hold)
    server.app = gate  # type: ignore[assignment]
    return server, gate


wait_for = wait_until  # (the name these tests use)


def job_rows(db: Path) -> list[dict[str, Any]]:
    """Every job row of a SQLite library, as dicts."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute("SELECT * FROM jobs")]
        except sqlite3.OperationalError:  # not created yet
            return []
