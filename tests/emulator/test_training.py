"""LoRA training: archive checks as Fal reports them, real safetensors output, use in flux-lora."""

from __future__ import annotations

import base64
import itertools
import json
import struct
from typing import Any

import httpx
import pytest

from falkit.emulator import EmulatorServer

from .conftest import ClientFactory, generate, make_zip, submit, wait_done

TRAIN = "fal-ai/flux-lora-fast-training"


async def _upload(client: httpx.AsyncClient, data: bytes, name: str = "photos.zip") -> str:
    token = (
        await client.post(
            "/rest/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={}
        )
    ).json()
    headers = {
        "Authorization": f"Bearer {token['token']}",
        "Content-Type": "application/zip",
        "X-Fal-File-Name": name,
    }
    response = await client.post("/cdn/files/upload", content=data, headers=headers)
    url: str = response.json()["access_url"]
    return url


def parse_safetensors(data: bytes) -> dict[str, Any]:
    """An independent reader: u64 LE header size, JSON header, tensor bytes at data_offsets."""
    (size,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + size])
    payload = data[8 + size :]
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start  # contiguous, no gaps or overlaps
    assert spans[-1][1] == len(payload)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        start, end = info["data_offsets"]
        assert end - start == 4 * info["shape"][0] * info["shape"][1]
        values = struct.unpack(f"<{(end - start) // 4}f", payload[start:end])
        assert all(abs(v) < 1 for v in values)
    return header


async def test_training_produces_valid_safetensors_and_config(make_client: ClientFactory) -> None:
    client = await make_client(training_seconds=0.2)
    url = await _upload(client, make_zip(5, captions=True))
    handle = await submit(
        client, TRAIN, {"images_data_url": url, "trigger_word": "TOK", "steps": 40}
    )
    done = await wait_done(client, handle["status_url"] + "?logs=1")
    assert done["metrics"]["inference_time"] >= 0.19
    steps = [e["message"] for e in done["logs"] if e["message"].startswith("step ")]
    assert steps[-1] == "step 40/40"
    assert 2 <= len(steps) <= 20
    output = (await client.get(handle["response_url"])).json()
    lora_file = output["diffusers_lora_file"]
    lora = (await client.get(lora_file["url"])).content
    assert len(lora) == lora_file["file_size"]
    assert lora_file["file_name"].endswith(".safetensors")
    header = parse_safetensors(lora)
    assert header["__metadata__"]["trigger_word"] == "TOK"
    assert len([k for k in header if k.endswith(".weight")]) == 4
    config = (await client.get(output["config_file"]["url"])).json()
    assert config["trigger_word"] == "TOK"
    assert config["steps"] == 40
    assert config["images"] == [f"photo_{i}.png" for i in range(5)]


async def _train_error(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    handle = await submit(client, TRAIN, {"images_data_url": url})
    done = await wait_done(client, handle["status_url"])
    result = await client.get(handle["response_url"])
    assert result.status_code == 422
    (item,) = result.json()["detail"]
    assert item["loc"] == ["body", "images_data_url"]
    assert done["error_type"] == item["type"]
    return dict(item)


async def test_not_a_zip_is_invalid_archive(client: httpx.AsyncClient) -> None:
    item = await _train_error(client, await _upload(client, b"these are not zip bytes"))
    assert item["type"] == "invalid_archive"
    assert item["ctx"] == {"supported_extensions": [".zip"]}


@pytest.mark.parametrize(("images", "extra"), [(0, {"readme.txt": b"no images"}), (3, {})])
async def test_too_few_images(
    client: httpx.AsyncClient, images: int, extra: dict[str, bytes]
) -> None:
    item = await _train_error(client, await _upload(client, make_zip(images, extra=extra)))
    assert item["type"] == "archive_file_count_below_minimum"
    assert item["ctx"]["min_count"] == 4
    assert item["ctx"]["provided_count"] == images
    assert ".png" in item["ctx"]["supported_extensions"]


async def test_hidden_and_macos_files_do_not_count(client: httpx.AsyncClient) -> None:
    junk = {"__MACOSX/._a.png": b"x", ".hidden.png": b"x"}
    item = await _train_error(client, await _upload(client, make_zip(3, extra=junk)))
    assert item["ctx"]["provided_count"] == 3


async def test_unreachable_archive_is_download_error(client: httpx.AsyncClient) -> None:
    item = await _train_error(client, "https://example.com/photos.zip")
    assert item["type"] == "file_download_error"
    missing = await _train_error(client, "http://emulator/cdn/files/nothing-here.zip")
    assert missing["type"] == "file_download_error"


async def test_archive_as_data_uri(make_client: ClientFactory) -> None:
    client = await make_client(training_seconds=0.05)
    uri = "data:application/zip;base64," + base64.b64encode(make_zip(4)).decode()
    result = await generate(client, TRAIN, {"images_data_url": uri, "steps": 10})
    assert result.status_code == 200


async def test_archive_on_another_loopback_server_is_not_fetched(
    client: httpx.AsyncClient, emu: EmulatorServer
) -> None:
    """Only the emulator's own files and data URIs: another server (here a second emulator on
    loopback, holding a good archive) is never asked, and its answer is never reported."""
    async with httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": "Key k:s"}
    ) as other:
        url = await _upload(other, make_zip(4))
    emu.stats.reset()
    item = await _train_error(client, url)
    assert item["type"] == "file_download_error"
    assert "not a file stored on this emulator" in item["msg"]
    assert emu.stats.requests["file"] == 0


async def test_own_files_are_read_under_a_loopback_spelling(emu: EmulatorServer) -> None:
    async with httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": "Key k:s"}
    ) as own:
        url = (await _upload(own, make_zip(4))).replace("127.0.0.1", "localhost")
        emu.config.training_seconds = 0.05
        result = await generate(own, TRAIN, {"images_data_url": url, "steps": 10})
    assert result.status_code == 200, result.text
    assert emu.stats.requests["file"] == 0  # read from the store, not fetched over HTTP


async def test_flux_lora_with_trained_weights(make_client: ClientFactory) -> None:
    client = await make_client(training_seconds=0.05)
    trained = await generate(
        client, TRAIN, {"images_data_url": await _upload(client, make_zip(4)), "steps": 5}
    )
    lora_url = trained.json()["diffusers_lora_file"]["url"]
    body = {
        "prompt": "TOK on a beach",
        "loras": [{"path": lora_url, "scale": 0.8}],
        "image_size": "square",
    }
    result = await generate(client, "fal-ai/flux-lora", body)
    assert result.status_code == 200
    assert (await client.get(result.json()["images"][0]["url"])).status_code == 200


async def test_flux_lora_missing_emulator_file_is_422(client: httpx.AsyncClient) -> None:
    loras = [
        {"path": "https://huggingface.co/someone/lora/resolve/main/w.safetensors"},
        {"path": "http://emulator/cdn/files/gone.safetensors"},
    ]
    result = await generate(client, "fal-ai/flux-lora", {"prompt": "x", "loras": loras})
    assert result.status_code == 422
    (item,) = result.json()["detail"]
    assert item["loc"] == ["body", "loras", 1, "path"]
    assert item["type"] == "file_download_error"
