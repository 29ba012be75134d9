"""A1111 `parameters` text: written into kept images without re-encoding, read back by Pillow
the way A1111, ComfyUI and image sites read it, and parsed for the web page's drop target."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from falkit.service.downloads import embed_metadata, read_metadata
from falkit.service.geninfo import (
    EXIF_IFD_POINTER,
    USER_COMMENT,
    a1111_text,
    decode_user_comment,
    image_parameters,
    parse_a1111,
)

METADATA: dict[str, Any] = {
    "prompt": "a red fox, in snow",
    "model": "flux-lora",
    "endpoint_id": "fal-ai/flux-lora",
    "seed": 15860307465884635512,
    "job_id": "j_01",
    "request_id": "req-1",
    "arguments": {
        "prompt": "a red fox, in snow",
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "negative_prompt": "blurry",
        "loras": [{"path": "https://v3.fal.media/files/x/me.safetensors", "scale": 0.8}],
    },
}


def _image(fmt: str, size: tuple[int, int] = (64, 48), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, fmt, **save)
    return out.getvalue()


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.tobytes()


def test_text_is_what_a1111_writes() -> None:
    text = a1111_text(METADATA, (64, 48))
    prompt, negative, fields = text.split("\n")
    assert prompt == "a red fox, in snow <lora:me:0.8>"
    assert negative == "Negative prompt: blurry"
    assert fields.startswith("Steps: 28, CFG scale: 3.5, Seed: 15860307465884635512, Size: 64x48")
    assert "Model: flux-lora" in fields


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_kept_images_carry_parameters_readable_by_pillow(fmt: str, tmp_path: Any) -> None:
    original = _image(fmt)
    content_type = f"image/{fmt.lower()}"
    tagged = embed_metadata(original, content_type, METADATA, (64, 48))
    assert _pixels(tagged) == _pixels(original)  # not re-encoded
    with Image.open(io.BytesIO(tagged)) as img:
        if fmt == "PNG":
            text = img.info["parameters"]  # what A1111 reads: image.info["parameters"]
        else:
            raw = img.getexif().get_ifd(EXIF_IFD_POINTER)[USER_COMMENT]
            assert raw.startswith(b"UNICODE\x00")
            text = decode_user_comment(raw)
    assert text == a1111_text(METADATA, (64, 48))
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(tagged)
    assert read_metadata(path) == {**METADATA, "seed": METADATA["seed"]}  # falkit's record too


def test_non_latin_prompt_goes_to_itxt() -> None:
    meta = {**METADATA, "prompt": "狐 in snow", "arguments": {"prompt": "狐 in snow"}}
    tagged = embed_metadata(_image("PNG"), "image/png", meta, (64, 48))
    assert b"iTXtparameters" in tagged
    with Image.open(io.BytesIO(tagged)) as img:
        assert img.info["parameters"].startswith("狐 in snow")


def test_jpeg_with_its_own_exif_keeps_it() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    original = _image("JPEG", exif=exif.tobytes())
    tagged = embed_metadata(original, "image/jpeg", METADATA, (64, 48))
    with Image.open(io.BytesIO(tagged)) as img:
        assert img.getexif()[0x010F] == "Camera Maker"


def test_parse_a1111_text() -> None:
    text = (
        "masterpiece, a castle <lora:detail:0.6>\nat night\n"
        "Negative prompt: lowres, text\n"
        'Steps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234, Size: 832x1216, Model: "sdxl", '
        "Model hash: abcd"
    )
    parsed = parse_a1111(text)
    assert parsed["prompt"] == "masterpiece, a castle at night"
    assert parsed["negative_prompt"] == "lowres, text"
    assert parsed["loras"] == [{"path": "detail", "scale": 0.6}]
    assert parsed["num_inference_steps"] == 30
    assert parsed["guidance_scale"] == 7.0
    assert parsed["seed"] == 1234
    assert parsed["image_size"] == {"width": 832, "height": 1216}
    assert parsed["model"] == "sdxl"
    assert parsed["extra"] == {"Sampler": "DPM++ 2M", "Model hash": "abcd"}


def test_prompt_only_text() -> None:
    assert parse_a1111("just a prompt") == {"prompt": "just a prompt"}


def test_image_parameters_prefers_falkits_record_then_a1111() -> None:
    ours = embed_metadata(_image("PNG"), "image/png", METADATA, (64, 48))
    found = image_parameters(ours)
    assert found is not None
    assert found["source"] == "falkit"
    assert found["model"] == "flux-lora"
    assert found["seed"] == METADATA["seed"]
    assert found["loras"] == METADATA["arguments"]["loras"]
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, CFG scale: 5, Seed: 7, Size: 64x48")
    out = io.BytesIO()
    Image.new("RGB", (64, 48)).save(out, "PNG", pnginfo=info)
    theirs = image_parameters(out.getvalue())
    assert theirs is not None
    assert theirs["source"] == "a1111"
    assert (theirs["prompt"], theirs["seed"], theirs["guidance_scale"]) == ("a cat", 7, 5.0)
    assert image_parameters(_image("PNG")) is None
    with pytest.raises(ValueError, match="not an image"):
        image_parameters(b"not an image at all")
