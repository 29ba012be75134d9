"""The model catalog: short names, endpoint ids, typed inputs with ranges, prices and uses.

Ranges and defaults follow ../shared/fal-protocol.md §10. Where the sheet marks a value
uncertain, the documented sibling's value is used and the field's comment says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo

from falkit.errors import FieldError, ValidationError
from falkit.limits import MAX_PROMPT_CHARS, MAX_SEED, endpoint_id_problem
from falkit.types import (
    IMAGE_SIZE_PRESETS,
    ImagePreset,
    ImageSize,
    LoraWeight,
    OutputFile,
    OutputImage,
    image_dimensions,
    parse_image_size,
)

DEFAULT_MODEL = "flux-schnell"
OutputFormat = Literal["jpeg", "png"]
SafetyTolerance = Literal["1", "2", "3", "4", "5", "6"]


class _Input(BaseModel):
    """Strict user input: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class _ImageInput(_Input):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="What to draw")
    image_size: ImagePreset | ImageSize = Field(
        "landscape_4_3", description="A preset name or {width, height}"
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Seed for reproducible results")
    num_images: int = Field(1, ge=1, le=4, description="Images per request")
    sync_mode: bool = Field(False, description="Return images as data URIs")
    enable_safety_checker: bool = Field(True, description="Run Fal's safety checker")
    output_format: OutputFormat = Field("jpeg", description="jpeg or png")

    @field_validator("image_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_image_size(value) if isinstance(value, str | dict) else value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class FluxDevInput(_ImageInput):
    num_inference_steps: int = Field(28, ge=1, le=50, description="Denoising steps")
    guidance_scale: float = Field(3.5, ge=1, le=20, description="Prompt adherence")
    acceleration: Literal["none", "regular", "high"] = "none"


class FluxSchnellInput(_ImageInput):
    num_inference_steps: int = Field(4, ge=1, le=12, description="Denoising steps")
    # Schnell's guidance range is uncertain in the sheet; dev's documented 1-20 is used.
    guidance_scale: float = Field(3.5, ge=1, le=20, description="Prompt adherence")
    acceleration: Literal["none", "regular", "high"] = "none"


class FluxProInput(_ImageInput):
    # v1 is deprecated upstream; ranges are the FluxProNew / 3P values the sheet lists.
    num_inference_steps: int = Field(28, ge=1, le=50, description="Denoising steps")
    guidance_scale: float = Field(3.5, ge=1, le=20, description="Prompt adherence")
    safety_tolerance: SafetyTolerance = Field("2", description="1 strictest to 6")


class FluxPro11Input(_ImageInput):
    # num_images range is uncertain (likely 1-4, as the other Flux endpoints).
    safety_tolerance: SafetyTolerance = Field("2", description="1 strictest to 6")
    enhance_prompt: bool = False


class FluxRealismInput(_ImageInput):
    # Ranges not documented for flux-realism; flux/dev's are used.
    num_inference_steps: int = Field(28, ge=1, le=50, description="Denoising steps")
    guidance_scale: float = Field(3.5, ge=1, le=20, description="Prompt adherence")
    strength: float = Field(1.0, ge=0, le=1, description="Realism LoRA strength")


class FluxLoraInput(_ImageInput):
    num_inference_steps: int = Field(28, ge=1, le=50, description="Denoising steps")
    guidance_scale: float = Field(3.5, ge=0, le=35, description="Prompt adherence")
    loras: list[LoraWeight] = Field(default_factory=list, description="LoRAs to merge")
    acceleration: Literal["none", "regular"] = "none"


class SdxlInput(_ImageInput):
    image_size: ImagePreset | ImageSize = Field("square_hd", description="A preset or {w, h}")
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS, description="What to avoid")
    # Ranges are uncertain; the sibling fal-ai/stable-diffusion-v15 (same input type) is used.
    num_inference_steps: int = Field(25, ge=1, le=50, description="Denoising steps")
    guidance_scale: float = Field(7.5, ge=0, le=20, description="Prompt adherence")
    num_images: int = Field(1, ge=1, le=8, description="Images per request")
    loras: list[LoraWeight] = Field(default_factory=list, description="LoRAs to merge")
    safety_checker_version: Literal["v1", "v2"] = "v1"
    expand_prompt: bool = False


class TrainingInput(_Input):
    images_data_url: str = Field(min_length=1, description="URL of a zip of training images")
    trigger_word: str | None = Field(None, description="Word that calls up the LoRA")
    # Steps default and range are not documented; 1000 is what Fal's examples send.
    steps: int = Field(1000, ge=1, le=10000, description="Training steps")
    create_masks: bool = Field(True, description="Segmentation-weighted loss")
    is_style: bool = Field(False, description="Train a style (no masks or captions)")
    is_input_format_already_preprocessed: bool = False
    data_archive_format: str | None = None


class ImageOutput(BaseModel):
    """Common text-to-image output; unknown fields are kept."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    images: list[OutputImage] = Field(default_factory=list)
    timings: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    has_nsfw_concepts: list[bool] = Field(default_factory=list)
    prompt: str | None = None


class TrainingOutput(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    diffusers_lora_file: OutputFile
    config_file: OutputFile | None = None


# ---- prices ----


@dataclass(frozen=True)
class PriceRule:
    """How a job's cost is estimated: per megapixel (rounded up or not), per image, or flat."""

    unit: Literal["megapixel", "image", "run"]
    usd: float
    round_up: bool = False
    certain: bool = True

    def estimate(self, width: int, height: int, count: int) -> float:
        if self.unit == "run":
            return self.usd
        if self.unit == "image":
            return self.usd * count
        mp = width * height / 1_000_000
        if self.round_up:
            mp = math.ceil(mp)
        return round(self.usd * mp * count, 6)

    def describe(self) -> str:
        note = "" if self.certain else " (estimate)"
        rounded = ", rounded up" if self.round_up else ""
        return f"${self.usd:g} per {self.unit}{rounded}{note}"


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry."""

    name: str
    endpoint_id: str
    use: str
    input_model: type[_Input]
    output_model: type[BaseModel]
    price: PriceRule
    kind: Literal["image", "training"] = "image"
    wire_renames: tuple[tuple[str, str], ...] = ()

    @property
    def takes_loras(self) -> bool:
        return "loras" in self.input_model.model_fields

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in self.input_model.model_fields.items():
            if info.is_required() or info.default is None:
                continue
            value = info.get_default(call_default_factory=True)
            out[name] = value.model_dump() if isinstance(value, BaseModel) else value
        return out

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Checked arguments as Fal expects them, or ValidationError naming field and limits."""
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            model = self.input_model.model_validate(clean)
        except pydantic.ValidationError as exc:
            raise ValidationError(_field_errors(self, exc)) from None
        wire = model.model_dump(mode="json", exclude_unset=True)
        for ours, theirs in self.wire_renames:
            if ours in wire:
                wire[theirs] = wire.pop(ours)
        return wire

    def estimate_cost(self, arguments: dict[str, Any]) -> float:
        """Estimated USD for one job with these (wire) arguments."""
        default_size = self.input_model.model_fields.get("image_size")
        preset = str(default_size.default) if default_size else "square_hd"
        width, height = image_dimensions(arguments.get("image_size"), preset)
        return self.price.estimate(width, height, int(arguments.get("num_images", 1)))


def _allowed(spec: ModelSpec, loc: list[str]) -> str | None:
    field = loc[0] if loc else "input"
    info = spec.input_model.model_fields.get(field)
    if info is None:
        names = ", ".join(spec.input_model.model_fields)
        return f"fields of {spec.name}: {names}"
    if field == "image_size":
        return ", ".join(IMAGE_SIZE_PRESETS) + " or WxH (each side 1 to 14142)"
    if field == "loras" and len(loc) >= 3:
        item = LoraWeight.model_fields.get(loc[-1])
        return _range_or_choices(item) if item is not None else "path and scale"
    return _range_or_choices(info, f" for {spec.name}")


def _range_or_choices(info: FieldInfo, suffix: str = "") -> str | None:
    lo = hi = None
    for meta in info.metadata:
        lo = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else lo
        lo = getattr(meta, "gt", None) if getattr(meta, "gt", None) is not None else lo
        hi = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else hi
    if lo is not None and hi is not None:
        return f"{_number(lo)} to {_number(hi)}{suffix}"
    args = getattr(info.annotation, "__args__", ())
    literals = [a for a in args if isinstance(a, str)]
    return ", ".join(literals) if literals else None


def _number(value: float) -> str:
    """A bound as people write it: 3.5, 10000, 18446744073709551615 (not 1.84467e+19)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _field_errors(spec: ModelSpec, exc: pydantic.ValidationError) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("Literal", "ImageSize"))]
        field = loc[0] if loc else "input"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown field for {spec.name}"
        if field == "image_size":
            loc, message = [field], f"{err.get('input')!r} is not a preset or a WxH size"
        dotted = ".".join(loc) or "input"
        if any(e.field == dotted for e in out):
            continue
        out.append(FieldError(dotted, message, _allowed(spec, loc)))
    return out


_PER_MP: Literal["megapixel"] = "megapixel"
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "flux-schnell",
            "fal-ai/flux/schnell",
            "fast generation, prototyping",
            FluxSchnellInput,
            ImageOutput,
            PriceRule(_PER_MP, 0.003),
        ),
        ModelSpec(
            "flux-dev",
            "fal-ai/flux/dev",
            "balanced quality and speed",
            FluxDevInput,
            ImageOutput,
            PriceRule(_PER_MP, 0.025, round_up=True),
        ),
        # flux-pro v1 price is not published; the v1.1 figure is used.
        ModelSpec(
            "flux-pro",
            "fal-ai/flux-pro",
            "high quality, final renders",
            FluxProInput,
            ImageOutput,
            PriceRule(_PER_MP, 0.055, certain=False),
        ),
        ModelSpec(
            "flux-pro-1.1",
            "fal-ai/flux-pro/v1.1",
            "current pro version",
            FluxPro11Input,
            ImageOutput,
            PriceRule(_PER_MP, 0.055, certain=False),
        ),
        # flux-realism price is not published; flux/dev's is used.
        ModelSpec(
            "flux-realism",
            "fal-ai/flux-realism",
            "photorealism",
            FluxRealismInput,
            ImageOutput,
            PriceRule(_PER_MP, 0.025, round_up=True, certain=False),
        ),
        ModelSpec(
            "flux-lora",
            "fal-ai/flux-lora",
            "generation with trained LoRAs",
            FluxLoraInput,
            ImageOutput,
            PriceRule(_PER_MP, 0.035, certain=False),
        ),
        ModelSpec(
            "sdxl",
            "fal-ai/fast-sdxl",
            "fast Stable Diffusion XL",
            SdxlInput,
            ImageOutput,
            PriceRule("image", 0.0025, certain=False),
            wire_renames=(("output_format", "format"),),
        ),
        # Training price is not published; a flat per-run figure is assumed.
        ModelSpec(
            "flux-lora-training",
            "fal-ai/flux-lora-fast-training",
            "LoRA training",
            TrainingInput,
            TrainingOutput,
            PriceRule("run", 2.0, certain=False),
            kind="training",
        ),
    )
}
BY_ENDPOINT: dict[str, ModelSpec] = {spec.endpoint_id: spec for spec in MODELS.values()}


def get_model(name: str) -> ModelSpec | None:
    """The catalog entry for a short name or endpoint id; None for a raw uncatalogued id."""
    spec = MODELS.get(name) or BY_ENDPOINT.get(name)
    if spec is not None:
        return spec
    allowed = ", ".join(MODELS) + " or an endpoint id (fal-ai/...)"
    if "/" not in name:
        raise ValidationError.field("model", f"unknown model {name[:80]!r}", allowed)
    why = endpoint_id_problem(name)
    if why is not None:
        message = f"{name[:80]!r} is not an endpoint id: it {why}"
        raise ValidationError.field("model", message, allowed)
    return None


def is_endpoint_id(name: str) -> bool:
    """Whether ``name`` is a well-formed endpoint id (checked segment by segment, see limits)."""
    return endpoint_id_problem(name) is None


def image_models() -> list[ModelSpec]:
    return [m for m in MODELS.values() if m.kind == "image"]
