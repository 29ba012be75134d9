"""The generate form, drawn from the catalog: fields, the values shown, and what a post means.

Each model's fields come from its input JSON Schema (the one ``GET /api/v1/models`` shows):
ranges become ``min``/``max``, choices a select, booleans a checkbox; the prompt comes first,
the size, count, seed and LoRAs next, the rest folded under "Advanced". A posted form becomes
the API's parameters (Fal's names; values equal to the model's default left out, so the job
and its "copy as command" stay short), and a job's arguments become the form again (remix).
Nothing here imports FastAPI.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from falkit.catalog import MODELS, ModelSpec, get_model, image_models
from falkit.types import IMAGE_SIZE_PRESETS

if TYPE_CHECKING:
    from falkit.store import LoraRecord

FORM_MARK = "_form"  # a hidden input of the page's form (see _posted)
HIDDEN = frozenset({"prompt", "loras", "sync_mode"})
BASIC = ("image_size", "num_images", "seed")
FIRST_ADVANCED = ("num_inference_steps", "guidance_scale", "negative_prompt", "output_format")
LORA_ROWS = 3
LABELS = {
    "image_size": "Size",
    "num_images": "Images",
    "seed": "Seed",
    "num_inference_steps": "Steps",
    "guidance_scale": "Guidance (CFG)",
    "output_format": "Format",
    "negative_prompt": "Negative prompt",
    "enable_safety_checker": "Safety checker",
    "safety_tolerance": "Safety tolerance",
    "enhance_prompt": "Enhance prompt",
    "expand_prompt": "Expand prompt",
    "safety_checker_version": "Safety checker version",
}
CLI_FLAGS = {
    "image_size": "--size",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "seed": "--seed",
    "num_images": "--num-images",
    "output_format": "--format",
}


@dataclass(frozen=True)
class Field:
    """One input of a model's form."""

    name: str
    label: str
    kind: str  # size, seed, select, checkbox, number, text, textarea
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def advanced(self) -> bool:
        return self.name not in BASIC

    @property
    def range_text(self) -> str:
        if self.minimum is None or self.maximum is None:
            return ""
        return f"{_plain(self.minimum)}–{_plain(self.maximum)}"


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A property with its $ref and nullable anyOf flattened (the parts a form needs)."""
    if "$ref" in prop:
        prop = {**defs.get(prop["$ref"].rsplit("/", 1)[-1], {}), **prop}
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if len(options) == 1:
        prop = {**_resolve(options[0], defs), **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


def model_fields(spec: ModelSpec) -> list[Field]:
    """The form's fields for a model, basic ones first, in the schema's order."""
    schema = spec.input_model.model_json_schema()
    defs = schema.get("$defs", {})
    fields = [
        _field(name, _resolve(prop, defs))
        for name, prop in schema.get("properties", {}).items()
        if name not in HIDDEN
    ]
    return sorted(fields, key=_order)


def _order(field: Field) -> tuple[int, int]:
    """Basic fields first, then steps, guidance and the negative prompt, then the rest."""
    if not field.advanced:
        return 0, BASIC.index(field.name)
    return 1, FIRST_ADVANCED.index(field.name) if field.name in FIRST_ADVANCED else 99


def _field(name: str, prop: dict[str, Any]) -> Field:
    label = LABELS.get(name, name.replace("_", " ").capitalize())
    common: dict[str, Any] = {"name": name, "label": label, "default": prop.get("default"),
              "help": str(prop.get("description", ""))}  # fmt: skip
    if name == "image_size":
        return Field(kind="size", choices=tuple(IMAGE_SIZE_PRESETS), **common)
    if name == "seed":
        return Field(kind="seed", minimum=0, step="1", **common)
    if "enum" in prop:
        return Field(kind="select", choices=tuple(str(c) for c in prop["enum"]), **common)
    kind = prop.get("type")
    if kind == "boolean":
        return Field(kind="checkbox", **common)
    if kind in ("integer", "number"):
        low = prop.get("minimum", prop.get("exclusiveMinimum"))
        high = prop.get("maximum", prop.get("exclusiveMaximum"))
        step = "1" if kind == "integer" else ("0.1" if high is not None and high <= 50 else "any")
        return Field(kind="number", minimum=low, maximum=high, step=step, **common)
    return Field(kind="textarea" if "prompt" in name else "text", **common)


def image_model_names() -> list[str]:
    return [spec.name for spec in image_models()]


def spec_for(name: str | None) -> ModelSpec:
    """The catalog model named (a short name or endpoint id), else flux-schnell."""
    try:
        spec = get_model(name) if name else None
    except Exception:  # an unknown name: the form falls back, the API names the problem
        spec = None
    if spec is None or spec.kind != "image":
        return MODELS["flux-schnell"]
    return spec


# ---- values: what the inputs show ----


def size_parts(value: Any) -> tuple[str, str, str]:
    """(select value, width, height) for an image size: a preset, or custom W and H."""
    if isinstance(value, str) and value in IMAGE_SIZE_PRESETS:
        width, height = IMAGE_SIZE_PRESETS[value]
        return value, str(width), str(height)
    if isinstance(value, Mapping):
        return "custom", str(value.get("width", "")), str(value.get("height", ""))
    if isinstance(value, str) and "x" in value.lower():
        first, _, second = value.lower().partition("x")
        return "custom", first.strip(), second.strip()
    return "landscape_4_3", "1024", "768"


def shown(field: Field, values: Mapping[str, Any]) -> Any:
    """The value an input shows: the one given, else the model's default."""
    value = values.get(field.name)
    if value is None or value == "":
        return field.default if field.kind != "seed" else ""
    return value


def values_from_arguments(
    model: str,
    arguments: Mapping[str, Any],
    loras: Sequence[LoraRecord] = (),
) -> dict[str, Any]:
    """A job's (wire) arguments as form values: Fal's renames undone, LoRA URLs named."""
    spec = spec_for(model)
    values = dict(arguments)
    for ours, theirs in spec.wire_renames:
        if theirs in values:
            values[ours] = values.pop(theirs)
    names = {record.url: record.name for record in loras}
    values["loras"] = [
        {"path": names.get(str(item.get("path")), item.get("path")), "scale": item.get("scale", 1)}
        for item in values.get("loras") or []
        if isinstance(item, Mapping)
    ]
    values["model"] = spec.name
    return values


def values_from_image(found: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An image's parameters (geninfo.image_parameters) as form values, and notes on what
    was left out (a model outside the catalog, A1111 keys falkit has no use for)."""
    notes = []
    model = found.get("model")
    values = {k: v for k, v in found.items() if k not in ("source", "text", "extra", "model")}
    spec = None
    if isinstance(model, str):
        spec = spec_for(model) if _known(model) else None
        if spec is None:
            notes.append(f"model {model!r} is not in the catalog: pick one")
    values["model"] = spec.name if spec else None
    extra = found.get("extra")
    if isinstance(extra, Mapping) and extra:
        notes.append("not used: " + ", ".join(f"{k}: {v}" for k, v in extra.items())[:300])
    return values, notes


def _known(model: str) -> bool:
    try:
        return get_model(model) is not None
    except Exception:
        return False


# ---- a post: the API's parameters ----


def params_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The posted form as the API's image parameters (ImageBody), defaults left out.

    Numbers stay text: the catalog's check converts them and names a field that does not.
    """
    spec = spec_for(str(form.get("model") or ""))
    params: dict[str, Any] = {"prompt": str(form.get("prompt") or ""), "model": spec.name}
    for field in model_fields(spec):
        value = _posted(field, form)
        if value is not None and not _is_default(field, value):
            params[field.name] = value
    loras = posted_loras(form)
    if loras:
        params["loras"] = loras
    return params


def _posted(field: Field, form: Mapping[str, Any]) -> Any:
    if field.kind == "checkbox":
        if FORM_MARK in form:  # the page's form: an unchecked box is not posted
            return field.name in form
        value = form.get(field.name)
        return None if value is None else value in (True, "true", "on", "1")
    raw = str(form.get(field.name) or "").strip()
    if field.kind == "size" and raw == "custom":
        width = str(form.get("image_width") or "").strip()
        height = str(form.get("image_height") or "").strip()
        return f"{width}x{height}"
    return raw or None


def _is_default(field: Field, value: Any) -> bool:
    default = field.default
    if default is None or field.kind == "seed":
        return False
    if field.kind == "number":
        try:
            return float(value) == float(default)
        except (TypeError, ValueError):
            return False
    return bool(value == default or str(value) == str(default))


def posted_loras(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for row in range(LORA_ROWS):
        path = str(form.get(f"lora_path_{row}") or "").strip()
        if path:
            scale = str(form.get(f"lora_scale_{row}") or "").strip() or "1"
            out.append({"path": path, "scale": scale})
    return out


# ---- copy as a command or Python ----


def _cli_value(name: str, value: Any) -> str:
    if name == "image_size" and isinstance(value, Mapping):
        return f"{value.get('width')}x{value.get('height')}"
    return value if isinstance(value, str) else json.dumps(value)


def cli_command(model: str, values: Mapping[str, Any]) -> str:
    """``falkit generate …`` that makes the same request."""
    parts = ["falkit", "generate", shlex.quote(str(values.get("prompt") or "")), "--model", model]
    for name, value in values.items():
        if name in ("prompt", "model", "loras") or value is None:
            continue
        flag = CLI_FLAGS.get(name)
        text = _cli_value(name, value)
        parts += [flag, shlex.quote(text)] if flag else ["-p", shlex.quote(f"{name}={text}")]
    for item in values.get("loras") or []:
        parts += ["--lora", shlex.quote(f"{item['path']}:{_plain(item.get('scale', 1))}")]
    return " ".join(parts)


def python_code(model: str, values: Mapping[str, Any]) -> str:
    """The same request through the Python API (SyncFalService.generate_image)."""
    lines = [
        "from falkit import SyncFalService",
        "",
        "with SyncFalService() as fal:",
        "    result = fal.generate_image(",
        f"        {json.dumps(str(values.get('prompt') or ''), ensure_ascii=False)},",
        f"        model={json.dumps(model)},",
    ]
    for name, value in values.items():
        if name in ("prompt", "model") or value in (None, []):
            continue
        lines.append(f"        {name}={_py(value)},")
    lines += ["    )", "    print(result.paths)"]
    return "\n".join(lines)


def _py(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    return repr(value)
