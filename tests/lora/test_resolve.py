"""Generating with LoRAs given as URLs, library names and local files, against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falkit.errors import ValidationError
from falkit.events import NoteEvent, ProgressEvent
from falkit.service import FalService
from falkit.types import LoraWeight
from tests.lora.helpers import safetensors_bytes, total_requests

EXTERNAL = "https://example.com/loras/ink.safetensors"


async def _register(service: FalService, name: str, url: str, trigger: str | None) -> None:
    store = await service.store()
    await store.add_lora(
        name=name,
        url=url,
        trigger_word=trigger,
        config_url=None,
        local_path=None,
        job_id=None,
        params={},
    )


async def test_name_becomes_its_url_and_trigger_word_is_added(
    service: FalService, emu: Any
) -> None:
    await _register(service, "ink", EXTERNAL, "INKSTYLE")
    events: list[ProgressEvent] = []
    result = await service.generate_image(
        "a fox in the snow",
        model="flux-lora",
        loras=[{"path": "ink", "scale": 0.7}],
        on_progress=events.append,
    )
    job = await service.get_job(result.job_id)
    assert job.arguments["loras"] == [{"path": EXTERNAL, "scale": 0.7}]
    assert job.arguments["prompt"] == "INKSTYLE a fox in the snow"
    notes = [e for e in events if isinstance(e, NoteEvent) and "trigger word" in e.message]
    assert len(notes) == 1
    assert "'INKSTYLE'" in notes[0].message
    assert "'ink'" in notes[0].message
    assert result.images[0].path.exists()


async def test_prompt_with_trigger_word_is_left_alone(service: FalService, emu: Any) -> None:
    await _register(service, "ink", EXTERNAL, "INKSTYLE")
    events: list[ProgressEvent] = []
    prompt, loras = await service.resolve_loras(
        "an INKSTYLE drawing", ["ink"], on_progress=events.append
    )
    assert prompt == "an INKSTYLE drawing"
    assert loras == [{"path": EXTERNAL, "scale": 1.0}]
    assert events == []
    # a word inside another word does not count
    prompt, _ = await service.resolve_loras("INKSTYLES everywhere", ["ink"])
    assert prompt == "INKSTYLE INKSTYLES everywhere"


async def test_unknown_reference_fails_listing_the_library(service: FalService, emu: Any) -> None:
    await _register(service, "ink", EXTERNAL, None)
    await _register(service, "clay", EXTERNAL, None)
    with pytest.raises(ValidationError) as caught:
        await service.generate_image("x", model="flux-lora", loras=["nosuchlora"])
    error = caught.value.errors[0]
    assert error.field == "loras.0"
    assert "'nosuchlora'" in error.message
    assert error.allowed is not None
    assert "clay" in error.allowed
    assert "ink" in error.allowed
    assert total_requests(emu) == 0


async def test_local_file_is_uploaded_once(service: FalService, emu: Any, tmp_path: Path) -> None:
    lora = tmp_path / "mine.safetensors"
    lora.write_bytes(safetensors_bytes(seed=3))
    first = await service.generate_image("a cup", model="flux-lora", loras=[str(lora)])
    second = await service.generate_with_lora("a mug", lora_url=str(lora), lora_scale=0.9)
    assert emu.stats.requests["upload"] == 1
    urls = []
    for result in (first, second):
        job = await service.get_job(result.job_id)
        urls.append(job.arguments["loras"][0]["path"])
    assert urls[0] == urls[1]
    assert urls[0].startswith(emu.base_url)
    assert (await service.get_job(second.job_id)).arguments["loras"][0]["scale"] == 0.9
    # the same bytes under another name are the same upload
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(lora.read_bytes())
    await service.resolve_loras("a plate", [str(copy)])
    assert emu.stats.requests["upload"] == 1


async def test_local_file_that_is_not_safetensors_is_refused(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.safetensors"
    fake.write_text("not weights")
    with pytest.raises(ValidationError, match="is not a safetensors LoRA file"):
        await service.generate_image("x", model="flux-lora", loras=[str(fake)])
    assert total_requests(emu) == 0


@pytest.mark.parametrize("scale", [-0.1, 2.5])
async def test_scale_out_of_range(service: FalService, emu: Any, scale: float) -> None:
    with pytest.raises(ValidationError) as caught:
        await service.generate_with_lora("x", lora_url=EXTERNAL, lora_scale=scale)
    assert caught.value.errors[0].field == "loras.0.scale"
    assert "0 to 2" in str(caught.value)
    assert total_requests(emu) == 0


async def test_several_loras_of_every_kind_in_order(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    await _register(service, "ink", EXTERNAL, "INKSTYLE")
    await _register(service, "clay", "https://example.com/clay.safetensors", "CLAYMATION")
    lora = tmp_path / "local.safetensors"
    lora.write_bytes(safetensors_bytes(seed=5))
    items = [
        LoraWeight(path="https://example.com/direct.safetensors", scale=0.5),
        "ink",
        {"path": str(lora), "scale": 1.2},
        {"path": "clay", "scale": 0.6},
    ]
    result = await service.generate_image("a teapot", model="sdxl", loras=items)
    job = await service.get_job(result.job_id)
    paths = [item["path"] for item in job.arguments["loras"]]
    assert paths[0] == "https://example.com/direct.safetensors"
    assert paths[1] == EXTERNAL
    assert paths[2].startswith(emu.base_url)
    assert paths[3] == "https://example.com/clay.safetensors"
    assert [item["scale"] for item in job.arguments["loras"]] == [0.5, 1.0, 1.2, 0.6]
    assert job.arguments["prompt"] == "INKSTYLE CLAYMATION a teapot"
    assert emu.stats.submits_by_endpoint == {"fal-ai/fast-sdxl": 1}


async def test_urls_need_no_library(service: FalService, emu: Any) -> None:
    prompt, loras = await service.resolve_loras("p", [EXTERNAL])
    assert (prompt, loras) == ("p", [{"path": EXTERNAL, "scale": 1.0}])
    assert not (service.settings.home / "falkit.db").exists()


async def test_expired_url_falls_back_to_the_kept_copy(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    kept = tmp_path / "kept.safetensors"
    kept.write_bytes(safetensors_bytes(seed=9))
    gone = f"{emu.base_url}/cdn/files/expired.safetensors"
    store = await service.store()
    await store.add_lora(
        name="old",
        url=gone,
        trigger_word="OLD",
        config_url=None,
        local_path=str(kept),
        job_id=None,
        params={"steps": 5},
    )
    events: list[ProgressEvent] = []
    first = await service.generate_image(
        "OLD photo", model="flux-lora", loras=["old"], on_progress=events.append
    )
    record = await service.get_lora("old")
    assert record.url != gone
    assert record.url.startswith(emu.base_url)
    assert record.params == {"steps": 5}
    assert (await service.get_job(first.job_id)).arguments["loras"][0]["path"] == record.url
    assert any(isinstance(e, NoteEvent) and "no longer answers" in e.message for e in events)
    assert emu.stats.requests["upload"] == 1

    files_before = emu.stats.requests["file"]
    await service.generate_image("OLD again", model="flux-lora", loras=["old"])
    assert emu.stats.requests["upload"] == 1
    # the renewed URL was checked once for this service, not once per image
    assert emu.stats.requests["file"] - files_before == 1  # only the image download


async def test_live_url_with_kept_copy_is_used_as_registered(
    service: FalService, emu: Any, photos: Path
) -> None:
    trained = await service.train_lora(photos, trigger_word="TOK", steps=4)
    for prompt in ("TOK one", "TOK two"):
        result = await service.generate_image(prompt, model="flux-lora", loras=["TOK"])
        job = await service.get_job(result.job_id)
        assert job.arguments["loras"][0]["path"] == trained.url
    assert emu.stats.requests["upload"] == 1  # the dataset only


async def test_cached_upload_that_expired_is_uploaded_again(
    service: FalService, emu: Any, tmp_path: Path
) -> None:
    import hashlib

    lora = tmp_path / "aged.safetensors"
    lora.write_bytes(safetensors_bytes(seed=4))
    gone = f"{emu.base_url}/cdn/files/aged-away.safetensors"
    store = await service.store()
    digest = hashlib.sha256(lora.read_bytes()).hexdigest()
    await store.remember_upload(digest, gone, lora.stat().st_size)
    _, loras = await service.resolve_loras("p", [str(lora)])
    assert loras[0]["path"] != gone
    assert emu.stats.requests["upload"] == 1
    assert await store.find_upload(digest) == loras[0]["path"]
