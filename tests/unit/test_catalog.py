"""The catalog rejects bad input before any network call, naming the field and the limits."""

from __future__ import annotations

import pytest

from falkit.catalog import BY_ENDPOINT, MODELS, get_model
from falkit.errors import ValidationError

TEXT_TO_IMAGE = [name for name, spec in MODELS.items() if spec.kind == "image"]


def test_catalog_has_the_eight_models() -> None:
    assert set(MODELS) == {
        "flux-schnell",
        "flux-dev",
        "flux-pro",
        "flux-pro-1.1",
        "flux-realism",
        "flux-lora",
        "sdxl",
        "flux-lora-training",
    }
    assert BY_ENDPOINT["fal-ai/flux/schnell"].name == "flux-schnell"


@pytest.mark.parametrize("name", TEXT_TO_IMAGE)
def test_minimal_request_is_valid(name: str) -> None:
    wire = MODELS[name].validate({"prompt": "a red fox"})
    assert wire["prompt"] == "a red fox"


@pytest.mark.parametrize(
    ("name", "params", "field", "allowed"),
    [
        ("flux-schnell", {"num_inference_steps": 28}, "num_inference_steps", "1 to 12"),
        ("flux-dev", {"num_inference_steps": 51}, "num_inference_steps", "1 to 50"),
        ("flux-dev", {"guidance_scale": 25}, "guidance_scale", "1 to 20"),
        ("flux-lora", {"guidance_scale": 36}, "guidance_scale", "0 to 35"),
        ("sdxl", {"num_images": 9}, "num_images", "1 to 8"),
        ("flux-dev", {"image_size": "huge"}, "image_size", "square_hd"),
        ("flux-dev", {"image_size": "0x512"}, "image_size", "WxH"),
        ("flux-dev", {"output_format": "gif"}, "output_format", "jpeg, png"),
        ("flux-dev", {"colour": "red"}, "colour", "num_inference_steps"),
        ("flux-pro-1.1", {"num_inference_steps": 4}, "num_inference_steps", "prompt"),
    ],
)
def test_bad_field_is_named_with_allowed_values(
    name: str, params: dict[str, object], field: str, allowed: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        MODELS[name].validate({"prompt": "x", **params})
    message = str(caught.value)
    assert field in message
    assert allowed in message
    assert caught.value.errors[0].field == field


def test_empty_and_blank_prompt_rejected() -> None:
    for prompt in ("", "   "):
        with pytest.raises(ValidationError, match="prompt"):
            MODELS["flux-schnell"].validate({"prompt": prompt})


def test_unknown_model_lists_the_catalog() -> None:
    with pytest.raises(ValidationError, match="flux-schnell"):
        get_model("flux-ultra")


def test_raw_endpoint_id_is_usable_untyped() -> None:
    assert get_model("fal-ai/some-new-model") is None


def test_custom_size_and_sdxl_format_rename() -> None:
    wire = MODELS["sdxl"].validate({"prompt": "x", "image_size": "640x480", "output_format": "png"})
    assert wire["image_size"] == {"width": 640, "height": 480}
    assert wire["format"] == "png"
    assert "output_format" not in wire


def test_lora_scale_range() -> None:
    with pytest.raises(ValidationError, match="scale"):
        MODELS["flux-lora"].validate(
            {"prompt": "x", "loras": [{"path": "https://a/b", "scale": 3}]}
        )


def test_cost_estimates_follow_price_rules() -> None:
    dev = MODELS["flux-dev"]
    # 1024x768 = 0.79 MP, rounded up to 1 MP at $0.025
    assert dev.estimate_cost(dev.validate({"prompt": "x"})) == pytest.approx(0.025)
    schnell = MODELS["flux-schnell"]
    wire = schnell.validate({"prompt": "x", "image_size": "square_hd", "num_images": 2})
    assert schnell.estimate_cost(wire) == pytest.approx(0.003 * 1.048576 * 2, rel=1e-3)
