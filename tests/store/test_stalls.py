"""A process frozen in the middle of a write (SIGSTOP, a suspended laptop, a VM stall) must not
hold the job's row for everyone else, and must finish its own write once it wakes.

PostgreSQL only: SQLite's writers are one file lock with a busy timeout, not sessions.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from falkit.store import JobRecord, JobStore, job_ops
from falkit.store.models import utcnow
from tests.store.helpers import new_job, on_connection, submit

STALL = 0.5
WAKE_DEADLINE = 30.0


class FrozenWriter:
    """A second store in a thread of its own whose first write freezes mid-transaction, with
    the job's row updated, until ``wake`` (its event loop frozen too, as in a paused process)."""

    def __init__(self, url: str, job_id: str) -> None:
        self.url, self.job_id = url, job_id
        self.frozen = threading.Event()
        self.wake = threading.Event()
        self.outcome: list[Any] = []
        self.runs = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def _running(self, conn: Any) -> JobRecord | None:
        self.runs += 1
        record = job_ops.set_status(conn, self.job_id, "running", utcnow())
        if self.runs == 1:
            self.frozen.set()
            self.wake.wait(WAKE_DEADLINE)
        return record

    async def _main(self) -> None:
        store = await JobStore.open(self.url, stall_timeout=STALL)
        try:
            self.outcome.append(await on_connection(store, self._running, write=True))
        except Exception as exc:
            self.outcome.append(exc)
        finally:
            await store.close()


@pytest.fixture
async def pg_store(pg_database: str) -> Any:
    store = await JobStore.open(pg_database, stall_timeout=STALL)
    yield store
    await store.close()


async def test_a_frozen_writer_does_not_hold_the_job_and_finishes_when_it_wakes(
    pg_store: JobStore, pg_database: str
) -> None:
    job = await new_job(pg_store)
    await submit(pg_store, job.id)
    frozen = FrozenWriter(pg_database, job.id)
    frozen.thread.start()
    await asyncio.to_thread(frozen.frozen.wait, WAKE_DEADLINE)

    # Another worker finishes the job meanwhile: the server ends the frozen session after
    # STALL seconds idle in its transaction, releasing the row.
    completing = pg_store.complete_job(
        job.id, seed=7, cost_usd=0.003, billable_units=1.0, timings=None, output={}, images=[]
    )
    done = await asyncio.wait_for(completing, timeout=WAKE_DEADLINE / 2)
    assert done.status == "completed"

    frozen.wake.set()
    await asyncio.to_thread(frozen.thread.join, WAKE_DEADLINE)
    # Woken, its write is run again on a new connection (the first never committed): the job
    # had finished, so it changes nothing and says so, instead of failing.
    assert frozen.runs == 2
    assert frozen.outcome == [None]
    after = await pg_store.get_job(job.id)
    assert after is not None
    assert (after.status, after.completed_at) == ("completed", done.completed_at)
