"""The emulator's file store: uploads, generated images and training outputs, kept in memory.

Generated images are stored as recipes and rendered on first download, so a run of hundreds of
jobs that never fetches its images renders nothing. CDN tokens (for ``/files/upload``) and
one-off upload tokens (for the ``initiate`` + PUT flow) are issued here too.

With a folder (``falkit emulator --data DIR``) files outlive the process: each file's bytes are
written to ``DIR/files/<name>`` and every ready file gets one line in ``DIR/files/index.jsonl``
(its name, type, and for images the recipe, re-rendered identically after a restart). Bytes
are then read from disk on demand instead of kept in memory. Pending PUT reservations and
tokens are not kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from falkit.emulator.render import RenderSpec, render

TOKEN_TTL = 3600.0
_SAFE_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9]{1,10}$")
INDEX = "index.jsonl"
log = logging.getLogger("falkit.emulator")


@dataclass
class StoredFile:
    """One file: its bytes (in memory or on disk), or the recipe to render them, or a
    reservation awaiting a PUT."""

    content_type: str
    data: bytes | None = None
    recipe: RenderSpec | None = None
    upload_token: str | None = None
    path: Path | None = None

    @property
    def ready(self) -> bool:
        return self.data is not None or self.recipe is not None or self.path is not None

    def load(self) -> bytes | None:
        """The stored bytes (read from disk for kept files); None for recipes."""
        if self.data is not None or self.path is None:
            return self.data
        try:
            return self.path.read_bytes()
        except OSError:
            return None


def extension_for(file_name: str | None, content_type: str | None) -> str:
    """A file extension (without dot) from a name or, failing that, a MIME type."""
    if file_name and "." in file_name:
        ext = file_name.rsplit(".", 1)[1]
        if _SAFE_EXT.match(ext):
            return ext.lower()
    guessed = mimetypes.guess_extension((content_type or "").split(";")[0].strip())
    return guessed.lstrip(".") if guessed else "bin"


def content_type_for(file_name: str, given: str | None) -> str:
    if given and given.split(";")[0].strip() not in ("", "application/octet-stream"):
        return given
    return mimetypes.guess_type(file_name)[0] or given or "application/octet-stream"


def name_from_url(url: str) -> str | None:
    """The stored name a ``…/files/<name>`` URL refers to, if it has that shape."""
    path = urlsplit(url).path
    if "/files/" not in path:
        return None
    name = path.rsplit("/", 1)[-1]
    return name or None


class FileStore:
    """Files by name, plus the tokens that allow uploading them; kept in ``root`` if given."""

    def __init__(self, root: Path | None = None) -> None:
        self._files: dict[str, StoredFile] = {}
        self._tokens: dict[str, float] = {}
        self.root = root
        self._index: TextIO | None = None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            self._files.update(load_index(root))

    def _new_name(self, ext: str) -> str:
        return f"{secrets.token_urlsafe(15)}.{ext}"

    def put(self, data: bytes, content_type: str, ext: str) -> str:
        name = self._new_name(ext)
        self._files[name] = self._keep(name, StoredFile(content_type, data=data))
        return name

    def put_recipe(self, recipe: RenderSpec) -> str:
        name = self._new_name(recipe.ext)
        self._files[name] = self._keep(name, StoredFile(recipe.content_type, recipe=recipe))
        return name

    def _keep(self, name: str, entry: StoredFile) -> StoredFile:
        """With a root: bytes to disk (and out of memory), one index line; the entry."""
        if self.root is None:
            return entry
        record: dict[str, Any] = {"name": name, "content_type": entry.content_type}
        if entry.recipe is not None:
            record["recipe"] = dataclasses.asdict(entry.recipe)
        elif entry.data is not None:
            path = self.root / name
            path.write_bytes(entry.data)
            entry.data, entry.path = None, path
        if self._index is None:
            self._index = (self.root / INDEX).open("a", encoding="utf-8")
        self._index.write(json.dumps(record) + "\n")
        self._index.flush()
        return entry

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def reserve(self, content_type: str, ext: str) -> tuple[str, str]:
        """A name whose bytes arrive later by PUT with the returned one-off token."""
        name, token = self._new_name(ext), secrets.token_urlsafe(24)
        self._files[name] = StoredFile(content_type, upload_token=token)
        return name, token

    def fill(self, name: str, token: str, data: bytes, content_type: str | None) -> bool:
        entry = self._files.get(name)
        if entry is None or entry.upload_token is None or entry.upload_token != token:
            return False
        entry.data, entry.upload_token = data, None
        if content_type:
            entry.content_type = content_type
        self._keep(name, entry)
        return True

    def has(self, name: str | None) -> bool:
        entry = self._files.get(name or "")
        return entry is not None and entry.ready

    def data_of(self, name: str | None) -> bytes | None:
        """Stored bytes (uploads, training outputs); None for unknown names and recipes."""
        entry = self._files.get(name or "")
        return entry.load() if entry is not None else None

    async def read(self, name: str) -> tuple[bytes, str] | None:
        """The file's bytes and type; recipes are rendered off the event loop (then cached)."""
        entry = self._files.get(name)
        if entry is None or not entry.ready:
            return None
        if entry.data is not None:
            return entry.data, entry.content_type
        if entry.recipe is None:
            data = await asyncio.to_thread(entry.load)
            return None if data is None else (data, entry.content_type)
        if entry.recipe.plain:  # a cached picture plus a splice: cheaper than a thread hop
            return render(entry.recipe), entry.content_type
        return await asyncio.to_thread(render, entry.recipe), entry.content_type

    def issue_token(self) -> tuple[str, dt.datetime]:
        """A CDN bearer token and its (timezone-aware) expiry."""
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.time() + TOKEN_TTL
        return token, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=TOKEN_TTL)

    def token_valid(self, token: str) -> bool:
        return self._tokens.get(token, 0.0) > time.time()


def load_index(root: Path) -> dict[str, StoredFile]:
    """The files a previous run kept in ``root`` (unreadable lines and missing bytes skipped)."""
    files: dict[str, StoredFile] = {}
    try:
        lines = (root / INDEX).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return files
    for line in lines:
        try:
            name, entry = _entry(root, json.loads(line))
        except (ValueError, TypeError, KeyError):
            log.warning("skipping an unreadable line of %s", root / INDEX)
            continue
        if entry.ready:
            files[name] = entry
    return files


def _entry(root: Path, record: dict[str, Any]) -> tuple[str, StoredFile]:
    name = str(record["name"])
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe file name {name!r}")
    entry = StoredFile(str(record["content_type"]))
    recipe = record.get("recipe")
    if recipe is not None:
        entry.recipe = RenderSpec(**{**recipe, "loras": tuple(recipe.get("loras") or ())})
    elif (root / name).is_file():
        entry.path = root / name
    return name, entry
