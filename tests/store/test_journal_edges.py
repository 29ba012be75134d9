"""The journal's edges: every compare-and-set on a job that is not in the state it expects, a
missing job, the fields each write clears, and prefixes of ids. Written against the mutation
run's survivors (docs/testing.md); each runs on SQLite and PostgreSQL like the rest."""

from __future__ import annotations

import pytest

from falkit.errors import NotFoundError, StoreError, ValidationError
from falkit.store import JobStore
from tests.store.helpers import BIG_SEED, complete, image, new_job, submit


def urls(request_id: str = "req-9") -> dict[str, str]:
    base = f"https://queue.fal.run/x/requests/{request_id}"
    return {
        "request_id": request_id,
        "status_url": f"{base}/status",
        "response_url": base,
        "cancel_url": f"{base}/cancel",
    }


URLS = urls()


async def _unknown(store: JobStore) -> str:
    job = await new_job(store)
    await store.mark_submitting(job.id, submitter="host:1:2")
    await store.fail_job(job.id, error="cut off", error_type="x", status="unknown")
    return job.id


async def test_an_unknown_job_that_never_arrived_goes_back_to_pending_clean(
    store: JobStore,
) -> None:
    job_id = await _unknown(store)
    before = await store.get_job(job_id)
    assert before is not None
    assert before.completed_at is not None
    released = await store.release_unknown(job_id)
    assert released.status == "pending"
    assert (released.submitter, released.error, released.error_type) == (None, None, None)
    assert released.completed_at is None
    assert released.updated_at >= before.updated_at
    assert released == await store.get_job(job_id)
    claimed = await store.mark_submitting(job_id, submitter="me")  # it may be sent once now
    assert claimed.status == "submitting"


async def test_only_an_unknown_job_without_a_request_id_is_released(store: JobStore) -> None:
    found = await _unknown(store)
    await store.set_submitted(found, **URLS)  # reconciling found it meanwhile
    kept = await store.release_unknown(found)
    assert (kept.status, kept.request_id) == ("submitted", "req-9")

    for status in ("failed", "cancelled"):
        job = await new_job(store)
        await store.fail_job(job.id, error="x", status=status)
        assert (await store.release_unknown(job.id)).status == status
    pending = await new_job(store)
    assert (await store.release_unknown(pending.id)).status == "pending"
    with pytest.raises(NotFoundError, match="j_missing"):
        await store.release_unknown("j_missing")


async def test_a_claim_on_a_missing_job_or_one_not_pending_is_refused(store: JobStore) -> None:
    with pytest.raises(NotFoundError, match="j_missing"):
        await store.mark_submitting("j_missing", submitter="me")
    job = await new_job(store)
    await submit(store, job.id)
    with pytest.raises(StoreError) as caught:
        await store.mark_submitting(job.id, submitter="me")
    assert str(caught.value) == (
        f"job {job.id} is submitted, not pending; it will not be submitted again"
    )
    assert (await store.get_job(job.id)).status == "submitted"  # type: ignore[union-attr]


async def test_a_request_id_is_kept_whatever_the_status(store: JobStore) -> None:
    with pytest.raises(NotFoundError, match="j_missing"):
        await store.set_submitted("j_missing", **URLS)
    for status in ("failed", "cancelled"):
        job = await new_job(store)
        await store.mark_submitting(job.id)
        await store.fail_job(job.id, error="gave up", status=status)
        given = urls(f"req-{status}")
        kept = await store.set_submitted(job.id, **given)
        assert (kept.status, kept.request_id, kept.error) == (status, given["request_id"], None)
        assert kept.status_url == given["status_url"]
        assert kept.response_url == given["response_url"]
        assert kept.cancel_url == given["cancel_url"]
        assert kept.submitted_at is not None
    done = await new_job(store)
    await submit(store, done.id)
    await complete(store, done.id, images=2)
    again = await store.set_submitted(done.id, **urls("req-done"))
    assert (again.status, len(again.images)) == ("completed", 2)  # its images come back too


async def test_a_pending_job_submitted_without_a_claim_is_submitted(store: JobStore) -> None:
    job = await new_job(store)
    submitted = await store.set_submitted(job.id, **URLS)
    assert submitted.status == "submitted"


async def test_set_status_on_a_missing_job_or_with_a_bad_status(store: JobStore) -> None:
    with pytest.raises(NotFoundError, match="j_missing"):
        await store.set_status("j_missing", "running")
    job = await new_job(store)
    with pytest.raises(ValidationError):
        await store.set_status(job.id, "sideways")  # type: ignore[arg-type]
    for end in ("completed", "failed"):
        other = await new_job(store)
        if end == "completed":
            await complete(store, other.id)
        else:
            await store.fail_job(other.id, error="x")
        assert await store.set_status(other.id, "running") is None
    unknown = await _unknown(store)
    moved = await store.set_status(unknown, "running")  # an unknown job seen running again
    assert moved is not None
    assert moved.status == "running"


async def test_completing_records_everything_and_clears_the_error(store: JobStore) -> None:
    job = await new_job(store)
    await submit(store, job.id)
    await store.fail_job(job.id, error="blip", error_type="t", status="unknown")
    done = await store.complete_job(
        job.id, seed=BIG_SEED, cost_usd=0.5, billable_units=2.0, timings={"inference": 1.5},
        output={"images": [], "extra": 1}, images=[image(1, job="x"), image(0, job="x")],
    )  # fmt: skip
    assert done.status == "completed"
    assert (done.seed, done.cost_usd, done.billable_units) == (BIG_SEED, 0.5, 2.0)
    assert (done.timings, done.output) == ({"inference": 1.5}, {"images": [], "extra": 1})
    assert (done.error, done.error_type, done.queue_position) == (None, None, None)
    assert done.completed_at is not None
    assert [i.index for i in done.images] == [0, 1]
    assert done.images[0].url == image(0, job="x").url
    assert done.images[1].nsfw is True
    assert all(i.job_id == job.id and i.id.startswith("i_") for i in done.images)
    assert done == await store.get_job(job.id)

    no_seed = await new_job(store)
    plain = await store.complete_job(no_seed.id, seed=None, cost_usd=None, billable_units=None,
                                     timings=None, output={}, images=[])  # fmt: skip
    assert (plain.seed, plain.cost_usd, plain.images) == (None, None, ())
    with pytest.raises(NotFoundError, match="j_missing"):
        await store.complete_job("j_missing", seed=None, cost_usd=None, billable_units=None,
                                 timings=None, output={}, images=[])  # fmt: skip


async def test_failing_a_missing_job_or_with_a_bad_status(store: JobStore) -> None:
    with pytest.raises(NotFoundError, match="j_missing"):
        await store.fail_job("j_missing", error="x")
    job = await new_job(store)
    with pytest.raises(ValidationError) as caught:
        await store.fail_job(job.id, error="x", status="completed")
    assert str(caught.value) == (
        "invalid input: status: 'completed' (allowed: failed, cancelled, unknown)"
    )
    failed = await store.fail_job(job.id, error="boom", error_type="runner")
    assert (failed.status, failed.error, failed.error_type) == ("failed", "boom", "runner")
    assert failed.completed_at is not None


async def test_a_job_row_is_checked_and_keeps_only_a_text_prompt(store: JobStore) -> None:
    with pytest.raises(ValidationError) as caught:
        await new_job(store, kind="video")
    assert str(caught.value) == (
        "invalid input: kind: unknown job kind 'video' (allowed: image, training)"
    )
    odd = await new_job(store, arguments={"prompt": ["not", "text"]})
    assert odd.prompt is None
    named = await new_job(store, job_id="j_chosen")
    assert named.id == "j_chosen"
    with pytest.raises(ValidationError, match="already exists"):
        await new_job(store, job_id="j_chosen")


async def test_a_job_is_found_by_a_reference_with_spaces_around(store: JobStore) -> None:
    job = await new_job(store)
    assert await store.get_job(f"  {job.id}\n") == job
    assert await store.get_job("") is None
    assert await store.get_job("   ") is None
    assert await store.get_job(None) is None  # type: ignore[arg-type]


async def test_id_prefixes_are_the_shortest_unique_ones(store: JobStore) -> None:
    for job_id in ("j_aaaaaaaaaaaa1", "j_aaaaaaaaaaaa2", "j_abc", "j_b"):
        await new_job(store, job_id=job_id)
    prefixes = await store.id_prefixes(["j_aaaaaaaaaaaa1", "j_abc", "j_b"])
    assert prefixes == {
        "j_aaaaaaaaaaaa1": "j_aaaaaaaaaaaa1",  # shares 14 characters with its neighbour
        "j_abc": "j_abc",  # shorter than the minimum: the whole id
        "j_b": "j_b",
    }
    assert await store.id_prefixes(["j_aaaaaaaaaaaa2", "j_abc"], minimum=3) == {
        "j_aaaaaaaaaaaa2": "j_aaaaaaaaaaaa2",
        "j_abc": "j_ab",
    }
    assert await store.id_prefixes([]) == {}
    await new_job(store, job_id="j_zzzzzzzzzzzz")  # unique from its third character
    assert await store.id_prefixes(["j_zzzzzzzzzzzz"]) == {"j_zzzzzzzzzzzz": "j_zzzzzzzz"}


async def test_a_listing_shows_twenty_jobs_unless_asked(store: JobStore) -> None:
    for n in range(21):
        await new_job(store, f"fox {n}")
    assert len(await store.list_jobs()) == 20
    assert len(await store.list_jobs(limit=21)) == 21


async def test_deleting_nothing_and_starring_keep_the_rest(store: JobStore) -> None:
    assert await store.delete_jobs([]) == []
    job = await new_job(store)
    starred = await store.set_starred(job.id)
    assert starred.starred is True
    assert starred.updated_at == job.updated_at
