"""The emulator's file store: uploads, generated images and training outputs, kept in memory.

Generated images are stored as recipes and rendered on first download, so a run of hundreds of
jobs that never fetches its images renders nothing. CDN tokens (for ``/files/upload``) and
one-off upload tokens (for the ``initiate`` + PUT flow) are issued here too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from falkit.emulator.render import RenderSpec, render

TOKEN_TTL = 3600.0
_SAFE_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")


@dataclass
class StoredFile:
    """One file: its bytes, or the recipe to render them, or a reservation awaiting a PUT."""

    content_type: str
    data: bytes | None = None
    recipe: RenderSpec | None = None
    upload_token: str | None = None

    @property
    def ready(self) -> bool:
        return self.data is not None or self.recipe is not None


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
    """Files by name, plus the tokens that allow uploading them."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._tokens: dict[str, float] = {}

    def _new_name(self, ext: str) -> str:
        return f"{secrets.token_urlsafe(15)}.{ext}"

    def put(self, data: bytes, content_type: str, ext: str) -> str:
        name = self._new_name(ext)
        self._files[name] = StoredFile(content_type, data=data)
        return name

    def put_recipe(self, recipe: RenderSpec) -> str:
        name = self._new_name(recipe.ext)
        self._files[name] = StoredFile(recipe.content_type, recipe=recipe)
        return name

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
        return True

    def has(self, name: str | None) -> bool:
        entry = self._files.get(name or "")
        return entry is not None and entry.ready

    def data_of(self, name: str | None) -> bytes | None:
        """Stored bytes (uploads, training outputs); None for unknown names and recipes."""
        entry = self._files.get(name or "")
        return entry.data if entry is not None else None

    async def read(self, name: str) -> tuple[bytes, str] | None:
        """The file's bytes and type; recipes are rendered off the event loop (then cached)."""
        entry = self._files.get(name)
        if entry is None or not entry.ready:
            return None
        if entry.data is not None:
            return entry.data, entry.content_type
        assert entry.recipe is not None
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
