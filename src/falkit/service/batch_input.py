"""What a batch is made of: requests read from a file (or given in Python) times the sweeps.

An input file is one of

* text: one prompt a line (blank lines and ``#`` comments are skipped);
* JSONL (``.jsonl``/``.ndjson``): one request object a line, any generate parameter;
* CSV (``.csv``) with a header row naming the parameters (``prompt`` required).

Parameters may use the CLI's short names (``size``, ``steps``, ``guidance``, ``format``, ``lora``).
Sweeps (seeds, models, guidance scales, sizes, LoRA scales) multiply every request; a sweep value
replaces the request's own. Every request keeps the input line it came from, so an error can say
exactly where it is.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from falkit.errors import FieldError, ValidationError
from falkit.limits import (
    MAX_INPUT_BYTES,
    MAX_NUMBER_CHARS,
    MAX_SEED,
    InputRejected,
    check_number_text,
    loads_bounded,
)
from falkit.request import ALIASES, parse_lora, parse_loras

MAX_JOBS = 100_000
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch: where it came from and its parameters (prompt included)."""

    line: int
    params: dict[str, Any]
    where: str = "line"
    sweep: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``line 3`` or ``line 3 (model=flux-dev, seed=2)``: where to look for a problem."""
        text = f"{self.where} {self.line}"
        if self.sweep:
            text += " (" + ", ".join(f"{k}={v}" for k, v in self.sweep.items()) + ")"
        return text


# ---- reading ----


def read_requests(source: str | Path | Sequence[Any]) -> list[BatchRequest]:
    """Requests from a file path, or from a list of prompts / request dicts given in Python."""
    if isinstance(source, str | Path):
        path = Path(source)
        return parse_text(read_input_text(path), kind=input_kind(path))
    return [_from_item(item, number) for number, item in enumerate(source, 1)]


def read_input_text(path: Path) -> str:
    """The text of an input file: a regular file of at most MAX_INPUT_BYTES of UTF-8 text.

    Checked with stat before it is opened (a FIFO or a device would block or never end), and
    decoded strictly: a Latin-1 or binary file is an error naming the line, not a traceback.
    """
    allowed = "a UTF-8 .txt, .jsonl or .csv file"
    try:
        info = path.stat()
    except OSError as exc:
        why = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
        raise ValidationError.field("input", f"{path}: {why}", allowed) from None
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError.field("input", f"{path} is not a regular file", allowed)
    if info.st_size > MAX_INPUT_BYTES:
        size = f"{info.st_size / 1024**2:.0f} MiB"
        raise ValidationError.field("input", f"{path} is {size}", "at most 256 MiB; split it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError.field("input", f"{path}: {exc.strerror or exc}", allowed) from None
    return decode_input(data, str(path))


def decode_input(data: bytes, name: str = "input") -> str:
    """UTF-8 text (a byte-order mark is dropped) or ValidationError naming the first bad line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise ValidationError.field(
            f"line {line}",
            f"{name} is not UTF-8 text (byte 0x{byte})",
            "save the file as UTF-8",
        ) from None
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise ValidationError.field(
            f"line {line}", f"{name} holds a NUL byte: binary data, not text", "a text file"
        )
    return text


def input_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "csv" if suffix == ".csv" else "text"


def parse_text(text: str, *, kind: str) -> list[BatchRequest]:
    """Requests from the text of an input file of the given kind (text, jsonl or csv)."""
    parse = {"jsonl": _parse_jsonl, "csv": _parse_csv}.get(kind, _parse_lines)
    requests = parse(text)
    if not requests:
        raise ValidationError.field("input", "no requests in the input", "at least one prompt")
    return requests


def _parse_lines(text: str) -> list[BatchRequest]:
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(BatchRequest(number, {"prompt": line}))
    return out


def _parse_jsonl(text: str) -> list[BatchRequest]:
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            item = loads_bounded(raw)
        except json.JSONDecodeError as exc:
            raise _line_error(number, "input", f"not valid JSON ({exc.msg})") from None
        except InputRejected as exc:
            raise _line_error(number, "input", str(exc)) from None
        out.append(_from_item(item, number, where="line"))
    return out


def _parse_csv(text: str) -> list[BatchRequest]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _csv_rows(reader)
    except csv.Error as exc:  # a field past csv.field_size_limit(), a stray quote …
        raise _line_error(reader.line_num, "input", f"not valid CSV ({exc})") from None


def _csv_rows(reader: csv.DictReader[str]) -> list[BatchRequest]:
    fields = [name.strip() for name in reader.fieldnames or []]
    if "prompt" not in fields:
        shown = ", ".join(f[:40] for f in fields[:20])
        raise _line_error(1, "header", "a CSV input needs a 'prompt' column", shown)
    out = []
    for row in reader:
        number = reader.line_num  # the physical line the row ends on
        if None in row:
            raise _line_error(number, "input", "more cells than header columns")
        try:
            params = {k.strip(): _cell(k.strip(), v) for k, v in row.items() if v and v.strip()}
        except ValueError as exc:  # InputRejected, or a LoRA list that is not JSON
            raise _line_error(number, "input", str(exc)) from None
        if params:
            out.append(BatchRequest(number, _normalise(params, number, "line")))
    return out


def _cell(name: str, value: str) -> Any:
    """A CSV cell as the value it stands for (numbers and booleans typed, LoRA lists parsed)."""
    text = value.strip()
    if name == "prompt" or name == "negative_prompt":
        return text
    if ALIASES.get(name, name) == "loras":
        return _json_cell(text) if text.startswith("[") else lora_dicts(text)
    if _INT.match(text):
        return int(check_number_text(text))
    if _FLOAT.match(text):
        return float(check_number_text(text))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _json_cell(text: str) -> Any:
    try:
        return loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the LoRA list is not valid JSON ({exc.msg})") from None


def lora_dicts(value: Any) -> list[dict[str, Any]]:
    """LoRAs (a ``;``-separated text or a list) as ``{"path", "scale"}`` dicts."""
    return [ref.wire() for ref in parse_loras(value)]


def _from_item(item: Any, number: int, where: str = "item") -> BatchRequest:
    if isinstance(item, str):
        return BatchRequest(number, {"prompt": item}, where)
    if isinstance(item, BaseModel):
        item = item.model_dump(exclude_none=True)
    if not isinstance(item, dict):
        raise _line_error(number, "input", "expected a prompt or a request object", where=where)
    return BatchRequest(number, _normalise(item, number, where), where)


def _normalise(params: dict[str, Any], number: int, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = ALIASES.get(str(key), str(key))
        if name in out:
            raise _line_error(number, name, f"given twice (as {key!r} too)", where=where)
        out[name] = _plain(value)
    if not isinstance(out.get("prompt"), str) or not out["prompt"].strip():
        raise _line_error(number, "prompt", "missing or empty", where=where)
    if out.get("loras"):
        try:
            out["loras"] = lora_dicts(out["loras"])
        except ValidationError as exc:
            raise ValidationError(
                [
                    FieldError(f"{where} {number}: {e.field}", e.message, e.allowed)
                    for e in exc.errors
                ]
            ) from None
    return out


def _plain(value: Any) -> Any:
    """JSON-ready form of a parameter value (pydantic models such as ImageSize as dicts)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _line_error(
    number: int, name: str, message: str, allowed: str | None = None, *, where: str = "line"
) -> ValidationError:
    return ValidationError([FieldError(f"{where} {number}: {name}", message, allowed)])


# ---- sweeps ----


@dataclass(frozen=True)
class Sweep:
    """Values that multiply every request: each combination becomes one job."""

    models: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    guidance: tuple[float, ...] = ()
    lora_scales: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        seeds: str | Iterable[int] | None = None,
        models: str | Iterable[str] | None = None,
        guidance: str | Iterable[float] | None = None,
        sizes: str | Iterable[str] | None = None,
        lora_scales: str | Iterable[float] | None = None,
    ) -> Sweep:
        """A sweep from CLI-style text (``1-8``, ``1,5,9``, ``a,b``) or from Python lists."""
        return cls(
            models=_words("models", models),
            sizes=_words("sizes", sizes),
            guidance=_numbers("guidance", guidance),
            lora_scales=_numbers("lora_scales", lora_scales),
            seeds=parse_seeds(seeds),
        )

    def axes(self) -> list[tuple[str, tuple[Any, ...]]]:
        """(parameter, values) of every non-empty sweep, outermost first."""
        named = [
            ("model", self.models),
            ("image_size", self.sizes),
            ("guidance_scale", self.guidance),
            ("lora_scale", self.lora_scales),
            ("seed", self.seeds),
        ]
        return [(name, values) for name, values in named if values]

    @property
    def factor(self) -> int:
        """How many jobs each request becomes."""
        count = 1
        for _, values in self.axes():
            count *= len(values)
        return count

    def to_json(self) -> dict[str, list[Any]]:
        return {name: list(values) for name, values in self.axes()}


def parse_seeds(value: str | Iterable[int] | None) -> tuple[int, ...]:
    """``1-8``, ``1,5,9`` or a mix (``1-3,10``) as seeds; a list of ints passes through."""
    if value is None:
        return ()
    if not isinstance(value, str):
        return tuple(_seed_value(v) for v in value)
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        span = _RANGE.match(part)
        if span:
            low, high = _seed(span.group(1)), _seed(span.group(2))
            if high < low or high - low >= MAX_JOBS:
                raise _seeds_error(part)
            seeds.extend(range(low, high + 1))
        else:
            seeds.append(_seed(part))
    if not seeds:
        raise _seeds_error(value)
    return tuple(dict.fromkeys(seeds))


def _seed_value(value: Any) -> int:
    """A seed given in Python: an int in range (never turned into text: a huge one cannot be)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= MAX_SEED:
            return value
        raise _seeds_error("a seed outside 0 to 2**64-1")
    return _seed(str(value))


def _seed(text: str) -> int:
    """One seed: a whole number from 0 to MAX_SEED, at most MAX_NUMBER_CHARS long."""
    text = text.strip()
    if len(text) > MAX_NUMBER_CHARS or not _INT.match(text) or not 0 <= int(text) <= MAX_SEED:
        raise _seeds_error(text)
    return int(text)


def _seeds_error(text: str) -> ValidationError:
    return ValidationError.field(
        "seeds",
        f"{text[:40]!r} is not a seed list",
        f"N, N-M or a comma list such as 1,5,9; seeds from 0 to {MAX_SEED}",
    )


def _words(name: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    words = tuple(dict.fromkeys(w.strip() for w in items if w.strip()))
    if not words:
        raise ValidationError.field(name, "is empty", "a comma-separated list")
    return words


def _numbers(name: str, value: str | Iterable[float] | None) -> tuple[float, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    out = []
    for item in (i.strip() for i in items if i.strip()):
        if len(item) > MAX_NUMBER_CHARS or not _FLOAT.match(item):
            raise ValidationError.field(
                name, f"{item[:40]!r} is not a number", "numbers like 3,3.5"
            )
        out.append(float(item))
    if not out:
        raise ValidationError.field(name, "is empty", "a comma-separated list of numbers")
    return tuple(dict.fromkeys(out))


def expand(
    requests: Sequence[BatchRequest], sweep: Sweep, defaults: dict[str, Any] | None = None
) -> list[BatchRequest]:
    """Every request under every sweep combination, in input order (seeds vary fastest).

    ``defaults`` fill parameters a request leaves out; sweep values replace the request's own.
    """
    axes = sweep.axes()
    total = len(requests) * sweep.factor
    if total > MAX_JOBS:
        raise ValidationError.field("input", f"{total} jobs is too many", f"at most {MAX_JOBS}")
    out: list[BatchRequest] = []
    for request in requests:
        base = {**(defaults or {}), **request.params}
        for combo in itertools.product(*(values for _, values in axes)):
            chosen = dict(zip((name for name, _ in axes), combo, strict=True))
            params = _apply(request, dict(base), chosen)
            out.append(BatchRequest(request.line, params, request.where, chosen))
    return out


def _apply(request: BatchRequest, params: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    for name, value in chosen.items():
        if name == "lora_scale":
            loras = params.get("loras")
            if not loras:
                raise _line_error(
                    request.line,
                    "lora_scales",
                    "a LoRA scale sweep needs LoRAs",
                    "loras in the input, or --lora",
                    where=request.where,
                )
            params["loras"] = [_scaled(item, value) for item in loras]
        else:
            params[name] = value
    return params


def _scaled(item: Any, scale: float) -> dict[str, Any]:
    return parse_lora(item).model_copy(update={"scale": scale}).wire()
