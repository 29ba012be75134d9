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

from falkit.errors import ValidationError
from falkit.events import Event, NoteEvent
from falkit.request import LoraRef

if TYPE_CHECKING:
    from collections.abc import Callable

    from falkit.service.core import FalService
    from falkit.store import JobStore, LoraRecord

    Emit = Callable[[Event], object]

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
class LoraSource:
    """What one requested LoRA turned out to be: a URL, a library entry or a local file."""

    ref: LoraRef
    record: LoraRecord | None = None
    file: Path | None = None

    @property
    def wire_path(self) -> str:
        """The path sent to Fal as far as known offline (a local file's path until uploaded)."""
        if self.record is not None:
            return self.record.url
        return str(self.file) if self.file is not None else self.ref.path


async def classify(store: JobStore, ref: LoraRef, index: int = 0) -> LoraSource:
    """What a reference is; unknown references raise ValidationError listing the library."""
    path = ref.path
    if path.startswith(URL_PREFIXES):
        return LoraSource(ref)
    if NAME_PATTERN.match(path):
        record = await store.get_lora(path)
        if record is not None:
            return LoraSource(ref, record=record)
    file = Path(path).expanduser()
    if _is_file(file):
        try:
            safetensors_header(file)
        except (ValueError, OSError) as exc:
            message = f"{path} is not a safetensors LoRA file: {exc}"
            raise ValidationError.field(f"loras.{index}", message) from None
        return LoraSource(ref, file=file)
    names = [r.name for r in await store.list_loras()]
    library = ", ".join(names) if names else "none yet (`falkit lora train` adds one)"
    raise ValidationError.field(
        f"loras.{index}",
        f"{path[:80]!r} is not an http(s) URL, a registered LoRA name or an existing file",
        f"registered LoRAs: {library}",
    )


def _is_file(path: Path) -> bool:
    """Path.is_file, but False (not a traceback) for a name too long or otherwise unusable."""
    try:
        return path.is_file()
    except (OSError, ValueError):  # ENAMETOOLONG, EACCES above it, an embedded NUL
        return False


@dataclass(frozen=True)
class LoraPlan:
    """A request's LoRAs resolved offline: the prompt with missing trigger words, the sources,
    and the notes to tell the user. Fetching (uploads, URL checks) happens later."""

    prompt: str
    sources: tuple[LoraSource, ...] = ()
    notes: tuple[str, ...] = ()

    def wire(self) -> list[dict[str, Any]]:
        return [{"path": s.wire_path, "scale": s.ref.scale} for s in self.sources]

    @property
    def needs_network(self) -> bool:
        """Whether fetch_loras has anything to do (a file to upload, a library URL to check)."""
        return any(s.record is not None or s.file is not None for s in self.sources)


async def plan_loras(store: JobStore | None, prompt: str, refs: tuple[LoraRef, ...]) -> LoraPlan:
    """Classify every reference and add missing trigger words; no network."""
    if not refs:
        return LoraPlan(prompt)
    if store is None or all(r.path.startswith(URL_PREFIXES) for r in refs):
        return LoraPlan(prompt, tuple(LoraSource(r) for r in refs))
    sources = tuple([await classify(store, ref, i) for i, ref in enumerate(refs)])
    missing = missing_trigger_words(prompt, sources)
    notes = tuple(
        f"added trigger word {word!r} of LoRA {name!r} to the prompt" for word, name in missing
    )
    if missing:
        prompt = " ".join([*(w for w, _ in missing), prompt])
    return LoraPlan(prompt, sources, notes)


async def fetch_loras(
    service: FalService, plan: LoraPlan, emit: Emit | None
) -> list[dict[str, Any]]:
    """The LoRAs as Fal takes them: files uploaded (once), library URLs checked (re-uploaded
    from the kept copy when gone)."""
    store = await service.store() if plan.needs_network else None
    out = []
    for source in plan.sources:
        if source.record is not None and store is not None:
            url = await library_url(service, store, source.record, emit)
        elif source.file is not None and store is not None:
            url = await upload_once(service, store, source.file)
        else:
            url = source.ref.path
        out.append({"path": url, "scale": source.ref.scale})
    return out


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


def missing_trigger_words(prompt: str, sources: tuple[LoraSource, ...]) -> list[tuple[str, str]]:
    """(trigger word, LoRA name) for each library LoRA whose word the prompt does not contain."""
    out: list[tuple[str, str]] = []
    for source in sources:
        word = (source.record.trigger_word or "").strip() if source.record else ""
        if not word or any(word == w for w, _ in out):
            continue
        if not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", prompt):
            out.append((word, source.ref.path))
    return out


async def library_url(
    service: FalService, store: JobStore, record: LoraRecord, emit: Emit | None
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
    if emit is not None:
        emit(NoteEvent("", message, "WARNING"))
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
