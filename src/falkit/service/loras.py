"""LoRA references as Fal takes them: URLs, names from the library, local .safetensors files.

A reference is resolved in this order: an http(s) or data URL passes through; a name registered in
the library becomes its weights URL (re-uploaded from the kept local copy if that URL no longer
answers; its trigger word is added to the prompt if missing); an existing local file is checked to
be a safetensors file and uploaded to Fal storage once (remembered by content hash, so the same
file is not sent again while its URL answers). Every reference is checked before the first
network call; an unknown one is an error listing the registered names.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from falkit.errors import FieldError, ValidationError
from falkit.service.progress import emit
from falkit.types import LogEvent, LoraWeight

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.service.progress import ProgressCallback
    from falkit.store import JobStore, LoraRecord

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_HEADER_BYTES = 100 * 1024 * 1024
URL_PREFIXES = ("https://", "http://", "data:")
_CHECKED: weakref.WeakKeyDictionary[FalService, set[str]] = weakref.WeakKeyDictionary()


def check_name(name: str) -> str:
    """A LoRA name usable in the library and as a file name, or ValidationError on "name"."""
    if not NAME_PATTERN.match(name) or name.lower().endswith(".safetensors"):
        raise ValidationError.field("name", f"{name!r} is not a valid LoRA name", NAME_RULE)
    return name


def name_from(text: str) -> str:
    """A valid LoRA name derived from free text (a trigger word, a folder name)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:64]
    return slug.removesuffix(".safetensors") or "lora"


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, or ValueError saying why the file is not one.

    Layout: an 8-byte little-endian header length N, N bytes of JSON (tensor name -> dtype,
    shape, data_offsets; optional __metadata__), then the raw tensor bytes the offsets point into.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ValueError("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length < 2 or length > min(size - 8, MAX_HEADER_BYTES):
            raise ValueError(f"header length {length} does not fit a {size}-byte file")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    _check_tensors(header, size - 8 - length)
    return header


def _check_tensors(header: dict[str, Any], data_size: int) -> None:
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if not tensors:
        raise ValueError("the header lists no tensors")
    for name, entry in tensors.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        valid = (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
            and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
        )
        if not valid:
            raise ValueError(f"tensor {name!r} has no valid dtype, shape and data_offsets")


@dataclass(frozen=True)
class LoraRef:
    """One requested LoRA, classified: a URL, a library entry or a local file."""

    path: str
    scale: float
    record: LoraRecord | None = None
    file: Path | None = None


def lora_items(loras: Any) -> list[tuple[str, float]]:
    """(reference, scale) pairs from str, {"path", "scale"} dicts or LoraWeight; scales 0 to 2."""
    items = loras if isinstance(loras, list | tuple) else [loras]
    out: list[tuple[str, float]] = []
    for index, item in enumerate(items):
        raw = {"path": item} if isinstance(item, str) else item
        try:
            weight = raw if isinstance(raw, LoraWeight) else LoraWeight.model_validate(dict(raw))
        except (pydantic.ValidationError, TypeError, ValueError) as exc:
            raise ValidationError(_item_errors(index, exc)) from None
        out.append((weight.path.strip(), weight.scale))
    return out


def _item_errors(index: int, exc: Exception) -> list[FieldError]:
    if not isinstance(exc, pydantic.ValidationError):
        return [FieldError(f"loras.{index}", "must be a URL, a name or {path, scale}")]
    limits = {"scale": "0 to 2 (0.6 to 1.0 is the usual range)", "path": "a URL, name or file"}
    out = []
    for err in exc.errors():
        part = str(err["loc"][0]) if err["loc"] else "path"
        out.append(FieldError(f"loras.{index}.{part}", err["msg"], limits.get(part)))
    return out


async def classify(store: JobStore, path: str, scale: float) -> LoraRef:
    """What a reference is; unknown references raise ValidationError listing the library."""
    if path.startswith(URL_PREFIXES):
        return LoraRef(path, scale)
    if NAME_PATTERN.match(path):
        record = await store.get_lora(path)
        if record is not None:
            return LoraRef(path, scale, record=record)
    file = Path(path).expanduser()
    if file.is_file():
        try:
            safetensors_header(file)
        except (ValueError, OSError) as exc:
            message = f"{path} is not a safetensors LoRA file: {exc}"
            raise ValidationError.field("loras", message) from None
        return LoraRef(path, scale, file=file)
    names = [r.name for r in await store.list_loras()]
    library = ", ".join(names) if names else "none yet (`falkit lora train` adds one)"
    raise ValidationError.field(
        "loras",
        f"{path!r} is not an http(s) URL, a registered LoRA name or an existing file",
        f"registered LoRAs: {library}",
    )


async def upload_once(
    service: FalService, store: JobStore, file: Path, *, fresh: bool = False
) -> str:
    """A local LoRA file's URL in Fal storage, uploading it only if this content never was
    (or, with ``fresh``, again because the remembered URL stopped answering)."""
    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    cached = None if fresh else await store.find_upload(digest)
    if cached is not None and await answers_once(service, cached):
        return cached
    url = await service.client().upload(data, "application/octet-stream", file.name)
    await store.remember_upload(digest, url, len(data))
    _CHECKED.setdefault(service, set()).add(url)
    return url


def missing_trigger_words(prompt: str, refs: list[LoraRef]) -> list[tuple[str, str]]:
    """(trigger word, LoRA name) for each library LoRA whose word the prompt does not contain."""
    out: list[tuple[str, str]] = []
    for ref in refs:
        word = (ref.record.trigger_word or "").strip() if ref.record else ""
        if not word or any(word == w for w, _ in out):
            continue
        if not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", prompt):
            out.append((word, ref.path))
    return out


async def library_url(
    service: FalService, store: JobStore, record: LoraRecord, on_progress: ProgressCallback | None
) -> str:
    """A library LoRA's URL; if it no longer answers (Fal's files expire, an emulator's die
    with it) and the weights are kept locally, the kept copy is uploaded and the entry updated.

    Each URL is checked once per service, so a batch pays for one check, not one per image.
    """
    local = Path(record.local_path) if record.local_path else None
    if local is None or not local.is_file() or await answers_once(service, record.url):
        return record.url
    url = await upload_once(service, store, local, fresh=True)
    await store.add_lora(
        name=record.name,
        url=url,
        trigger_word=record.trigger_word,
        config_url=record.config_url,
        local_path=record.local_path,
        job_id=record.job_id,
        params=dict(record.params or {}),
        replace=True,
    )
    message = f"the URL of LoRA {record.name!r} no longer answers; uploaded its kept copy"
    await emit(on_progress, LogEvent("", message, "WARNING"))
    return url


async def answers_once(service: FalService, url: str) -> bool:
    """url_answers, remembered per service for URLs that answered."""
    checked = _CHECKED.setdefault(service, set())
    if url in checked:
        return True
    alive = await url_answers(service, url)
    if alive:
        checked.add(url)
    return alive


async def url_answers(service: FalService, url: str) -> bool:
    """False when a URL is gone (refused, 401/403/404/410); transient trouble counts as alive."""
    import httpx

    if url.startswith("data:"):
        return True
    http = await service.http()
    try:
        async with http.stream("GET", url, timeout=10.0) as response:
            return response.status_code not in (401, 403, 404, 410)
    except httpx.ConnectError:
        return False
    except httpx.HTTPError:
        return True


async def resolve_loras(
    service: FalService, prompt: str, loras: Any, on_progress: ProgressCallback | None
) -> tuple[str, Any]:
    """The prompt (with missing trigger words prepended) and the LoRAs as Fal takes them."""
    if not loras:
        return prompt, loras
    items = lora_items(loras)
    if all(path.startswith(URL_PREFIXES) for path, _ in items):
        return prompt, [{"path": path, "scale": scale} for path, scale in items]
    store = await service.store()
    refs = [await classify(store, path, scale) for path, scale in items]
    resolved: list[dict[str, Any]] = []
    for ref in refs:
        if ref.record is not None:
            url = await library_url(service, store, ref.record, on_progress)
        elif ref.file is not None:
            url = await upload_once(service, store, ref.file)
        else:
            url = ref.path
        resolved.append({"path": url, "scale": ref.scale})
    missing = missing_trigger_words(prompt, refs)
    for word, name in missing:
        message = f"added trigger word {word!r} of LoRA {name!r} to the prompt"
        await emit(on_progress, LogEvent("", message, "WARNING"))
    if missing:
        prompt = " ".join([*(w for w, _ in missing), prompt])
    return prompt, resolved
