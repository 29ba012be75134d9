"""Many writers: a batch's coroutines through one store, and several stores on one database."""

from __future__ import annotations

import asyncio

from falkit.errors import StoreError
from falkit.store import JobRecord, JobStore
from tests.store.helpers import complete, new_job, submit

N = 50


async def _life(store: JobStore, index: int, batch_id: str) -> str:
    job = await new_job(store, f"prompt {index}", batch_id=batch_id, batch_index=index)
    await submit(store, job.id)
    await store.set_status(job.id, "running")
    await complete(store, job.id, cost=0.01, images=2)
    return job.id


async def test_fifty_coroutines_write_through_one_store(store: JobStore) -> None:
    ids = await asyncio.gather(*(_life(store, i, "b") for i in range(N)))
    assert len(set(ids)) == N
    jobs = await store.batch_jobs("b")
    assert [j.batch_index for j in jobs] == list(range(N))
    assert {j.status for j in jobs} == {"completed"}
    assert all(len(j.images) == 2 for j in jobs)
    assert await store.total_spend(batch_id="b") == 0.5  # no float noise (0.5000000000000002)
    assert await store.unfinished_jobs() == []


async def test_two_stores_on_one_database_write_at_once(store: JobStore, db_url: str) -> None:
    """Two processes (a generate and a `jobs resume`) share one file: neither fails."""
    async with await JobStore.open(db_url) as other:
        results = await asyncio.gather(
            *(_life(store, i, "one") for i in range(N // 2)),
            *(_life(other, i, "two") for i in range(N // 2)),
        )
        assert len(set(results)) == N
        seen_by_other = await other.batch_jobs("one")
    assert len(seen_by_other) == N // 2
    assert len(await store.batch_jobs("two")) == N // 2
    assert len(await store.list_jobs(limit=1000, status="completed")) == N


async def test_only_one_store_claims_a_pending_job(store: JobStore, db_url: str) -> None:
    """A generate and a resume racing to submit the same job: exactly one may send it."""
    jobs = [await new_job(store) for _ in range(10)]
    async with await JobStore.open(db_url) as other:
        for job in jobs:
            outcomes = await asyncio.gather(
                store.mark_submitting(job.id),
                other.mark_submitting(job.id),
                store.mark_submitting(job.id),
                return_exceptions=True,
            )
            claims = [o for o in outcomes if isinstance(o, JobRecord)]
            assert len(claims) == 1
            assert claims[0].status == "submitting"
            assert all(isinstance(o, StoreError) for o in outcomes if o not in claims)


async def test_fresh_database_opened_by_several_at_once_migrates_once(
    empty_url: str, backend: str
) -> None:
    """Several processes starting on a database that does not exist yet: all of them open it.

    On SQLite the race (switching a new file to WAL) is narrow, so it is run on several files.
    """
    urls = [empty_url]
    if backend == "sqlite":
        urls = [empty_url.replace("falkit.db", f"falkit{i}.db") for i in range(12)]
    for url in urls:
        stores = await asyncio.gather(*(JobStore.open(url) for _ in range(4)))
        try:
            created = await asyncio.gather(*(new_job(s) for s in stores))
            for s in stores:
                assert len(await s.list_jobs()) == len(created)
        finally:
            for s in stores:
                await s.close()
