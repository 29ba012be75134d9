"""The journal of jobs: create, submit, complete or fail, and find them again."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from falkit.errors import NotFoundError, StoreError, ValidationError
from falkit.store import JobRecord, JobStore
from tests.store.helpers import BIG_SEED, complete, image, new_job, submit


async def test_a_job_is_journaled_pending_before_submit(store: JobStore) -> None:
    job = await new_job(store, batch_id="b1", batch_index=3)
    assert job.status == "pending"
    assert job.id.startswith("j_")
    assert len(job.id) == 28
    assert job.request_id is None
    assert job.images == ()
    assert (job.batch_id, job.batch_index, job.estimated_cost) == ("b1", 3, 0.003)
    assert job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == dt.timedelta(0)
    stored = await store.get_job(job.id)
    assert stored == job


async def test_create_submit_complete_cycle_stores_images(store: JobStore) -> None:
    job = await new_job(store)
    await store.mark_submitting(job.id)
    assert (await _get(store, job.id)).status == "submitting"
    request_id = await submit_only(store, job.id)
    submitted = await _get(store, job.id)
    assert submitted.status == "submitted"
    assert submitted.request_id == request_id
    assert submitted.status_url == f"https://queue.fal.run/r/{request_id}/status"
    assert submitted.cancel_url == f"https://queue.fal.run/r/{request_id}/cancel"
    assert submitted.submitted_at is not None

    await store.set_status(job.id, "submitted", queue_position=4)  # accepted, not stored
    assert (await _get(store, job.id)).queue_position is None
    await store.set_status(job.id, "running")
    running = await _get(store, job.id)
    assert (running.status, running.queue_position) == ("running", None)

    await complete(store, job.id, cost=0.0035, images=2)
    done = await _get(store, job.id)
    assert done.status == "completed"
    assert done.seed == BIG_SEED
    assert (done.cost_usd, done.billable_units) == (0.0035, 1.0)
    assert done.timings == {"inference": 0.42}
    assert done.output == {"images": [], "has_nsfw_concepts": [False]}
    assert done.completed_at is not None
    assert done.completed_at >= done.submitted_at  # type: ignore[operator]
    assert [img.index for img in done.images] == [0, 1]
    first = done.images[0]
    expected = image(0, job=job.id)
    assert (first.url, first.local_path, first.sha256) == (
        expected.url,
        expected.local_path,
        expected.sha256,
    )
    assert (first.size_bytes, first.width, first.height) == (1234, 1024, 768)
    assert (first.content_type, first.nsfw, done.images[1].nsfw) == ("image/png", False, True)
    assert first.job_id == job.id
    assert first.id.startswith("i_")


async def submit_only(store: JobStore, job_id: str) -> str:
    request_id = f"req-{job_id[-6:]}"
    base = f"https://queue.fal.run/r/{request_id}"
    await store.set_submitted(
        job_id,
        request_id=request_id,
        status_url=f"{base}/status",
        response_url=base,
        cancel_url=f"{base}/cancel",
    )
    return request_id


async def _get(store: JobStore, job_id: str) -> JobRecord:
    job = await store.get_job(job_id)
    assert job is not None
    return job


async def test_a_job_is_submitted_at_most_once(store: JobStore) -> None:
    job = await new_job(store)
    await submit(store, job.id)
    with pytest.raises(StoreError, match="not be submitted again"):
        await store.mark_submitting(job.id)
    assert (await _get(store, job.id)).status == "submitted"


async def test_completing_twice_keeps_the_first_record(store: JobStore) -> None:
    job = await new_job(store)
    await submit(store, job.id)
    await complete(store, job.id, cost=0.01, images=2)
    await complete(store, job.id, cost=99.0, images=3)
    done = await _get(store, job.id)
    assert done.cost_usd == 0.01
    assert len(done.images) == 2


async def test_fail_records_the_error_and_ends_the_job(store: JobStore) -> None:
    job = await new_job(store)
    await submit(store, job.id)
    await store.fail_job(job.id, error="NSFW content detected", error_type="content_policy")
    failed = await _get(store, job.id)
    assert (failed.status, failed.error, failed.error_type) == (
        "failed",
        "NSFW content detected",
        "content_policy",
    )
    assert failed.completed_at is not None
    assert failed.finished


@pytest.mark.parametrize("status", ["cancelled", "unknown"])
async def test_fail_with_other_end_states(store: JobStore, status: str) -> None:
    job = await new_job(store)
    await store.mark_submitting(job.id)
    await store.fail_job(job.id, error="connection dropped during submit", status=status)  # type: ignore[arg-type]
    assert (await _get(store, job.id)).status == status


async def test_late_request_id_rescues_an_unknown_job(store: JobStore) -> None:
    """A process gave up (unknown) while the submit was still in flight: the id is kept."""
    job = await new_job(store)
    await store.mark_submitting(job.id)
    await store.fail_job(job.id, error="interrupted while submitting", status="unknown")
    request_id = await submit_only(store, job.id)
    rescued = await _get(store, job.id)
    assert (rescued.status, rescued.request_id, rescued.error) == ("submitted", request_id, None)


async def test_finished_jobs_keep_their_end_state(store: JobStore) -> None:
    done = await new_job(store)
    await submit(store, done.id)
    await complete(store, done.id)
    await store.fail_job(done.id, error="late cancel", status="cancelled")
    await store.set_status(done.id, "running")
    assert (await _get(store, done.id)).status == "completed"

    cancelled = await new_job(store)
    await submit(store, cancelled.id)
    await store.fail_job(cancelled.id, error="cancelled by user", status="cancelled")
    await store.set_status(cancelled.id, "running")
    assert (await _get(store, cancelled.id)).status == "cancelled"


async def test_bad_statuses_kinds_and_ids_are_refused(store: JobStore) -> None:
    job = await new_job(store)
    with pytest.raises(ValidationError, match="status"):
        await store.set_status(job.id, "done")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="status"):
        await store.fail_job(job.id, error="x", status="completed")
    with pytest.raises(ValidationError, match="kind"):
        await new_job(store, kind="video")
    with pytest.raises(ValidationError, match="job_id"):
        await new_job(store, job_id=job.id)
    for call in (
        store.mark_submitting("j_missing"),
        store.set_status("j_missing", "running"),
        store.fail_job("j_missing", error="x"),
        store.complete_job(
            "j_missing",
            seed=1,
            cost_usd=None,
            billable_units=None,
            timings=None,
            output={},
            images=[],
        ),
    ):
        with pytest.raises(NotFoundError, match="j_missing"):
            await call


async def test_arguments_round_trip_as_json(store: JobStore) -> None:
    arguments = {
        "prompt": "ünïcödé — 灯台 \"quoted\" 'single'",
        "seed": BIG_SEED,
        "image_size": {"width": 1024, "height": 768},
        "loras": [{"path": "https://x/y.safetensors", "scale": 0.75}],
        "enable_safety_checker": False,
        "guidance_scale": 3.5,
        "negative_prompt": None,
        "nested": {"a": {"b": {"c": [1, [2, 3], {"d": -(2**70)}]}}},
    }
    job = await new_job(store, arguments=arguments)
    assert job.arguments == arguments
    stored = await _get(store, job.id)
    assert stored.arguments == arguments
    assert stored.arguments["seed"] == BIG_SEED
    assert isinstance(stored.arguments["seed"], int)
    assert stored.prompt == arguments["prompt"]


async def test_seed_beyond_bigint_round_trips(store: JobStore) -> None:
    for seed in (BIG_SEED, 2**64 - 1, 0):
        job = await new_job(store)
        await store.complete_job(
            job.id,
            seed=seed,
            cost_usd=None,
            billable_units=None,
            timings=None,
            output={},
            images=[],
        )
        assert (await _get(store, job.id)).seed == seed


async def test_list_is_newest_first_with_limit_and_filters(store: JobStore) -> None:
    jobs = [await new_job(store, f"prompt {i}") for i in range(6)]
    training = await new_job(store, kind="training", model="flux-lora-training")
    listed = await store.list_jobs(limit=3)
    assert [j.id for j in listed] == [training.id, jobs[5].id, jobs[4].id]
    everything = await store.list_jobs(limit=100)
    assert [j.id for j in everything] == [training.id, *(j.id for j in reversed(jobs))]
    await submit(store, jobs[1].id)
    assert [j.id for j in await store.list_jobs(status="submitted")] == [jobs[1].id]
    assert [j.id for j in await store.list_jobs(kind="training")] == [training.id]
    with pytest.raises(ValidationError):
        await store.list_jobs(limit=0)


async def test_search_matches_prompt_model_id_and_request_id(store: JobStore) -> None:
    fox = await new_job(store, "A Red FOX in the snow")
    owl = await new_job(store, "an owl at night", model="flux-dev")
    percent = await new_job(store, "100% cotton shirt")
    request_id = await submit(store, owl.id, request_id="764cabcf-b745-4b3e-ae38-1200304cf45b")

    async def found(term: str) -> set[str]:
        return {j.id for j in await store.list_jobs(search=term)}

    assert await found("red fox") == {fox.id}
    assert await found("RED FOX") == {fox.id}
    assert await found("FLUX-DEV") == {owl.id}
    assert await found(fox.id[-8:].upper()) == {fox.id}
    assert await found(request_id[:8]) == {owl.id}
    assert await found("0%") == {percent.id}  # % is a character, not a wildcard
    assert await found("_") == {fox.id, owl.id, percent.id}  # ids contain "_"
    assert await found("zebra") == set()
    assert await found("flux") == {fox.id, owl.id, percent.id}  # models flux-schnell, flux-dev


async def test_get_by_prefix_and_by_request_id(store: JobStore) -> None:
    first = await new_job(store, job_id="j_alpha1")
    second = await new_job(store, job_id="j_alpha2")
    request_id = await submit(store, second.id, request_id="0f9c2d1e-aaaa-bbbb-cccc-000000000001")
    assert (await _get(store, "j_alpha1")).id == first.id
    assert (await _get(store, request_id)).id == second.id
    with pytest.raises(ValidationError, match="several jobs"):
        await store.get_job("j_alpha")
    assert await store.get_job("j_beta") is None
    assert await store.get_job("") is None
    assert await store.get_job("j_alpha%") is None  # no wildcards
    third = await new_job(store)
    assert (await _get(store, third.id[:-3])).id == third.id


async def test_unfinished_jobs_are_what_resume_looks_at(store: JobStore) -> None:
    pending = await new_job(store)
    submitting = await new_job(store)
    await store.mark_submitting(submitting.id)
    submitted = await new_job(store)
    await submit(store, submitted.id)
    running = await new_job(store, kind="training", model="flux-lora-training")
    await submit(store, running.id)
    await store.set_status(running.id, "running")
    for end in ("completed", "failed", "cancelled", "unknown"):
        job = await new_job(store)
        await submit(store, job.id)
        if end == "completed":
            await complete(store, job.id)
        else:
            await store.fail_job(job.id, error=end, status=end)

    unfinished = await store.unfinished_jobs()
    assert [j.id for j in unfinished] == [pending.id, submitting.id, submitted.id, running.id]
    assert [j.status for j in unfinished] == ["pending", "submitting", "submitted", "running"]
    assert [j.id for j in await store.unfinished_jobs(kind="training")] == [running.id]


async def test_total_spend_sums_recorded_costs(store: JobStore) -> None:
    assert await store.total_spend() == 0.0
    costs: dict[str, list[float | None]] = {"b1": [0.025, 0.025, None], "b2": [0.1]}
    for batch_id, values in costs.items():
        for index, cost in enumerate(values):
            job = await new_job(store, batch_id=batch_id, batch_index=index)
            await submit(store, job.id)
            await complete(store, job.id, cost=cost)
    await new_job(store)  # estimated, never run: not spent
    assert await store.total_spend() == pytest.approx(0.15)
    assert await store.total_spend(batch_id="b1") == pytest.approx(0.05)
    assert await store.total_spend(batch_id="nope") == 0.0


async def test_set_status_answers_none_for_a_finished_job(store: JobStore) -> None:
    job = await new_job(store)
    running = await store.set_status(job.id, "running")
    assert running is not None
    assert running.status == "running"
    await store.fail_job(job.id, error="gone", status="cancelled")
    assert await store.set_status(job.id, "running") is None
    assert (await _get(store, job.id)).status == "cancelled"


async def test_a_claim_names_its_submitter_and_can_be_released(store: JobStore) -> None:
    job = await new_job(store)
    claimed = await store.mark_submitting(job.id, submitter="pid 4242 on host-a")
    assert (claimed.status, claimed.submitter) == ("submitting", "pid 4242 on host-a")
    with pytest.raises(StoreError, match="submitting, not pending"):
        await store.mark_submitting(job.id, submitter="someone else")
    released = await store.release_submitting(job.id)
    assert (released.status, released.submitter) == ("pending", None)
    again = await store.mark_submitting(job.id)
    assert (again.status, again.submitter) == ("submitting", None)

    await submit_only(store, job.id)
    kept = await store.release_submitting(job.id)  # submitted: not a claim to give back
    assert kept.status == "submitted"
    assert kept == await _get(store, job.id)
    with pytest.raises(NotFoundError):
        await store.release_submitting("j_missing")


async def test_fail_records_what_fal_may_still_charge(store: JobStore) -> None:
    job = await new_job(store)
    await submit(store, job.id)
    failed = await store.fail_job(job.id, error="timed out", cost_usd=0.025)
    assert (failed.status, failed.cost_usd) == ("failed", 0.025)
    again = await store.fail_job(job.id, error="still failed")
    assert again.cost_usd == 0.025  # None keeps the recorded cost
    assert await store.total_spend() == 0.025

    done = await new_job(store)
    await complete(store, done.id, cost=0.01)
    kept = await store.fail_job(done.id, error="late", cost_usd=5.0)
    assert (kept.status, kept.cost_usd, len(kept.images)) == ("completed", 0.01, 1)


async def test_list_by_model_and_since(store: JobStore) -> None:
    schnell = await new_job(store)
    dev = await new_job(store, model="flux-dev")
    assert [j.id for j in await store.list_jobs(model="flux-dev")] == [dev.id]
    assert [j.id for j in await store.list_jobs(since=dev.created_at)] == [dev.id]
    naive = schnell.created_at.replace(tzinfo=None)  # taken as UTC
    assert len(await store.list_jobs(since=naive)) == 2
    later = dev.created_at + dt.timedelta(seconds=1)
    assert await store.list_jobs(since=later) == []


async def test_pool_size_must_leave_room_for_a_reader(db_url: str) -> None:
    with pytest.raises(ValidationError, match="pool_size"):
        await JobStore.open(db_url, pool_size=1)
    async with await JobStore.open(db_url, pool_size=2) as store:
        jobs = await asyncio.gather(*(new_job(store) for _ in range(20)))
        found = await asyncio.gather(*(store.get_job(job.id) for job in jobs))
        assert found == jobs
