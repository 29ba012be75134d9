"""The gallery's part of the store: stars, deletion, and the filters pages use."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from falkit.errors import NotFoundError, ValidationError
from falkit.store import JobStore, rows
from tests.store.helpers import complete, new_job, submit


async def test_star_and_unstar_keep_everything_else(store: JobStore) -> None:
    job = await new_job(store)
    await submit(store, job.id)
    await complete(store, job.id, images=2)
    before = await store.get_job(job.id)
    assert before is not None
    assert before.starred is False
    starred = await store.set_starred(job.id, True)
    assert starred.starred is True
    assert len(starred.images) == 2  # a completed job's record comes back whole
    assert starred.updated_at == before.updated_at
    assert [j.id for j in await store.list_jobs(starred=True)] == [job.id]
    assert await store.list_jobs(starred=False) == []
    assert (await store.set_starred(job.id, False)).starred is False
    with pytest.raises(NotFoundError):
        await store.set_starred("j_missing", True)


async def test_delete_jobs_returns_them_with_images_and_refuses_unfinished(
    store: JobStore,
) -> None:
    done = await new_job(store, "kept then deleted")
    await submit(store, done.id)
    await complete(store, done.id, images=2)
    running = await new_job(store, "still running")
    with pytest.raises(ValidationError, match="cancel it first"):
        await store.delete_jobs([done.id, running.id])
    assert await store.get_job(done.id) is not None  # nothing deleted
    deleted = await store.delete_jobs([done.id, "j_not_there", done.id])
    assert [r.id for r in deleted] == [done.id]
    assert len(deleted[0].images) == 2
    assert await store.get_job(done.id) is None
    assert [j.id for j in await store.list_jobs()] == [running.id]


async def test_filters_until_lora_and_offset(store: JobStore) -> None:
    url = "https://v3.fal.media/files/lora/me.safetensors"
    plain = await new_job(store, "a plain fox")
    with_lora = await new_job(
        store, arguments={"prompt": "photo of TOK", "loras": [{"path": url, "scale": 0.8}]}
    )
    assert [j.id for j in await store.list_jobs(lora=url)] == [with_lora.id]
    later = with_lora.created_at + dt.timedelta(seconds=1)
    assert {j.id for j in await store.list_jobs(until=later)} == {plain.id, with_lora.id}
    assert await store.list_jobs(until=plain.created_at) == []
    newest_first = [j.id for j in await store.list_jobs()]
    assert [j.id for j in await store.list_jobs(offset=1, limit=5)] == newest_first[1:]


async def test_deleting_jobs_in_chunks_takes_every_job_and_image_row(
    store: JobStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rows, "IN_CHUNK", 2)  # five jobs: three IN (...) lists
    done = [await new_job(store, f"fox {n}") for n in range(5)]
    for job in done:
        await submit(store, job.id)
        await complete(store, job.id, images=2)
    kept = await new_job(store, "kept")
    await submit(store, kept.id)
    await complete(store, kept.id, images=1)
    deleted = await store.delete_jobs([job.id for job in done])
    assert [r.id for r in deleted] == [job.id for job in done]
    assert [j.id for j in await store.list_jobs()] == [kept.id]
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            owners = (await conn.execute(text("SELECT job_id FROM images"))).scalars().all()
    finally:
        await engine.dispose()
    assert owners == [kept.id]  # no image row outlives its job


async def test_deleting_an_unfinished_job_names_the_field_the_job_and_the_fix(
    store: JobStore,
) -> None:
    running = await new_job(store, "still running")
    await submit(store, running.id)
    with pytest.raises(ValidationError) as refused:
        await store.delete_jobs([running.id])
    (error,) = refused.value.errors
    assert error.field == "job_ids"
    assert str(refused.value) == (
        f"invalid input: job_ids: job {running.id} is submitted "
        "(allowed: finished jobs; cancel it first)"
    )
