"""Where images are kept: a folder (the default) or an S3-compatible object store.

``FALKIT_STORAGE_URL`` picks it: unset (or a plain path) keeps images under
``FALKIT_HOME/images`` as always; ``s3://bucket/prefix`` keeps them in a bucket, so that every
worker and replica of a cluster reads and writes the same library. Either way an image is
written **once**: ``put_new`` never replaces an object (a folder links its file into place
only if the name is free; S3 sends ``If-None-Match: *``), so a job finished twice (a paused
worker waking up after another took its job over) writes its images once.

A key is the image's path under the root (``2026-12-01/j_…_0_prompt.png``); the journal keeps
the image's *location* (``location(key)``): a file path, or ``s3://bucket/prefix/key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from falkit.config import Settings


@dataclass(frozen=True)
class Stored:
    """An object as stored: where it is, and whether this call wrote it."""

    location: str
    written: bool
    data: bytes
    """The bytes now stored (another writer's, when ``written`` is False)."""


class ImageStorage(Protocol):
    """Create-only storage of image files."""

    def location(self, key: str) -> str:
        """What the journal keeps for ``key`` (a path, or an ``s3://`` URL)."""

    def key_of(self, location: str) -> str | None:
        """The key of a location under this storage's root, else None."""

    async def put_new(self, key: str, data: bytes, content_type: str) -> Stored:
        """Store ``data`` under ``key`` unless something is there already (kept as is)."""

    async def get(self, key: str) -> bytes:
        """An object's bytes (LookupFailedError when there is none)."""

    async def presign(self, key: str, seconds: int = 3600) -> str | None:
        """A time-limited URL for a GET of the object, or None (a local folder)."""

    async def delete(self, key: str) -> bool:
        """Remove an object; False when there was none to remove (a bucket cannot tell
        without another request, so it says True)."""


def open_storage(settings: Settings) -> ImageStorage:
    """The storage named by ``settings.storage_url`` (nothing is contacted yet)."""
    url = (settings.storage_url or "").strip()
    if url.startswith(("s3://", "s3a://")):
        from falkit.storage.s3 import S3Storage

        return S3Storage(url)
    from falkit.storage.local import LocalStorage

    root = Path(url).expanduser() if url and "://" not in url else settings.home / "images"
    if "://" in url:
        from falkit.errors import ValidationError

        raise ValidationError.field(
            "FALKIT_STORAGE_URL", f"{url[:100]!r} is not a folder or an s3:// URL"
        )
    return LocalStorage(root)


__all__ = ["ImageStorage", "Stored", "open_storage"]
