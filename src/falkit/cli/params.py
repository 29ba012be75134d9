"""`-p/--param NAME=VALUE`: any model parameter from the command line.

A value is read as JSON when it parses (`8`, `2.5`, `true`, `{"width": 512, "height": 512}`,
`"1984"` for a text that looks like a number), else kept as text (`blurry, low quality`). A
name may be Fal's or the short one (`steps`); one given twice, or also given by its flag, is
an error naming both. The catalog then checks the request (known models) or passes it
through (a raw `fal-ai/...` endpoint id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from falkit.cli.model_params import FLAGS
from falkit.errors import ValidationError

FORM = "NAME=VALUE, e.g. -p negative_prompt=blurry or -p num_inference_steps=8"


def parse_params(items: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """Each `NAME=VALUE` as {Fal's name: (NAME as typed, value)}."""
    from falkit.request import ALIASES

    out: dict[str, tuple[str, Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValidationError.field("param", f"{item!r} is not NAME=VALUE", FORM)
        key = ALIASES.get(name, name)
        if key in out:
            raise ValidationError.field(key, f"given twice: -p {out[key][0]}=… and -p {item}")
        out[key] = (name, parse_value(raw))
    return out


def parse_value(raw: str) -> Any:
    """JSON when it parses (NaN and Infinity are kept as text), else the text itself.

    Parsed within falkit.limits' bounds: a 5,000-digit number or 100,000 nested brackets stay
    text (which the catalog then refuses in one line), never a RecursionError.
    """
    from falkit.limits import loads_bounded

    try:
        return loads_bounded(raw)
    except ValueError:
        return raw


def merge(flags: Mapping[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """The flags' values (Fal's names; None: not given) and the -p ones, never both for one
    name."""
    params = {key: value for key, value in flags.items() if value is not None}
    for key, (typed, value) in parse_params(items).items():
        if key == "prompt":
            raise ValidationError.field("prompt", f"-p {typed}=… given", "the PROMPT argument")
        if key in params:
            flag = FLAGS.get(key, key)
            raise ValidationError.field(key, f"given twice: as {flag} and as -p {typed}=…")
        params[key] = value
    return params
