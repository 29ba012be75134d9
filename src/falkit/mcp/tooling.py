"""Tools a model cannot misuse: strict arguments, published schemas, one-line errors.

The SDK builds each tool's argument model from its signature and, left alone, ignores unknown
arguments and answers type errors with pydantic's multi-line text. A :class:`StrictTool` checks
the arguments first, the CLI's way: short names become Fal's names (``steps`` ->
``num_inference_steps``), an unknown or misspelled name is refused with the allowed ones, and a
wrong type is one line (``invalid input: field: message (allowed: ...)``). Its published schema
says the same: ``additionalProperties: false``, no ``null`` types or defaults, and the
catalog's enums and bounds laid over the signature's types (see ``publish_schema``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pydantic
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from falkit.errors import FieldError, ValidationError

if TYPE_CHECKING:
    from mcp.server.mcpserver.context import Context

_TYPE_KEYS = ("type", "anyOf", "oneOf", "enum", "items", "pattern", "properties", "$ref")
_NULL = {"type": "null"}


class StrictTool(Tool):
    """A tool whose arguments are checked, and whose errors read, as falkit's CLI does."""

    aliases: dict[str, str] = Field(default_factory=dict, exclude=True)
    """Short names accepted for this tool's parameters (short -> Fal's name)."""

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        try:
            checked = self.check(arguments)
        except ValidationError as exc:
            raise ToolError(str(exc)) from None
        try:
            return await super().run(checked, context, convert_result)
        except UnexpectedToolError:
            raise
        except ToolError as exc:  # the SDK prefixes "Error executing tool NAME: "; keep ours
            if isinstance(exc.__cause__, ToolError):
                raise ToolError(str(exc.__cause__)) from None
            raise

    def check(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments under Fal's names, checked for names and types; or ValidationError."""
        given = self._renamed(self.fn_metadata.pre_parse_json(dict(arguments)))
        allowed = list(self.fn_metadata.arg_model.model_fields)
        unknown = [name for name in given if name not in allowed]
        if unknown:
            raise ValidationError([self._unknown(name, allowed) for name in unknown])
        try:
            self.fn_metadata.arg_model.model_validate(given)
        except pydantic.ValidationError as exc:
            raise ValidationError(self._type_errors(exc)) from None
        return given

    def _renamed(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Short names as Fal's; a value given under both names is refused, naming both."""
        out: dict[str, Any] = {}
        given: dict[str, str] = {}
        for key, value in arguments.items():
            name = self.aliases.get(key, key)
            if name in out:
                message = f"given twice (as {given[name]!r} and {key!r})"
                raise ValidationError.field(name, message, "one of the two")
            out[name], given[name] = value, key
        return out

    def _unknown(self, name: str, allowed: list[str]) -> FieldError:
        """Refuse an unknown name, suggesting the closest allowed one when one is close."""
        close = difflib.get_close_matches(name, [*allowed, *self.aliases], n=1, cutoff=0.7)
        hint = f"; did you mean {self.aliases.get(close[0], close[0])}?" if close else ""
        names = ", ".join(allowed)
        if self.aliases:
            names += "; short names: " + ", ".join(sorted(self.aliases))
        shown = "".join(c if c.isprintable() else "?" for c in name[:80])  # stays one line
        return FieldError(shown, "unknown argument" + hint, names)

    def _type_errors(self, exc: pydantic.ValidationError) -> list[FieldError]:
        """One line per wrong argument; a value failing every arm of a union is one error."""
        properties = self.parameters.get("properties", {})
        out: dict[str, FieldError] = {}
        for err in exc.errors():
            loc = err["loc"] or ("input",)
            field = ".".join([str(loc[0]), *(str(p) for p in loc[1:] if isinstance(p, int))])
            allowed = allowed_text(properties.get(str(loc[0]), {}))
            if field in out:  # another arm of a union refused it too
                message = f"{_shown(err.get('input'))} is not accepted"
            else:
                message = "is required" if err["type"] == "missing" else err["msg"]
            out[field] = FieldError(field, message, allowed)
        return list(out.values())


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def allowed_text(schema: Mapping[str, Any]) -> str | None:
    """What a published property schema accepts, in a few words (for error messages)."""
    if "enum" in schema:
        return ", ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        parts = [arm.get("description") or allowed_text(arm) for arm in schema["anyOf"]]
        return " or ".join(p for p in parts if p) or None
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return _number_text(kind, schema.get("minimum"), schema.get("maximum"))
    if kind == "array":
        return "a list"
    if kind == "object":
        return "an object"
    return {"string": "a text", "boolean": "true or false"}.get(str(kind))


def _number_text(kind: str, low: Any, high: Any) -> str:
    word = "an integer" if kind == "integer" else "a number"
    if low is not None and high is not None:
        return f"{word} from {low} to {high}"
    if low is not None:
        return f"{word} of at least {low}"
    return word if high is None else f"{word} of at most {high}"


def publish_schema(
    schema: Mapping[str, Any], overlay: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The input schema a client sees: closed, without null, with ``overlay`` laid over it.

    A property's overlay replaces its type keywords when it has any (the signature's types are
    loose on purpose, so that the catalog can answer with per-model limits) and adds the rest;
    its description is appended to the signature's.
    """
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        extra = dict((overlay or {}).get(name, {}))
        base = _without_null(prop)
        if any(key in extra for key in _TYPE_KEYS):
            base = {k: v for k, v in base.items() if k not in _TYPE_KEYS}
        if "description" in base and "description" in extra:
            extra["description"] = f"{base['description']} {extra['description']}"
        properties[name] = {**base, **extra}
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        out["required"] = list(schema["required"])
    out["additionalProperties"] = False
    if "$defs" in schema:
        out["$defs"] = schema["$defs"]
    return out


def _without_null(prop: Mapping[str, Any]) -> dict[str, Any]:
    """``anyOf [T, null]`` becomes T; a ``null`` default is dropped (leaving out is the default)."""
    out = dict(prop)
    arms = [arm for arm in out.get("anyOf", []) if arm != _NULL]
    if "anyOf" in out:
        del out["anyOf"]
        if len(arms) == 1:
            out = {**arms[0], **out}
        else:
            out["anyOf"] = arms
    if "default" in out and out["default"] is None:
        del out["default"]
    return out
