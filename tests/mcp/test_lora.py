"""Training a LoRA through the tools, then generating with it by name."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

from mcp import Client

from falkit.service import FalService
from tests.lora.helpers import make_folder, make_zip, total_requests
from tests.mcp.helpers import assert_images, data, ok, text


async def train(client: Client, source: Path | str, **args: Any) -> dict[str, Any]:
    """train_lora, then get_job until the LoRA is registered."""
    said: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        said.append(message)

    started = ok(
        await client.call_tool(
            "train_lora", {"source": str(source), **args}, progress_callback=on_progress
        )
    )
    job_id = data(started)["job_id"]
    deadline = time.monotonic() + 20
    while True:
        result = ok(await client.call_tool("get_job", {"job_id": job_id}))
        if data(result)["done"] or time.monotonic() > deadline:
            return {"started": started, "progress": said, **data(result), "text": text(result)}


async def test_train_then_generate_with_the_lora_by_name(
    connect: Any, emu: Any, service: FalService, photos: Path
) -> None:
    async with connect(allow_dirs=(photos.parent,)) as client:
        trained = await train(client, photos, trigger_word="TOK", name="rover", steps=200)
        loras = ok(await client.call_tool("list_loras", {}))
        result = await client.call_tool(
            "generate_image", {"prompt": "a dog on a beach", "loras": ["rover:0.8"]}
        )
    assert data(trained["started"])["done"] is False
    assert any(m and m.startswith("dataset ok: 5 images") for m in trained["progress"])
    assert "will be registered as 'rover'" in text(trained["started"])
    assert trained["name"] == "rover"
    assert Path(trained["local_path"]).is_file()
    assert [item["name"] for item in data(loras)["loras"]] == ["rover"]
    assert_images(result)
    answer = data(result)
    assert answer["model"] == "flux-lora"
    assert any("TOK" in note for note in answer["notes"]), "the missing trigger word is added"
    record = await service.get_lora("rover")
    job = await service.get_job(answer["job_id"])
    assert job.arguments["loras"] == [{"path": record.url, "scale": 0.8}]
    assert job.arguments["prompt"].startswith("TOK ")
    assert emu.stats.submits_by_endpoint == {
        "fal-ai/flux-lora-fast-training": 1,
        "fal-ai/flux-lora": 1,
    }


async def test_bad_training_input_is_a_tool_error(connect: Any, emu: Any, tmp_path: Path) -> None:
    few = make_folder(tmp_path / "few", 2)
    async with connect(allow_dirs=(tmp_path,)) as client:
        result = await client.call_tool("train_lora", {"source": str(few), "trigger_word": "TOK"})
        steps = await client.call_tool(
            "train_lora", {"source": str(few), "trigger_word": "TOK", "steps": 0}
        )
    assert result.is_error
    assert "at least 4" in text(result)
    assert steps.is_error
    assert "steps" in text(steps)
    assert total_requests(emu) == 0


async def test_paths_outside_the_allowed_folders_are_refused(
    connect: Any, emu: Any, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    outside = make_folder(tmp_path / "outside", 5)
    inside = make_folder(allowed / "photos", 4)
    (inside / "leak.jpg").symlink_to(outside / "img00.jpg")
    (allowed / "link").symlink_to(outside)
    archive = tmp_path / "outside.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for image in sorted(outside.iterdir()):
            zf.write(image, image.name)
    sneaky = [
        outside,
        archive,
        allowed / ".." / "outside",
        allowed / "link",
        inside,  # holds a symlink leading out
    ]
    async with connect(allow_dirs=(allowed,)) as client:
        results = [
            await client.call_tool("train_lora", {"source": str(s), "trigger_word": "TOK"})
            for s in sneaky
        ]
        lora = await client.call_tool(
            "generate_image", {"prompt": "x", "loras": [str(outside / "img00.jpg")]}
        )
    for source, result in zip(sneaky, results, strict=True):
        assert result.is_error, source
        assert "outside the folders this server may read" in text(result), source
        assert str(allowed) in text(result)
    assert "leak.jpg" in text(results[4])
    assert lora.is_error
    assert "outside the folders" in text(lora)
    assert total_requests(emu) == 0


async def test_training_from_a_url_needs_no_allowed_folder(
    connect: Any, emu: Any, photos: Path
) -> None:
    from falkit.client import FalClient

    members = {p.name: p.read_bytes() for p in sorted(photos.iterdir())}
    archive = make_zip(photos.parent / "set.zip", members)
    async with FalClient(emu.settings()) as fal:  # the user's zip, already online
        url = await fal.upload(archive.read_bytes(), "application/zip", "set.zip")
    async with connect() as client:
        trained = await train(client, url, trigger_word="SKS")
    assert url.startswith("http")
    assert trained["name"] == "SKS"
    assert trained["done"] is True
