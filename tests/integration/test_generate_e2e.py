"""Generation end to end against the emulator: library API and progress events."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from falkit.catalog import image_models
from falkit.errors import ServiceDisabledError, ValidationError
from falkit.events import (
    CompletedEvent,
    DownloadingEvent,
    ProgressEvent,
    QueuedEvent,
    StartedEvent,
    StepEvent,
)
from falkit.service import FalService

IMAGE_MODELS = [m.name for m in image_models()]


@pytest.mark.parametrize("model", IMAGE_MODELS)
async def test_generate_every_model(service: FalService, emu: Any, model: str) -> None:
    events: list[ProgressEvent] = []
    result = await service.generate_image(
        f"a lighthouse for {model}",
        model=model,
        image_size="square",
        seed=7,
        on_progress=events.append,
    )
    assert result.status == "completed"
    assert result.seed == 7
    assert result.request_id
    assert len(result.images) == 1
    image = result.images[0]
    data = image.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == image.sha256
    with Image.open(image.path) as img:
        assert img.size == (512, 512) == (image.width, image.height)
    record = await service.get_job(result.job_id)
    assert record.images[0].sha256 == image.sha256
    assert record.images[0].local_path == str(image.path)
    assert record.request_id == result.request_id
    assert emu.stats.submits == 1


async def test_progress_events_arrive_in_order(service: FalService) -> None:
    events: list[ProgressEvent] = []
    await service.generate_image("a red fox", model="flux-dev", on_progress=events.append)
    kinds = [type(e) for e in events]
    first = {k: kinds.index(k) for k in (StartedEvent, DownloadingEvent, CompletedEvent)}
    assert first[StartedEvent] < first[DownloadingEvent] < first[CompletedEvent]
    assert kinds[-1] is CompletedEvent
    if QueuedEvent in kinds:
        assert kinds.index(QueuedEvent) < first[StartedEvent]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps, "the emulator logs step counters; they must surface as step events"
    assert [s.step for s in steps] == sorted(s.step for s in steps)
    assert kinds.index(StepEvent) > first[StartedEvent]


async def test_events_iterator_form(service: FalService) -> None:
    events = [e async for e in service.generate_image_events("a blue whale", num_images=2)]
    final = events[-1]
    assert isinstance(final, CompletedEvent)
    assert len(final.result.images) == 2
    assert {img.path for img in final.result.images} == set(final.result.paths)


async def test_out_dir_copies_and_metadata(service: FalService, tmp_path: Path) -> None:
    from falkit.service.downloads import read_metadata

    result = await service.generate_image(
        "a copper kettle", model="flux-dev", seed=99, output_format="png", out_dir=tmp_path / "out"
    )
    assert [p.parent for p in result.copies] == [tmp_path / "out"]
    meta = read_metadata(result.images[0].path)
    assert meta is not None
    assert meta["prompt"] == "a copper kettle"
    assert meta["seed"] == 99
    assert meta["model"] == "flux-dev"


async def test_cost_is_recorded(service: FalService) -> None:
    result = await service.generate_image("a cat", model="flux-dev", image_size="square_hd")
    assert result.estimated_cost == pytest.approx(0.05)
    assert result.cost_usd is not None
    assert result.cost_usd > 0


async def test_bad_input_sends_nothing(service: FalService, emu: Any) -> None:
    with pytest.raises(ValidationError, match="num_inference_steps"):
        await service.generate_image("a cat", num_inference_steps=50)
    assert sum(emu.stats.requests.values()) == 0
    assert await service.list_jobs() == []


async def test_disabled_without_key() -> None:
    async with FalService() as svc:
        assert not svc.enabled
        with pytest.raises(ServiceDisabledError, match="FAL_API_KEY"):
            await svc.generate_image("a cat")


async def test_resume_leaves_unsent_batch_jobs_to_batch_resume(
    service: FalService, emu: Any
) -> None:
    from falkit.events import NoteEvent

    prepared = service.prepare_image("a batch picture")
    await service.create_job(prepared, batch_id="b_test", batch_index=0)
    events: list[ProgressEvent] = []
    assert await service.resume(on_progress=events.append) == []
    assert emu.stats.submits == 0
    notes = [e.message for e in events if isinstance(e, NoteEvent)]
    assert notes == ["batch b_test has unsent jobs: `falkit batch resume b_test`"]
