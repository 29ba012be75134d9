"""Every bound falkit puts on user input, in one place, with the small checks that apply them.

Input that is not bounded ends badly in one of three ways: it is sent (a 10 MB prompt, a seed
Fal cannot hold, a model id whose ``..`` segments reach another path with the key attached), it
costs time or memory before anything is checked (a 5,000-digit number, a line of ten thousand
nested brackets), or it ends in a traceback instead of a line saying what to fix. Each bound
here is documented in README's "Limits" and checked before anything is written or sent.

This module is pure and cheap to import: no environment reads, no I/O.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_PROMPT_CHARS = 10_000
"""Characters in a prompt (the emulator's and falkit's bound; Fal documents none)."""
MAX_SEED = 2**64 - 1
"""Seeds are unsigned 64-bit integers at Fal."""
MAX_NUMBER_CHARS = 64
"""Characters in one number of a batch file or a sweep (a 20-digit seed fits with room)."""
MAX_JSON_DEPTH = 32
"""Nesting of arrays and objects in one JSONL line (a request needs 3)."""
MAX_INPUT_BYTES = 256 * 1024**2
"""Size of a batch input file (100,000 jobs of 2,500 characters each)."""
MAX_LIST_LIMIT = 10_000
"""Rows one `falkit jobs list` / `batch list` may ask for."""
MAX_ENDPOINT_ID_CHARS = 256
"""Characters in a model's endpoint id."""

# Patterns compile on first use (re caches them): importing this module stays free.
_SEGMENT = r"^[A-Za-z0-9._~-]+$"
_STRING = r'"(?:[^"\\]|\\.)*"'
_BRACKET = r"[\[\]{}]"
_SURROGATE = "[\ud800-\udfff]"


def endpoint_id_problem(text: str) -> str | None:
    """Why ``text`` is not a safe endpoint id (``owner/alias[/path…]``), or None.

    Checked segment by segment, because each segment lands in a URL path next to the key:
    no empty, ``.`` or ``..`` segments (they would climb out of the app's path), and only
    letters, digits and ``._~-`` (no ``%`` escapes, spaces, ``?``, ``#`` or backslashes).
    """
    if len(text) > MAX_ENDPOINT_ID_CHARS:
        return f"is {len(text)} characters long (at most {MAX_ENDPOINT_ID_CHARS})"
    parts = text.split("/")
    if len(parts) < 2:
        return "needs an owner and an app (owner/alias)"
    for part in parts:
        why = segment_problem(part)
        if why is not None:
            return why
    return None


def segment_problem(part: str) -> str | None:
    """Why ``part`` may not be one URL path segment built from input, or None."""
    if not part:
        return "has an empty segment"
    if part.strip(".") == "":
        return f"has a {part!r} segment (it would leave the app's path)"
    if not re.match(_SEGMENT, part):
        return f"has a segment {part[:40]!r} with characters other than letters, digits, . _ ~ -"
    return None


class InputRejected(ValueError):
    """A value passed one of the bounds above (or is not text); the message says which."""


def check_number_text(text: str) -> str:
    """``text`` unchanged if it is short enough to be a number falkit converts, else raise.

    Python refuses to convert integers past 4,300 digits (with a ValueError that reads like a
    crash) and spends quadratic time below that; no parameter needs more than a few digits.
    """
    if len(text) > MAX_NUMBER_CHARS:
        raise InputRejected(
            f"a number of {len(text)} characters is too long (at most {MAX_NUMBER_CHARS})"
        )
    return text


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays/objects deeper than ``limit`` (strings not counted).

    Cheap for ordinary lines: only a text with more brackets than the limit is scanned.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in re.findall(_BRACKET, re.sub(_STRING, '""', text, flags=re.DOTALL)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _parse_int(text: str) -> int:
    return int(check_number_text(text))


def _parse_float(text: str) -> float:
    return float(check_number_text(text))


def _parse_constant(text: str) -> float:
    raise InputRejected(f"{text} is not a JSON number")


def loads_bounded(text: str) -> Any:
    """``json.loads`` with nesting and number length bounded.

    Raises ``json.JSONDecodeError`` for malformed JSON and :class:`InputRejected` for JSON that
    passes a bound (both are ValueErrors; callers name the line).
    """
    if json_too_deep(text):
        raise InputRejected(f"nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:  # belt and braces: json_too_deep should have caught it
        raise InputRejected(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    if "\\u" in text and _holds_surrogate(value):
        raise InputRejected("a string holds a lone \\uD800-\\uDFFF escape, which is not text")
    return value


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (an undecodable byte or a half escape pair):
    such a string cannot be written as UTF-8, to the library or to Fal."""
    return re.search(_SURROGATE, text) is not None


def _holds_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return has_surrogate(value)
    if isinstance(value, dict):
        return any(_holds_surrogate(k) or _holds_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_surrogate(v) for v in value)
    return False


def non_finite_field(value: Any, where: str = "") -> str | None:
    """The dotted name of the first NaN or infinite number inside ``value``, or None.

    JSON has no such numbers: sent to an uncatalogued model (which no schema checks), one
    would fail the request encoder after the job was journaled.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return where or "input"
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    for key, item in items:
        found = non_finite_field(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def url_problem(value: str) -> str | None:
    """Why ``value`` cannot be a base URL falkit appends paths to, or None.

    An absolute http(s) URL with a host, and nothing after the path (a query or fragment would
    end up in the middle of every URL built from it).
    """
    from urllib.parse import urlsplit

    if any(ch.isspace() for ch in value) or not value:
        return "must be a URL without spaces"
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL with a host"
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return "must not have a query or fragment"
    return None
