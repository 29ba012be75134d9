"""Training through FalService against the emulator: folder, zip, URL; bad input sends nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falkit.errors import JobFailedError, ValidationError
from falkit.events import CompletedEvent, NoteEvent, ProgressEvent, StepEvent
from falkit.service import FalService
from falkit.service.loras import safetensors_header
from falkit.service.training import TrainingResult, pending_dir
from tests.lora.helpers import image_bytes, make_folder, make_zip, total_requests


async def _check_registered(service: FalService, result: TrainingResult, name: str) -> None:
    assert isinstance(result, TrainingResult)
    assert result.name == name
    record = await service.get_lora(name)
    assert record.url == result.url
    assert record.job_id == result.job_id
    assert record.config_url
    local = Path(record.local_path or "")
    assert local == service.settings.home / "loras" / f"{name}.safetensors"
    assert safetensors_header(local)["__metadata__"]["generator"] == "falkit-emulator"
    job = await service.get_job(result.job_id)
    assert (job.kind, job.model, job.status) == ("training", "flux-lora-training", "completed")
    assert not list(pending_dir(service.settings.home).glob("*.json"))


async def test_train_from_folder_registers_and_keeps_the_weights(
    service: FalService, emu: Any, photos: Path
) -> None:
    events: list[ProgressEvent] = []
    result = await service.train_lora(
        photos, trigger_word="TOK", steps=20, on_progress=events.append
    )
    await _check_registered(service, result, "TOK")
    assert result.trigger_word == "TOK"
    assert result.params["steps"] == 20
    assert result.params["images"] == 5
    assert emu.stats.submits_by_endpoint == {"fal-ai/flux-lora-fast-training": 1}
    assert emu.stats.requests["upload"] == 1
    job = await service.get_job(result.job_id)
    # the journaled arguments are exactly what Fal received: no falkit-side fields
    assert set(job.arguments) == {
        "images_data_url",
        "trigger_word",
        "steps",
        "is_style",
        "create_masks",
    }
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps
    assert steps[-1].total == 20
    assert isinstance(events[-1], CompletedEvent)
    assert events[-1].result == result


async def test_train_from_zip_with_captions_needs_no_trigger_word(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    members = {f"faces/{i}.png": image_bytes(i, "PNG") for i in range(4)}
    members.update({f"faces/{i}.txt": f"portrait {i}".encode() for i in range(4)})
    path = make_zip(tmp_path / "faces.zip", members)
    result = await service.train_lora(path, name="faces-v1", steps=10, is_style=True)
    await _check_registered(service, result, "faces-v1")
    assert result.trigger_word is None
    job = await service.get_job(result.job_id)
    assert job.arguments["is_style"] is True
    assert "trigger_word" not in job.arguments


async def _stored_on_emulator(service: FalService, data: bytes) -> str:
    """A URL of the emulator's own storage holding ``data`` (what the emulator may read)."""
    return await service.client().upload(data, "application/zip", "set.zip")


async def test_train_from_url_sends_it_unchanged(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    archive = make_zip(tmp_path / "set.zip", {f"{i}.jpg": image_bytes(i) for i in range(4)})
    url = await _stored_on_emulator(service, archive.read_bytes())
    emu.stats.reset()
    result = await service.train_lora(url, trigger_word="zq style", steps=5)
    await _check_registered(service, result, "zq-style")  # default name: the trigger word
    job = await service.get_job(result.job_id)
    assert job.arguments["images_data_url"] == url
    assert emu.stats.requests["upload"] == 0


BAD_INPUT = [
    ("empty_folder", {}, "no images"),
    ("two_images", {}, "only 2 image(s)"),
    ("renamed_text", {}, "fake.jpg (not a readable image"),
    ("zip_slip", {}, "'../evil.jpg' (a path leading outside the archive)"),
    ("no_trigger", {"trigger_word": None}, "trigger_word: is required: 5 of 5 images"),
    ("steps", {"steps": 0}, "steps"),
    ("steps", {"steps": 100_000}, "1 to 10000"),
    ("missing", {}, "no such file or folder"),
    ("bad_name", {"name": "no spaces please"}, "is not a valid LoRA name"),
]


def _bad_source(kind: str, tmp_path: Path) -> Path:
    if kind == "empty_folder":
        return make_folder(tmp_path / "empty", 0)
    if kind == "two_images":
        return make_folder(tmp_path / "two", 2)
    if kind == "renamed_text":
        folder = make_folder(tmp_path / "text", 4)
        (folder / "fake.jpg").write_text("hello, I am text")
        return folder
    if kind == "zip_slip":
        members = {f"{i}.jpg": image_bytes(i) for i in range(4)}
        return make_zip(tmp_path / "slip.zip", {**members, "../evil.jpg": image_bytes(9)})
    if kind == "missing":
        return tmp_path / "nowhere"
    return make_folder(tmp_path / "good", 5)


@pytest.mark.parametrize(("kind", "options", "expected"), BAD_INPUT)
async def test_bad_input_fails_before_any_request(
    service: FalService, emu: Any, tmp_path: Path, kind: str, options: dict[str, Any], expected: str
) -> None:
    source = _bad_source(kind, tmp_path)
    params: dict[str, Any] = {"trigger_word": "TOK", **options}
    with pytest.raises(ValidationError) as caught:
        await service.train_lora(source, **params)
    assert expected in str(caught.value)
    assert total_requests(emu) == 0
    assert await service.list_jobs() == []


async def test_a_taken_name_is_refused_before_upload(
    service: FalService, emu: Any, photos: Path
) -> None:
    await service.train_lora(photos, trigger_word="TOK", steps=5)
    before = total_requests(emu)
    with pytest.raises(ValidationError, match="a LoRA named 'TOK' already exists"):
        await service.train_lora(photos, trigger_word="TOK", steps=5)
    assert total_requests(emu) == before


async def test_dataset_note_is_reported_before_the_job(
    service: FalService, emu: Any, photos: Path
) -> None:
    events: list[ProgressEvent] = []
    result = await service.train_lora(
        photos, trigger_word="TOK", steps=5, on_progress=events.append
    )
    first = events[0]
    assert isinstance(first, NoteEvent)
    assert first.job_id == result.job_id  # known from the start, before anything is uploaded
    assert "5 images" in first.message
    assert first.to_json()["type"] == "note"


async def test_failed_training_registers_nothing(service: FalService, emu: Any) -> None:
    missing = f"{emu.base_url}/cdn/files/missing.zip"
    with pytest.raises(JobFailedError, match="Failed to download the file: not a file stored"):
        await service.train_lora(missing, trigger_word="TOK", steps=5)
    assert await service.list_loras() == []
    [job] = await service.list_jobs()
    assert job.status == "failed"
    assert not list(pending_dir(service.settings.home).glob("*.json"))
