"""A catalog model's parameters as `falkit models show` lists them: type, range, default, flag.

Read from the JSON schema of the model's pydantic input model, so what is shown is what the
catalog checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falkit.catalog import ModelSpec

#: Parameters `falkit generate` has a flag for; every other one is `-p NAME=VALUE`.
FLAGS = {
    "prompt": "PROMPT (argument)",
    "model": "--model",
    "image_size": "--size",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "seed": "--seed",
    "num_images": "--num-images",
    "output_format": "--format",
    "loras": "--lora",
}
_TYPES = {
    "integer": "integer",
    "number": "number",
    "string": "text",
    "boolean": "true/false",
    "array": "list",
    "object": "object",
}


def parameter_rows(spec: ModelSpec) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, allowed, default, required, flag, description."""
    schema = spec.input_model.model_json_schema()
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "name": name,
                "type": type_text(prop),
                "allowed": allowed_text(prop),
                "default": prop.get("default"),
                "has_default": "default" in prop,
                "required": name in required,
                "flag": FLAGS.get(name, "-p"),
                "description": prop.get("description", ""),
            }
        )
    return rows


def type_text(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return _ref_name(prop["$ref"])
    options = [p for p in prop.get("anyOf", ()) if p.get("type") != "null"]
    if options:
        return " or ".join(dict.fromkeys(type_text(p) for p in options))
    if "enum" in prop:
        return "choice"
    if prop.get("type") == "array" and "items" in prop:
        return f"list of {type_text(prop['items'])}"
    return _TYPES.get(str(prop.get("type")), str(prop.get("type", "any")))


def allowed_text(prop: dict[str, Any]) -> str:
    """Range, choices or length limits; the presets and WxH for an image size."""
    parts = [allowed_text(p) for p in prop.get("anyOf", ()) if p.get("type") != "null"]
    if parts:
        return " or ".join(p for p in parts if p)
    if "enum" in prop:
        return ", ".join(str(v) for v in prop["enum"])
    if prop.get("$ref", "").endswith("/ImageSize"):
        return "WxH, e.g. 1024x768"
    if prop.get("$ref", "").endswith("/LoraWeight"):
        return "NAME|URL|FILE[:SCALE]"
    if prop.get("type") == "array" and "items" in prop:
        return allowed_text(prop["items"])
    return _bounds(prop)


def _bounds(prop: dict[str, Any]) -> str:
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum")
    if low is not None and high is not None:
        return f"{_number(low)} to {_number(high)}"
    if low is not None:
        return f"{_number(low)} or more"
    if high is not None:
        return f"at most {_number(high)}"
    if "maxLength" in prop:
        return f"up to {prop['maxLength']} characters"
    return ""


def _number(value: Any) -> str:
    if isinstance(value, int) and value == 2**64 - 1:
        return "2^64-1"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ref_name(ref: str) -> str:
    return {"ImageSize": "size", "LoraWeight": "LoRA"}.get(ref.rsplit("/", 1)[-1], "object")


def default_text(row: dict[str, Any]) -> str:
    if row["required"]:
        return "required"
    if not row["has_default"]:
        return ""
    value = row["default"]
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return _number(value)


def details(row: dict[str, Any]) -> str:
    """`integer, 1 to 12, default 4, set with --steps` and the description below."""
    if row["type"].startswith("choice") and row["allowed"]:
        parts = [f"one of: {row['allowed']}"]
    else:
        parts = [row["type"], row["allowed"]]
    default = default_text(row)
    parts.append(default if default in ("required", "") else f"default {default}")
    parts.append(f"set with {row['flag']}" if row["flag"] != "-p" else "set with -p")
    text = ", ".join(p for p in parts if p)
    return f"{text}\n{row['description']}" if row["description"] else text
