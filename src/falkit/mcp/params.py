"""generate_image's and estimate_cost's parameters: Fal's names, described by the catalog.

The signature types here are loose on purpose (an integer, a text): each request is checked
against its own model by the catalog, which answers with that model's limits
(``num_inference_steps: ... (allowed: 1 to 12 for flux-schnell)``). What a client sees is
stricter and comes from the same catalog (:func:`image_overlay`): the model and size enums,
the widest bounds over all image models, the defaults they share, and a sentence saying which
models take a parameter and where their limits differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from falkit.catalog import ModelSpec, image_models
from falkit.mcp.tooling import publish_schema
from falkit.request import ALIASES, MAX_PROMPT_CHARS, ImageRequest
from falkit.types import IMAGE_SIZE_PRESETS, MAX_SIDE, ImageSize, LoraWeight

_SEGMENT = r"(?!\.+(?:/|$))[A-Za-z0-9._~-]+"  # no "." or ".." segments (see falkit.catalog)
ENDPOINT_PATTERN = f"^{_SEGMENT}(?:/{_SEGMENT})+$"
SIZE_PATTERN = r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$"
#: Parameters whose schema the catalog describes (enums, bounds, defaults, which models).
CATALOG_PARAMS = (
    "num_inference_steps",
    "guidance_scale",
    "seed",
    "num_images",
    "output_format",
    "negative_prompt",
    "enable_safety_checker",
    "safety_tolerance",
)
_BOUNDS = {"ge": "minimum", "le": "maximum", "min_length": "minLength", "max_length": "maxLength"}

Prompt = Annotated[
    str,
    Field(
        title="Prompt",
        description="What to draw, in plain descriptive sentences: subject, action, setting, "
        "then style, lighting and camera. Include a LoRA's trigger word when using one.",
    ),
]
Model = Annotated[
    str | None,
    Field(
        title="Model",
        description="A model from list_models: flux-schnell (fast drafts, the default), "
        "flux-dev (balanced), flux-pro-1.1 (final quality), flux-realism (photos), flux-lora "
        "(LoRAs; chosen when loras are given), sdxl (negative prompts). A raw Fal endpoint id "
        "(owner/app, e.g. fal-ai/flux-pro/v1.1-ultra) is sent as it is, unpriced.",
    ),
]
ImageSizeArg = Annotated[
    str | dict[str, Any] | None,
    Field(
        title="Image size",
        description="A preset (square_hd, square, portrait_4_3, portrait_16_9, "
        "landscape_4_3, landscape_16_9), WIDTHxHEIGHT such as 1024x768, or {width, height}.",
    ),
]
Steps = Annotated[
    int | None,
    Field(
        title="Inference steps",
        description="Denoising steps (short name: steps): more detail, slower. "
        "Leave it out for the model's default.",
    ),
]
Guidance = Annotated[
    float | None,
    Field(
        title="Guidance scale",
        description="How literally to follow the prompt (short name: guidance); 3 to 5 is "
        "typical for Flux.",
    ),
]
Seed = Annotated[
    int | None,
    Field(
        title="Seed",
        description="Seed for a reproducible image; reuse an image's seed to vary it. "
        "Leave it out for a random one.",
    ),
]
NumImages = Annotated[
    int | None, Field(title="Number of images", description="How many images; each one costs.")
]
Loras = Annotated[
    list[Any] | str | None,
    Field(
        title="LoRAs",
        description="LoRAs to apply: names from list_loras or https URLs of .safetensors "
        "files, each as NAME_OR_URL or NAME_OR_URL:SCALE (e.g. 'mydog:0.9'), or {path, scale}. "
        "Local .safetensors paths work only under the allowed folders.",
    ),
]
OutputFormat = Annotated[
    str | None, Field(title="Output format", description="File format (short name: format).")
]
NegativePrompt = Annotated[
    str | None,
    Field(title="Negative prompt", description="What the image should not show."),
]
SafetyChecker = Annotated[
    bool | None,
    Field(
        title="Safety checker",
        description="Run Fal's safety checker (flagged images come back blacked out).",
    ),
]
SafetyTolerance = Annotated[
    str | int | None,
    Field(
        title="Safety tolerance",
        description="How strict the provider's moderation is, 1 (strictest) to 6.",
    ),
]


def image_aliases() -> dict[str, str]:
    """The CLI's short names, accepted next to Fal's (``steps`` -> ``num_inference_steps``)."""
    return dict(ALIASES)


def build_request(args: Mapping[str, Any]) -> ImageRequest:
    """The one image request from a tool's (already name-checked) arguments."""
    params = {key: value for key, value in args.items() if value is not None}
    size = params.get("image_size")
    if isinstance(size, str) and size not in IMAGE_SIZE_PRESETS:
        params["image_size"] = _size(size)
    if isinstance(params.get("safety_tolerance"), int):
        params["safety_tolerance"] = str(params["safety_tolerance"])
    return ImageRequest.build(params.pop("prompt", None), **params)


def _size(text: str) -> str | dict[str, Any]:
    """WxH as {width, height} (what Fal takes, raw endpoints included); anything else as given,
    for the catalog to refuse with the presets."""
    from falkit.types import parse_image_size

    parsed = parse_image_size(text)
    return parsed.model_dump() if isinstance(parsed, ImageSize) else parsed


def image_overlay() -> dict[str, dict[str, Any]]:
    """The schema of each image parameter as the catalog describes it (see the module doc)."""
    models = image_models()
    overlay = {name: catalog_property(name, models) for name in CATALOG_PARAMS}
    overlay["prompt"] = _prompt_bounds(models)
    overlay["model"] = _model_schema(models)
    overlay["image_size"] = _size_schema(models)
    overlay["loras"] = _loras_schema(models)
    return overlay


def catalog_property(name: str, models: list[ModelSpec]) -> dict[str, Any]:
    """Type, enum, widest bounds and shared default of one parameter, and which models take it."""
    takers = [(spec, spec.input_model.model_fields[name]) for spec in models if _takes(spec, name)]
    if not takers:
        return {}
    first = takers[0][1]
    out = _json_type(first)
    for attr, key in _BOUNDS.items():
        values = [v for _, info in takers if (v := _bound(info, attr)) is not None]
        if values:
            out[key] = min(values) if attr in ("ge", "min_length") else max(values)
    defaults = {repr(_default(info)) for _, info in takers}
    if len(defaults) == 1 and _default(first) is not None:
        out["default"] = _default(first)
    facts = [_who_takes(name, models, [spec for spec, _ in takers]), _per_model(takers)]
    text = " ".join(f for f in facts if f)
    return {**out, "description": text} if text else out


def _takes(spec: ModelSpec, name: str) -> bool:
    return name in spec.input_model.model_fields


def _json_type(info: FieldInfo) -> dict[str, Any]:
    schema = TypeAdapter(info.annotation or Any).json_schema()
    wrapped = publish_schema({"properties": {"x": schema}})["properties"]["x"]
    return {k: v for k, v in wrapped.items() if k in ("type", "enum", "anyOf", "items")}


def _bound(info: FieldInfo, attr: str) -> Any:
    return next((getattr(m, attr) for m in info.metadata if hasattr(m, attr)), None)


def _default(info: FieldInfo) -> Any:
    value = info.default
    return None if value is PydanticUndefined else value


def _who_takes(name: str, models: list[ModelSpec], takers: list[ModelSpec]) -> str:
    if len(takers) == len(models):
        return ""
    names = ", ".join(spec.name for spec in takers)
    refused = ", ".join(spec.name for spec in models if spec not in takers)
    if len(takers) * 2 <= len(models):
        return f"Only {names} take{'s' if len(takers) == 1 else ''} it (other models refuse it)."
    return f"Not taken by {refused} (refused there)."


def _per_model(takers: list[tuple[ModelSpec, FieldInfo]]) -> str:
    """'flux-schnell: 1 to 12, default 4; flux-dev, sdxl: 1 to 50, default 28' where they differ."""
    groups: dict[str, list[str]] = {}
    for spec, info in takers:
        low, high, default = _bound(info, "ge"), _bound(info, "le"), _default(info)
        parts = [f"{low} to {high}" if low is not None and high is not None else ""]
        parts.append(f"default {default}" if default not in (None, "") else "")
        groups.setdefault(", ".join(p for p in parts if p), []).append(spec.name)
    if len(groups) <= 1:
        return ""
    return "Per model: " + "; ".join(f"{', '.join(n)}: {t}" for t, n in groups.items() if t) + "."


def _prompt_bounds(models: list[ModelSpec]) -> dict[str, Any]:
    out = {k: v for k, v in catalog_property("prompt", models).items() if k != "description"}
    return {**out, "minLength": 1, "maxLength": out.get("maxLength", MAX_PROMPT_CHARS)}


def _model_schema(models: list[ModelSpec]) -> dict[str, Any]:
    catalog = {"type": "string", "enum": [spec.name for spec in models]}
    raw = {
        "type": "string",
        "pattern": ENDPOINT_PATTERN,
        "description": "a Fal endpoint id (owner/app[/path], e.g. fal-ai/flux/dev)",
    }
    return {"anyOf": [catalog, raw]}


def _size_schema(models: list[ModelSpec]) -> dict[str, Any]:
    side = {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}
    arms = [
        {"type": "string", "enum": list(IMAGE_SIZE_PRESETS)},
        {"type": "string", "pattern": SIZE_PATTERN, "description": "WIDTHxHEIGHT"},
        {
            "type": "object",
            "properties": {"width": side, "height": side},
            "required": ["width", "height"],
            "additionalProperties": False,
            "description": "{width, height}",
        },
    ]
    facts = _per_model([(s, s.input_model.model_fields["image_size"]) for s in models])
    return {"anyOf": arms, "description": f"Each side 1 to {MAX_SIDE} pixels. {facts}".strip()}


def _loras_schema(models: list[ModelSpec]) -> dict[str, Any]:
    info = LoraWeight.model_fields["scale"]
    scale = {"type": "number", "default": _default(info)}
    scale.update(minimum=_bound(info, "ge"), maximum=_bound(info, "le"))
    item = {
        "anyOf": [
            {"type": "string", "minLength": 1, "description": "NAME_OR_URL[:SCALE]"},
            {
                "type": "object",
                "properties": {"path": {"type": "string", "minLength": 1}, "scale": scale},
                "required": ["path"],
                "additionalProperties": False,
                "description": "{path, scale}",
            },
        ]
    }
    takers = [spec for spec in models if spec.takes_loras]
    return {"type": "array", "items": item, "description": _who_takes("loras", models, takers)}
