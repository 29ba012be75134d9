"""Generated outputs: real images of the requested size and format, deterministic, data URIs."""

from __future__ import annotations

import base64
import io
import time

import httpx
import pytest
from PIL import Image, ImageStat

from falkit.emulator.render import RenderSpec, render

from .conftest import ClientFactory, generate


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("endpoint", "body", "size", "fmt"),
    [
        ("fal-ai/flux/dev", {}, (1024, 768), "JPEG"),  # flux default landscape_4_3
        ("fal-ai/flux/schnell", {"image_size": "portrait_16_9"}, (576, 1024), "JPEG"),
        ("fal-ai/flux/dev", {"image_size": {"width": 300, "height": 200}}, (300, 200), "JPEG"),
        (
            "fal-ai/flux-pro/v1.1",
            {"output_format": "png", "image_size": "square"},
            (512, 512),
            "PNG",
        ),
        ("fal-ai/fast-sdxl", {"format": "png"}, (1024, 1024), "PNG"),  # sdxl default square_hd
    ],
)
async def test_images_decode_with_requested_size_and_format(
    client: httpx.AsyncClient,
    endpoint: str,
    body: dict[str, object],
    size: tuple[int, int],
    fmt: str,
) -> None:
    result = await generate(client, endpoint, {"prompt": "a red fox", **body})
    assert result.status_code == 200
    output = result.json()
    (image,) = output["images"]
    assert (image["width"], image["height"]) == size
    assert image["content_type"] == f"image/{fmt.lower()}"
    download = await client.get(image["url"])
    assert download.headers["content-type"] == image["content_type"]
    decoded = _decode(download.content)
    assert decoded.size == size
    assert decoded.format == fmt
    assert output["prompt"] == "a red fox"
    assert output["has_nsfw_concepts"] == [False]
    assert output["timings"]["inference"] > 0


async def test_fast_sdxl_ignores_output_format_like_fal(client: httpx.AsyncClient) -> None:
    """fast-sdxl's wire name is ``format``; ``output_format`` is an unknown field there."""
    result = await generate(client, "fal-ai/fast-sdxl", {"prompt": "x", "output_format": "png"})
    assert result.json()["images"][0]["content_type"] == "image/jpeg"


async def test_several_images_differ_and_share_seed(client: httpx.AsyncClient) -> None:
    body = {"prompt": "boats", "num_images": 3, "seed": 7, "image_size": "square"}
    output = (await generate(client, "fal-ai/flux/dev", body)).json()
    assert output["seed"] == 7
    assert output["has_nsfw_concepts"] == [False, False, False]
    urls = [image["url"] for image in output["images"]]
    assert len(set(urls)) == 3
    contents = {(await client.get(url)).content for url in urls}
    assert len(contents) == 3


async def test_same_inputs_give_identical_bytes_other_seed_differs(
    client: httpx.AsyncClient,
) -> None:
    body = {"prompt": "same", "seed": 42, "image_size": "square"}
    first = (await generate(client, "fal-ai/flux/schnell", body)).json()["images"][0]["url"]
    second = (await generate(client, "fal-ai/flux/schnell", body)).json()["images"][0]["url"]
    third_body = {**body, "seed": 43}
    third = (await generate(client, "fal-ai/flux/schnell", third_body)).json()["images"][0]["url"]
    assert first != second  # every output gets its own URL, as on Fal
    a, b, c = [(await client.get(url)).content for url in (first, second, third)]
    assert a == b
    assert a != c


async def test_random_seed_is_64_bit_and_returned(client: httpx.AsyncClient) -> None:
    seeds = {
        (await generate(client, "fal-ai/flux/schnell", {"prompt": "s"})).json()["seed"]
        for _ in range(3)
    }
    assert len(seeds) == 3
    assert all(0 <= seed < 2**64 for seed in seeds)
    assert max(seeds) > 2**32  # big integers survive JSON


async def test_sync_mode_returns_data_uris(client: httpx.AsyncClient) -> None:
    body = {"prompt": "inline", "sync_mode": True, "output_format": "png", "image_size": "square"}
    image = (await generate(client, "fal-ai/flux/dev", body)).json()["images"][0]
    prefix = "data:image/png;base64,"
    assert image["url"].startswith(prefix)
    decoded = _decode(base64.b64decode(image["url"][len(prefix) :]))
    assert decoded.size == (512, 512)
    assert decoded.format == "PNG"


@pytest.mark.parametrize(
    ("endpoint", "size", "units"),
    [
        ("fal-ai/flux/dev", "landscape_4_3", "1"),  # 0.79 MP rounded up to whole MP
        ("fal-ai/flux/schnell", "landscape_4_3", "0.786432"),
        ("fal-ai/fast-sdxl", "square", "1"),  # billed per image
    ],
)
async def test_result_headers_carry_request_id_and_billable_units(
    client: httpx.AsyncClient, endpoint: str, size: str, units: str
) -> None:
    response = await generate(client, endpoint, {"prompt": "bill me", "image_size": size})
    assert response.headers["x-fal-billable-units"] == units
    assert len(response.headers["x-fal-request-id"]) == 36


async def test_run_answers_output_directly_after_latency(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.3)
    started = time.monotonic()
    response = await client.post(
        "/run/fal-ai/flux/schnell", json={"prompt": "now", "image_size": "square"}
    )
    assert time.monotonic() - started >= 0.29
    assert response.status_code == 200
    assert response.headers["x-fal-request-id"]
    assert response.headers["x-fal-billable-units"] == "0.262144"
    image = response.json()["images"][0]
    assert _decode((await client.get(image["url"])).content).size == (512, 512)


async def test_run_invalid_input_is_422_at_once(client: httpx.AsyncClient) -> None:
    response = await client.post("/run/fal-ai/flux/dev", json={"prompt": "x", "num_images": 9})
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "num_images"]
    assert item["ctx"] == {"le": 4}


def test_placeholder_shows_the_emulator_banner_and_is_cheap() -> None:
    spec = RenderSpec("a cat", 1, "fal-ai/flux/dev", 1024, 768, "jpeg")
    started = time.process_time()  # CPU time: what the render costs, whatever else runs
    data = render(spec)
    took = time.process_time() - started
    image = _decode(data)
    assert image.size == (1024, 768)
    banner = ImageStat.Stat(image.crop((0, 0, 1024, 60)).convert("L"))
    body = ImageStat.Stat(image.crop((0, 300, 1024, 600)).convert("L"))
    assert banner.mean[0] < 60 < body.mean[0]  # the black "FAL EMULATOR" band on top
    assert took < 1.0
    hits = render.cache_info().hits
    assert render(spec) is data  # cached: the same bytes, not drawn again
    assert render.cache_info().hits == hits + 1


async def test_plain_images_share_a_picture_and_carry_details_in_metadata(
    make_client: ClientFactory,
) -> None:
    client = await make_client(plain_images=True)
    urls = []
    for fmt, seed in (("jpeg", 1), ("jpeg", 2), ("png", 1)):
        body = {"prompt": "a plain fox", "seed": seed, "output_format": fmt}
        result = (await generate(client, "fal-ai/flux/dev", body)).json()
        urls.append(result["images"][0]["url"])
    first, second, as_png = [(await client.get(url)).content for url in urls]
    assert first != second  # the seed is in the metadata
    a, b, c = _decode(first), _decode(second), _decode(as_png)
    assert (a.size, a.format, c.format) == ((1024, 768), "JPEG", "PNG")
    assert a.tobytes() == b.tobytes()  # one picture per size and format
    assert b"prompt: a plain fox" in a.info["comment"]
    assert b"seed: 2" in b.info["comment"]
    assert "model: fal-ai/flux/dev" in c.info["Comment"]
    spec = RenderSpec("x" * 70_000, 1, "m", 64, 64, "jpeg", plain=True)
    assert _decode(render(spec)).size == (64, 64)  # an over-long prompt is cut to fit a segment
    assert render(RenderSpec("same", 1, "m", 64, 64, "png", plain=True)) == render(
        RenderSpec("same", 1, "m", 64, 64, "png", plain=True)
    )
