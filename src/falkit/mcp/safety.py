"""What a chat assistant may make the server do: which local files it may read, what it may spend.

A model acting on text it was shown (a web page, a document) could ask for any path or any number
of jobs, so both are bounded by what the user chose when starting the server, and both checks run
before anything is uploaded or submitted.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from falkit.errors import FalkitError, ValidationError

if TYPE_CHECKING:
    from falkit.store import JobRecord, JobStore

_EPSILON = 1e-9


class SpendCapError(FalkitError):
    """A job was refused because its estimate would take the server past --max-spend-usd."""


class AllowedDirs:
    """The folders whose files the tools may read (resolved: symlinks and `..` followed first)."""

    def __init__(self, dirs: Iterable[Path | str]) -> None:
        roots: list[Path] = []
        for folder in dirs:
            root = Path(folder).expanduser().resolve()
            if root not in roots:
                roots.append(root)
        self.roots = tuple(roots)

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.roots) or "none"

    def contains(self, path: Path) -> bool:
        """Whether an already resolved path lies inside one of the roots."""
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def check(self, value: str | Path, *, field: str) -> Path:
        """The resolved path if it is inside an allowed folder, else ValidationError on ``field``.

        A folder is checked entry by entry too, so a symlink inside an allowed folder cannot
        lead out of it.
        """
        resolved = Path(os.path.expanduser(str(value))).resolve()
        if not self.contains(resolved):
            raise self._refusal(str(value), field)
        if resolved.is_dir():
            for entry in sorted(resolved.iterdir()):
                if not self.contains(entry.resolve()):
                    raise self._refusal(f"{value} (its entry {entry.name} leads outside)", field)
        return resolved

    def _refusal(self, shown: str, field: str) -> ValidationError:
        return ValidationError.field(
            field,
            f"{shown} is outside the folders this server may read",
            f"paths under {self.describe()} (the user adds folders with "
            "`falkit mcp --allow-dir DIR`), or an https URL",
        )


def job_spend(job: JobRecord) -> float:
    """What a job counts against the cap: its recorded cost once known, else its estimate.

    Failed and cancelled jobs count what was recorded (usually nothing); a job whose submit may
    have reached Fal ("unknown") and one still running count their estimate.
    """
    if job.cost_usd is not None:
        return job.cost_usd
    if job.status in ("failed", "cancelled"):
        return 0.0
    return job.estimated_cost or 0.0


class SpendCap:
    """The server's spending: jobs it started (recorded or estimated) plus reservations.

    A reservation holds a job's estimate from the check until its job id is known, so two calls
    arriving together cannot both slip under the cap.
    """

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.jobs: set[str] = set()
        self._reserved: dict[int, float] = {}
        self._tokens = itertools.count(1)
        self._lock = asyncio.Lock()

    async def spent(self, store: JobStore) -> float:
        """Recorded and in-flight spend of this server's jobs, reservations included."""
        total = sum(self._reserved.values())
        for job_id in sorted(self.jobs):
            job = await store.get_job(job_id)
            total += job_spend(job) if job is not None else 0.0
        return round(total, 9)

    async def reserve(self, store: JobStore, estimate: float | None, what: str) -> int:
        """Hold ``estimate`` against the cap, or raise SpendCapError; returns a token."""
        async with self._lock:
            if self.limit is not None:
                await self._check(store, estimate, what)
            token = next(self._tokens)
            self._reserved[token] = estimate or 0.0
            return token

    async def _check(self, store: JobStore, estimate: float | None, what: str) -> None:
        assert self.limit is not None
        if estimate is None:
            raise SpendCapError(
                f"refused: the cost of {what} is unknown, and this server has a spending cap "
                f"(${self.limit:g}); use a model from list_models"
            )
        spent = await self.spent(store)
        if spent + estimate > self.limit + _EPSILON:
            raise SpendCapError(
                f"refused before submitting: {what} is estimated at ${estimate:.4f}, and this "
                f"server has already spent or committed ${spent:.4f} of its ${self.limit:g} cap "
                "(--max-spend-usd); the user can restart `falkit mcp` with a higher cap"
            )

    def bind(self, token: int, job_id: str) -> None:
        """The reserved job now exists: count it from the journal from here on."""
        self.jobs.add(job_id)
        self._reserved.pop(token, None)

    def release(self, token: int) -> None:
        """Nothing was journaled under this reservation: free it."""
        self._reserved.pop(token, None)
