"""Many writers: a batch's coroutines through one store, and several stores on one database."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from falkit.errors import StoreError
from falkit.store import JobRecord, JobStore
from tests.processes import default_sigint
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


_CHILD = """
import asyncio, sys
from falkit.store import JobStore, NewImage

async def main(url, name):
    async with await JobStore.open(url) as store:
        async def life(i):
            job = await store.create_job(
                kind="image", model="m", endpoint_id="e", arguments={"prompt": f"{name} {i}"},
                estimated_cost=0.01, batch_id=name, batch_index=i,
            )
            await store.mark_submitting(job.id, submitter=name)
            await store.set_submitted(
                job.id, request_id=f"{name}-{i}", status_url="s", response_url="r", cancel_url="c"
            )
            image = NewImage(0, "u", f"/{name}/{i}.png", "0" * 64, 1, 8, 8, "image/png")
            await store.complete_job(
                job.id, seed=i, cost_usd=0.01, billable_units=1, timings=None, output={},
                images=[image],
            )
        await asyncio.gather(*(life(i) for i in range(int(sys.argv[3]))))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    """A CLI generate and a `jobs resume` at once: two writers on one file, no failures."""
    url = f"sqlite:///{tmp_path / 'falkit.db'}"
    count = 150
    async with await JobStore.open(url) as store:
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CHILD, url, name, str(count), preexec_fn=default_sigint
            )
            for name in ("generate", "resume")
        ]
        codes = await asyncio.gather(*(child.wait() for child in children))
        assert codes == [0, 0]
        for name in ("generate", "resume"):
            jobs = await store.batch_jobs(name)
            assert len(jobs) == count
            assert {(j.status, j.submitter, len(j.images)) for j in jobs} == {
                ("completed", name, 1)
            }
