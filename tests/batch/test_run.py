"""Batches through FalService against the emulator: throughput, outputs, resume, failures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from falkit.emulator import Fault
from falkit.errors import ValidationError
from falkit.service import FalService
from falkit.service.batch import BatchResult
from tests.batch.helpers import manifest, manifest_csv, sha256, submitted_pairs

PROMPTS = [f"lighthouse number {i}" for i in range(50)]


def fast(**extra: Any) -> dict[str, Any]:
    """Small images, so the test measures scheduling rather than rendering."""
    return {"defaults": {"image_size": "square"}, **extra}


async def test_sweep_of_200_jobs_within_the_account_limit(service: FalService, emu: Any) -> None:
    progress: list[tuple[int, int, int]] = []
    result = await service.generate_batch(
        PROMPTS,
        seeds="1-4",
        concurrency=24,
        on_progress=lambda p: progress.append((p.done, p.running, p.queued)),
        **fast(),
    )
    assert result.ok, result.failures[:3]
    assert (result.total, result.completed, result.submitted) == (200, 200, 200)
    assert emu.stats.submits == 200
    pairs = submitted_pairs(emu)
    assert len(set(pairs)) == 200, "no job was submitted twice"
    assert max(running + queued for _, running, queued in progress) <= 24
    assert progress[-1][0] == 200
    # submit, status stream, result, image: four requests per job, and no polling
    assert result.http_requests == 800
    assert dict(emu.stats.requests) == {"submit": 200, "stream": 200, "result": 200, "file": 200}
    assert result.spent_usd == pytest.approx(result.estimated_cost)
    check_folder(result, expected_rows=200, columns=4)


def check_folder(result: BatchResult, *, expected_rows: int, columns: int) -> None:
    """Every manifest row matches an image on disk; the contact sheets show all of them."""
    folder = result.folder
    rows = manifest(folder)
    assert len(rows) == expected_rows
    assert [r["index"] for r in rows] == list(range(expected_rows))
    paths = []
    for row in rows:
        assert row["status"] == "completed"
        assert row["seed"] == row["parameters"].get("seed", row["seed"]) is not None
        for image in row["images"]:
            assert sha256(folder / image["path"]) == image["sha256"]
            paths.append(image["path"])
    assert len(set(paths)) == expected_rows
    by_job = {r["job_id"]: r for r in manifest_csv(folder)}
    for row in rows:
        assert by_job[row["job_id"]]["sha256"] == row["images"][0]["sha256"]
        assert by_job[row["job_id"]]["line"] == str(row["line"])
    with Image.open(folder / "contact_sheet.png") as sheet:
        sheet.load()
        assert sheet.format == "PNG"
        assert sheet.width == columns * 256
        assert sheet.height >= (expected_rows // columns) * 256
    page = (folder / "index.html").read_text()
    linked = set(re.findall(r'<a href="([^"]+)"', page))
    assert linked == set(paths)
    for thumb in re.findall(r'<img src="([^"]+)"', page):
        assert (folder / thumb).is_file()


async def test_rerun_finds_the_batch_and_sends_nothing(service: FalService, emu: Any) -> None:
    first = await service.generate_batch(PROMPTS[:6], seeds="1,2", **fast())
    assert first.ok
    emu.stats.reset()
    again = await service.generate_batch(PROMPTS[:6], seeds="1,2", **fast())
    assert again.batch_id == first.batch_id
    assert again.ok
    assert (again.submitted, again.http_requests) == (0, 0)
    assert sum(emu.stats.requests.values()) == 0
    assert manifest(again.folder) == manifest(first.folder)


async def test_dry_run_sends_and_writes_nothing(service: FalService, emu: Any) -> None:
    result = await service.generate_batch(PROMPTS[:5], seeds="1-3", dry_run=True, **fast())
    assert result.dry_run
    assert (result.total, result.completed) == (15, 0)
    assert result.estimated_cost == pytest.approx(15 * 0.000786)
    assert sum(emu.stats.requests.values()) == 0
    store = await service.store()
    assert await store.get_batch(result.batch_id) is None
    assert not result.folder.exists()


async def test_failures_are_collected_and_retried_on_request(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    emu.faults.add(Fault(route="submit", kind="job_error", times=3))
    out = tmp_path / "out"
    result = await service.generate_batch(PROMPTS[:10], out_dir=out, concurrency=4, **fast())
    assert (result.completed, result.failed, result.total) == (7, 3, 10)
    assert not result.ok
    assert result.folder == out
    assert all("runner_disconnected" in f.error or "Runner" in f.error for f in result.failures)
    rows = {r["index"]: r for r in manifest(out)}
    for failure in result.failures:
        row = rows[failure.index]
        assert (row["status"], row["images"]) == ("failed", [])
        assert row["error"]
        assert row["line"] == failure.index + 1
    assert "missing" in (out / "index.html").read_text()

    emu.faults.clear()
    again = await service.generate_batch(PROMPTS[:10], out_dir=out, concurrency=4, **fast())
    assert (again.failed, again.submitted) == (3, 0), "failed jobs are only resent on request"
    retried = await service.generate_batch(
        PROMPTS[:10], out_dir=out, concurrency=4, retry_failed=True, **fast()
    )
    assert retried.ok
    assert retried.submitted == 3
    assert emu.stats.submits == 13
    check_folder(retried, expected_rows=10, columns=4)


async def test_budget_over_the_estimate_is_refused_before_sending(
    service: FalService, emu: Any
) -> None:
    with pytest.raises(ValidationError, match=r"budget: .* more than the budget of \$0\.0100"):
        await service.generate_batch(PROMPTS, seeds="1-4", budget=0.01, **fast())
    assert sum(emu.stats.requests.values()) == 0
    store = await service.store()
    assert await store.list_batches() == []
    assert await store.list_jobs() == []


async def test_stop_on_a_fatal_submit_error_then_resume_decides_each_job(
    service: FalService, emu: Any
) -> None:
    """Rate limited past every retry: submitting stops (each job would hit it). On the rerun,
    the jobs that never reached Fal are sent; one caught "submitting" by a crash is not."""
    emu.faults.add(Fault(route="submit", kind="429", times=None, retry_after=0.01))
    first = await service.generate_batch(PROMPTS[:12], concurrency=4, **fast())
    assert first.stopped_by is not None
    assert "429" in first.stopped_by or "rate" in first.stopped_by.lower()
    assert emu.stats.submits == 0
    # Never sent, so back to pending (resumable), not failed: nothing reached Fal.
    assert (first.failed, first.pending) == (0, 12)
    emu.faults.clear()

    store = await service.store()
    jobs = await store.batch_jobs(first.batch_id)
    caught = next(j for j in jobs if j.status == "pending")
    await store.mark_submitting(caught.id)  # as a kill -9 during its POST would leave it

    second = await service.generate_batch(PROMPTS[:12], concurrency=4, **fast())
    assert (second.completed, second.unknown, second.failed) == (11, 1, 0)
    assert emu.stats.submits == 11
    assert caught.prompt not in {prompt for prompt, _ in submitted_pairs(emu)}
    (failure,) = second.failures
    assert (failure.job_id, failure.status) == (caught.id, "unknown")
    assert "may have reached Fal" in failure.error
    assert "falkit jobs reconcile" in failure.error  # after the safe delay it is settled


async def test_lora_scale_sweep(service: FalService, emu: Any) -> None:
    lora = "https://example.com/loras/style.safetensors"
    result = await service.generate_batch(
        [{"prompt": "a portrait", "loras": [lora], "steps": 2}],
        lora_scales="0.5,1",
        seeds="1,2",
        **fast(),
    )
    assert result.ok
    rows = manifest(result.folder)
    assert [r["parameters"]["loras"] for r in rows] == [
        [{"path": lora, "scale": 0.5}],
        [{"path": lora, "scale": 0.5}],
        [{"path": lora, "scale": 1.0}],
        [{"path": lora, "scale": 1.0}],
    ]
    assert {r["model"] for r in rows} == {"flux-lora"}
    assert rows[0]["label"] == "loras style:0.5 · seed 1"
    assert emu.stats.submits_by_endpoint == {"fal-ai/flux-lora": 4}


async def test_rate_limits_are_waited_out(service: FalService, emu: Any) -> None:
    emu.faults.add(Fault(route="submit", kind="429", times=5, retry_after=0.05))
    result = await service.generate_batch(PROMPTS[:12], concurrency=8, **fast())
    assert result.ok
    assert emu.faults.fired["429"] == 5
    assert emu.stats.requests["submit"] == 12 + 5  # each 429 answered, then sent again
    assert emu.stats.submits == 12
