"""Group commit: many callers' writes share transactions, yet each gets its own outcome."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from falkit.errors import NotFoundError, StoreError
from falkit.store import JobRecord, JobStore, NewJob
from tests.store.helpers import image, new_job

CALLS = 2_000


def _new_jobs(count: int, batch_id: str = "b") -> list[NewJob]:
    arguments = {"prompt": "a lighthouse at dusk", "num_images": 1}
    return [
        NewJob("image", "flux-schnell", "fal-ai/flux/schnell", arguments, 0.003, batch_id, i)
        for i in range(count)
    ]


def _complete(store: JobStore, job_id: str, *images: Any) -> Any:
    return store.complete_job(
        job_id,
        seed=7,
        cost_usd=0.003,
        billable_units=1.0,
        timings={"inference": 0.4},
        output={"images": []},
        images=list(images),
    )


@contextlib.asynccontextmanager
async def _writes_held(db_url: str, backend: str) -> AsyncIterator[None]:
    """Hold the database's write lock from outside, so the store's writes queue up meanwhile."""
    if backend == "sqlite":
        path = db_url.split(":///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()


async def test_concurrent_writes_share_few_transactions(store: JobStore) -> None:
    jobs = await store.create_jobs(_new_jobs(CALLS // 2))
    before = store.stats
    running = [store.set_status(job.id, "running") for job in jobs]
    completed = [_complete(store, job.id, image(0, job=job.id)) for job in jobs]
    results = await asyncio.gather(*running, *completed)
    spent = store.stats - before

    assert [r.status for r in results] == ["running"] * len(jobs) + ["completed"] * len(jobs)
    assert all(len(r.images) == 1 for r in results[len(jobs) :])
    assert spent.operations == CALLS
    assert spent.statements == CALLS // 2 * 3  # an UPDATE each, plus an INSERT per image
    assert spent.transactions <= CALLS // 20, spent  # measured: 4 or 5
    assert {j.status for j in await store.batch_jobs("b")} == {"completed"}


async def test_one_failing_operation_does_not_fail_the_others(
    store: JobStore, db_url: str, backend: str
) -> None:
    """A constraint violation rolls its batch back; the rest are re-run and kept."""
    jobs = await store.create_jobs(_new_jobs(200))
    doomed = jobs[100]
    before = store.stats
    async with _writes_held(db_url, backend):
        calls = [store.set_status(job.id, "running") for job in jobs if job is not doomed]
        calls.insert(100, _complete(store, doomed.id, image(0), image(0)))  # same index twice
        calls.insert(150, store.set_status("j_missing", "running"))
        pending = asyncio.gather(*calls, return_exceptions=True)
        await asyncio.sleep(0)  # one loop turn: every call has queued its operation
    outcomes = await pending
    spent = store.stats - before

    assert isinstance(outcomes[100], StoreError)
    assert "library database error" in str(outcomes[100])
    assert isinstance(outcomes[150], NotFoundError)
    others = outcomes[:100] + outcomes[101:150] + outcomes[151:]
    assert all(isinstance(o, JobRecord) and o.status == "running" for o in others)
    kept = await store.get_job(doomed.id)
    assert kept is not None
    assert (kept.status, kept.images) == ("pending", ())  # its batch's attempt was rolled back
    # The batch that held it was re-run one operation per transaction.
    assert spent.transactions >= 100, spent


async def test_a_callers_operations_apply_in_the_order_queued(store: JobStore) -> None:
    job = await new_job(store)
    base = "https://queue.fal.run/fal-ai/flux/requests/r1"
    steps = await asyncio.gather(
        store.mark_submitting(job.id, submitter="pid 1"),
        store.set_submitted(
            job.id,
            request_id="r1",
            status_url=f"{base}/status",
            response_url=base,
            cancel_url=f"{base}/cancel",
        ),
        store.set_status(job.id, "running"),
        _complete(store, job.id, image(0, job=job.id)),
        store.set_status(job.id, "running"),  # after completion: left alone
    )
    assert [s.status if s else None for s in steps] == [
        "submitting",
        "submitted",
        "running",
        "completed",
        None,
    ]
    assert await store.get_job(job.id) == steps[3]


async def test_one_jobs_life_takes_at_most_eight_statements(store: JobStore) -> None:
    before = store.stats
    job = await new_job(store)
    await store.mark_submitting(job.id, submitter="test")
    await store.set_submitted(
        job.id, request_id="r-life", status_url="s", response_url="r", cancel_url="c"
    )
    await store.set_status(job.id, "running")
    await _complete(store, job.id, image(0, job=job.id))
    spent = store.stats - before
    assert spent.statements <= 8, spent  # measured: 6 (one per step, two to complete)
    assert spent.transactions == 5


async def test_bulk_create_is_chunked_and_idempotent(store: JobStore) -> None:
    wanted = [
        NewJob(j.kind, j.model, j.endpoint_id, j.arguments, j.estimated_cost, "bulk", i, f"j_{i}")
        for i, j in enumerate(_new_jobs(5_000))
    ]
    before = store.stats
    created = await store.create_jobs(wanted)
    spent = store.stats - before
    assert [j.id for j in created] == [w.job_id for w in wanted]
    assert {j.status for j in created} == {"pending"}
    assert spent.statements <= 10, spent  # one INSERT per 500 rows
    assert spent.transactions == 10, spent  # a chunk per transaction: the lock is held briefly

    await store.set_status("j_7", "submitted")
    again = await store.create_jobs([*wanted, NewJob("image", "m", "e", {}, None, "bulk", 5_000)])
    assert again[:7] == created[:7]
    assert again[7].status == "submitted"  # the stored record, not a new one
    assert len(again) == 5_001
    assert len(await store.batch_jobs("bulk")) == 5_001
    assert await store.create_jobs([]) == []


async def test_written_records_equal_a_fresh_read(store: JobStore) -> None:
    """What a write returns (RETURNING) is what get_job reads afterwards."""
    job = await new_job(store, batch_id="b", batch_index=0)
    returned = [job, await store.mark_submitting(job.id, submitter="worker-1")]
    returned.append(
        await store.set_submitted(
            job.id, request_id="r-eq", status_url="s", response_url="r", cancel_url="c"
        )
    )
    running = await store.set_status(job.id, "running")
    assert running is not None
    returned.append(running)
    returned.append(await _complete(store, job.id, image(1, job=job.id), image(0, job=job.id)))
    for record in returned:
        assert record.id == job.id
    assert returned[-1] == await store.get_job(job.id)
    assert [i.index for i in returned[-1].images] == [0, 1]

    other = await new_job(store)
    claimed = await store.mark_submitting(other.id, submitter="worker-2")
    assert claimed == await store.get_job(other.id)
    assert claimed.submitter == "worker-2"
    released = await store.release_submitting(other.id)
    assert released == await store.get_job(other.id)
    assert (released.status, released.submitter) == ("pending", None)
    failed = await store.fail_job(other.id, error="boom", cost_usd=0.01)
    assert failed == await store.get_job(other.id)
    (bulk,) = await store.create_jobs(_new_jobs(1, "eq"))
    assert bulk == await store.get_job(bulk.id)


async def test_close_applies_what_is_queued(db_url: str) -> None:
    store = await JobStore.open(db_url)
    job = await new_job(store)
    written, _ = await asyncio.gather(store.set_status(job.id, "running"), store.close())
    assert written is not None
    assert written.status == "running"
    with pytest.raises(StoreError, match="closed"):
        await store.get_job(job.id)
    async with await JobStore.open(db_url) as again:
        stored = await again.get_job(job.id)
        assert stored is not None
        assert stored.status == "running"


async def test_reads_do_not_wait_behind_a_blocked_write(
    store: JobStore, db_url: str, backend: str
) -> None:
    job = await new_job(store)
    async with _writes_held(db_url, backend):
        write = asyncio.ensure_future(store.set_status(job.id, "running"))
        await asyncio.sleep(0)  # one loop turn: the write is queued (and its writer blocked)
        seen = await store.get_job(job.id)
        listed = await store.list_jobs()
        assert not write.done()
    assert seen is not None
    assert seen.status == "pending"
    assert [j.id for j in listed] == [job.id]
    written = await write
    assert written is not None
    assert written.status == "running"
