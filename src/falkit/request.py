"""One image request, built the same way by every front end and checked once by the catalog.

The CLI, the MCP tools, batch files and the Python API all describe a generation with the same
names. Fal's own parameter names (``image_size``, ``num_inference_steps``, ``guidance_scale``,
``output_format``, ``loras``) are accepted everywhere, next to the short names the CLI uses
(``size``, ``steps``, ``guidance``, ``format``, ``lora``); any other parameter a model takes
(``negative_prompt``, ``enable_safety_checker`` …) passes through to the catalog, which refuses
what the model does not know. A LoRA reference is ``NAME|URL|FILE[:SCALE]`` or
``{"path": …, "scale": …}``. Without a model, a request with LoRAs uses flux-lora, any other
flux-schnell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from falkit.catalog import DEFAULT_MODEL, get_model, image_models
from falkit.errors import FieldError, ValidationError
from falkit.limits import MAX_PROMPT_CHARS as MAX_PROMPT_CHARS  # documented here too
from falkit.limits import MAX_SEED as MAX_SEED
from falkit.limits import has_surrogate, non_finite_field

LORA_MODEL = "flux-lora"

#: Short names (CLI flags, batch columns) -> Fal's names. Fal's names are always accepted too.
ALIASES: dict[str, str] = {
    "size": "image_size",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "format": "output_format",
    "lora": "loras",
}
#: Fal's name -> the short name, for labels and CLI flags.
SHORT_NAMES: dict[str, str] = {v: k for k, v in ALIASES.items() if k != "lora"}
_NUMBER = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_LORA_RANGE = "0 to 2 (0.6 to 1.0 is the usual range)"


def default_model(has_loras: bool) -> str:
    """The one default-model rule: flux-lora for requests with LoRAs, else flux-schnell."""
    return LORA_MODEL if has_loras else DEFAULT_MODEL


class LoraRef(BaseModel):
    """A LoRA as the user named it: a library name, an https URL or a local .safetensors file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(min_length=1, description="A library name, a URL or a .safetensors file")
    scale: float = Field(1.0, ge=0.0, le=2.0, description="Strength, " + _LORA_RANGE)

    @field_validator("path")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    def wire(self) -> dict[str, Any]:
        return {"path": self.path, "scale": self.scale}


def split_lora_spec(text: str) -> tuple[str, float | None]:
    """``NAME_OR_URL[:SCALE]`` -> (reference, scale or None); a URL's own colons are kept."""
    head, sep, tail = text.strip().rpartition(":")
    if sep and head and _NUMBER.match(tail.strip()):
        return head.strip(), float(tail)
    return text.strip(), None


def parse_lora(value: Any, *, where: str = "loras.0") -> LoraRef:
    """One LoRA reference in any accepted form, or ValidationError naming ``where``."""
    if isinstance(value, LoraRef):
        return value
    if isinstance(value, str):
        path, scale = split_lora_spec(value)
        raw: dict[str, Any] = {"path": path} if scale is None else {"path": path, "scale": scale}
    elif isinstance(value, BaseModel):
        raw = value.model_dump()
    elif isinstance(value, Mapping):
        raw = dict(value)
    else:
        raise ValidationError.field(where, "must be NAME|URL|FILE[:SCALE] or {path, scale}")
    try:
        return LoraRef.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ValidationError(_lora_errors(where, exc)) from None


def _lora_errors(where: str, exc: pydantic.ValidationError) -> list[FieldError]:
    limits = {"scale": _LORA_RANGE, "path": "a library name, a URL or a .safetensors file"}
    out = []
    for err in exc.errors():
        part = str(err["loc"][0]) if err["loc"] else "path"
        out.append(FieldError(f"{where}.{part}", err["msg"].lower(), limits.get(part)))
    return out


def parse_loras(value: Any) -> tuple[LoraRef, ...]:
    """Every LoRA of a request: None, one reference, a list of them, or a ``;``-separated text."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        items: Sequence[Any] = [part for part in re.split(r"[;\s]+", value.strip()) if part]
    elif isinstance(value, Mapping | BaseModel):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ValidationError.field("loras", "must be a list of LoRA references")
    return tuple(parse_lora(item, where=f"loras.{i}") for i, item in enumerate(items))


@dataclass(frozen=True)
class PreparedJob:
    """A checked request, ready to submit: what will be sent and what it should cost."""

    model: str
    endpoint_id: str
    arguments: dict[str, Any]
    estimated_cost: float | None
    kind: str = "image"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def normalise(params: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """Parameters under Fal's names; a value given under two names is an error naming both."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in params.items():
        name = ALIASES.get(str(key), str(key))
        if name in out:
            field = f"{where}{name}"
            raise ValidationError.field(field, f"given twice (as {given[name]!r} and {key!r})")
        out[name], given[name] = value, str(key)
    return out


class ImageRequest(BaseModel):
    """One generation as the user asked for it (Fal's names), before the catalog checks it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str = Field(description="What to draw")
    model: str | None = Field(None, description="Catalog name or a fal-ai/... endpoint id")
    loras: tuple[LoraRef, ...] = Field((), description="LoRAs to apply")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Every other model parameter, under Fal's names"
    )

    @classmethod
    def build(cls, prompt: Any = None, /, **fields: Any) -> ImageRequest:
        """From any mix of Fal's names and short names; None values count as not given."""
        given = normalise({k: v for k, v in fields.items() if v is not None})
        if prompt is not None:
            if "prompt" in given:
                raise ValidationError.field("prompt", "given twice")
            given["prompt"] = prompt
        text = given.pop("prompt", None)
        model = given.pop("model", None)
        loras = parse_loras(given.pop("loras", None))
        check_prompt(text)
        if model is not None and not isinstance(model, str):
            raise ValidationError.field("model", "must be a model name or an endpoint id")
        return cls(prompt=str(text), model=model, loras=loras, params=given)

    @property
    def model_name(self) -> str:
        """The model this request runs on (the default-model rule applied)."""
        return self.model or default_model(bool(self.loras))

    def arguments(self, loras: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Everything for the catalog to check: prompt, LoRAs (resolved, if given) and params."""
        wire = [dict(item) for item in loras] if loras is not None else None
        if wire is None and self.loras:
            wire = [ref.wire() for ref in self.loras]
        args: dict[str, Any] = {"prompt": self.prompt, **self.params}
        if wire:
            args["loras"] = wire
        return args

    def prepare(self, loras: Sequence[Mapping[str, Any]] | None = None) -> PreparedJob:
        """Check against the catalog: Fal's wire arguments and the estimated cost.

        ``loras`` are the resolved references (URLs) when the caller has resolved them; the
        check is the same either way, so it runs once, before anything is uploaded or sent.
        """
        args = self.arguments(loras)
        spec = get_model(self.model_name)
        if spec is None:  # a raw endpoint id: passed through, price unknown
            check_raw_arguments(args)
            return PreparedJob(self.model_name, self.model_name, args, None)
        if spec.kind != "image":
            names = ", ".join(m.name for m in image_models())
            raise ValidationError.field("model", f"{spec.name} is not an image model", names)
        if args.get("loras") and not spec.takes_loras:
            raise ValidationError.field(
                "loras", f"{spec.name} does not take LoRAs", "use flux-lora or sdxl"
            )
        arguments = spec.validate(args)
        return PreparedJob(spec.name, spec.endpoint_id, arguments, spec.estimate_cost(arguments))

    def with_prompt(self, prompt: str) -> ImageRequest:
        return self.model_copy(update={"prompt": prompt})

    def to_json(self) -> dict[str, Any]:
        """The request as a plain dict under Fal's names (model included when chosen)."""
        data = self.arguments()
        if self.model:
            data["model"] = self.model
        return data


def check_raw_arguments(args: Mapping[str, Any]) -> None:
    """What can be checked without a model's schema: the seed's range, and numbers JSON has."""
    check_seed(args.get("seed"))
    field = non_finite_field(dict(args))
    if field is not None:
        raise ValidationError.field(field, "is not a finite number", "a number JSON can carry")


def check_seed(seed: Any) -> None:
    """A seed is a whole number from 0 to 2^64-1 for every model, catalogued or not."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        shown = (
            repr(seed) if not isinstance(seed, int) or seed.bit_length() < 128 else "a huge number"
        )
        raise ValidationError.field("seed", f"{shown[:40]} is not a seed", f"0 to {MAX_SEED}")


def check_prompt(text: Any) -> str:
    """A prompt is required, not blank, and at most MAX_PROMPT_CHARS characters."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError.field("prompt", "must not be empty", "a description of the image")
    if len(text) > MAX_PROMPT_CHARS:
        raise ValidationError.field(
            "prompt", f"is {len(text)} characters long", f"at most {MAX_PROMPT_CHARS} characters"
        )
    if has_surrogate(text):
        raise ValidationError.field(
            "prompt", "holds bytes that are not UTF-8 text", "text in UTF-8 (check the encoding)"
        )
    return text
