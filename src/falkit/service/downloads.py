"""Output files: fetched as soon as a job completes, verified, tagged and moved in atomically.

A download is streamed to a temporary file and hashed; the bytes must decode as the declared image
type; the prompt, model, seed and parameters are embedded (a PNG zTXt chunk or a JPEG comment,
and the A1111 ``parameters`` text: a PNG tEXt chunk or the JPEG's EXIF UserComment; all
inserted without re-encoding); then the file is moved into place with os.replace, so a crash
never leaves a half-written image under its final name.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.errors import DownloadError

if TYPE_CHECKING:
    import httpx

_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
EXTENSIONS = _EXT  # content type -> file extension
_PIL_FORMAT = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_DATA_URI = re.compile(r"^data:([\w/+.-]+)?(;[\w=.-]+)*?(;base64)?,(.*)$", re.DOTALL)
METADATA_KEY = "falkit"


@dataclass(frozen=True)
class SavedFile:
    """A verified image on disk."""

    path: Path
    sha256: str
    size_bytes: int
    width: int
    height: int
    content_type: str


def slug(text: str, limit: int = 40) -> str:
    """A short, readable, filesystem-safe form of a prompt."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "image"


def decode_data_uri(uri: str) -> tuple[bytes, str | None]:
    match = _DATA_URI.match(uri)
    if not match:
        raise DownloadError("malformed data URI in the output")
    content_type, _, is_b64, payload = match.groups()
    try:
        data = base64.b64decode(payload) if is_b64 else payload.encode()
    except (binascii.Error, ValueError) as exc:
        raise DownloadError(f"data URI does not decode: {exc}") from None
    return data, content_type


class _Transient(Exception):
    """A download failure worth another try."""


async def _stream_once(http: httpx.AsyncClient, url: str, target: Path) -> None:
    import httpx

    try:
        with target.open("wb") as out:
            async with http.stream("GET", url) as response:
                code = response.status_code
                if code in (408, 429) or code >= 500:
                    raise _Transient(f"HTTP {code}")
                if code >= 400:
                    raise DownloadError(f"download failed ({code}) for {url}")
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise _Transient(exc.__class__.__name__) from None


async def fetch_to_temp(http: httpx.AsyncClient, url: str, folder: Path, attempts: int = 6) -> Path:
    """Stream url into a temporary file in folder, retrying transient failures with backoff."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    os.close(fd)
    target, delay = Path(name), 0.2
    try:
        for attempt in range(1, attempts + 1):
            try:
                await _stream_once(http, url, target)
                return target
            except _Transient as exc:
                if attempt == attempts:
                    raise DownloadError(f"download failed for {url}: {exc}") from None
            await asyncio.sleep(delay)
            delay *= 2
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    raise DownloadError(f"download failed for {url}")


def inspect_image(data: bytes, declared: str | None) -> tuple[str, int, int]:
    """(content type, width, height) of bytes that must decode as the declared image type."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = img.format, img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DownloadError(f"downloaded file is not a valid image: {exc}") from None
    actual = next((ct for ct, f in _PIL_FORMAT.items() if f == fmt), None)
    if actual is None:
        raise DownloadError(f"unsupported image format {fmt}")
    if declared and declared in _PIL_FORMAT and declared != actual:
        raise DownloadError(f"image declared as {declared} but is {actual}")
    return actual, size[0], size[1]


def embed_metadata(
    data: bytes,
    content_type: str,
    metadata: dict[str, Any],
    size: tuple[int, int] | None = None,
) -> bytes:
    """The same image with provenance embedded, without re-encoding the pixels: falkit's
    record, and the A1111 ``parameters`` text other tools read (see geninfo.py)."""
    from falkit.service.geninfo import a1111_text, jpeg_with_parameters, png_with_parameters

    text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    try:
        if content_type == "image/png":
            tagged = _png_with_text(data, METADATA_KEY, text)
            return png_with_parameters(tagged, a1111_text(metadata, size))
        if content_type == "image/jpeg":
            tagged = _jpeg_with_comment(data, f"{METADATA_KEY}:{text}")
            return jpeg_with_parameters(tagged, a1111_text(metadata, size))
    except ValueError as exc:
        raise DownloadError(f"cannot tag the image: {exc}") from None
    return data


def _png_with_text(data: bytes, key: str, text: str) -> bytes:
    chunk_type = b"zTXt"
    body = key.encode("latin-1") + b"\0\0" + zlib.compress(text.encode("utf-8"))
    crc = zlib.crc32(chunk_type + body) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)
    # After IHDR (signature 8 bytes + IHDR chunk 25 bytes), so readers see it before the pixels.
    if data[12:16] != b"IHDR":
        raise DownloadError("PNG does not start with IHDR")
    return data[:33] + chunk + data[33:]


def _jpeg_with_comment(data: bytes, text: str) -> bytes:
    payload = text.encode("utf-8")[:65533]
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    if not data.startswith(b"\xff\xd8"):
        raise DownloadError("JPEG does not start with SOI")
    return data[:2] + segment + data[2:]


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The provenance falkit embedded in an image file, if any."""
    from PIL import Image

    with Image.open(path) as img:
        raw = img.info.get(METADATA_KEY) or img.info.get("comment")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not raw:
        return None
    text = raw.removeprefix(f"{METADATA_KEY}:")
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def temp_file(folder: Path, prefix: str, suffix: str = ".part") -> tuple[int, str]:
    """A new file in folder, open for writing: (descriptor, path).

    Unlike tempfile.mkstemp (mode 0600), the file gets the user's usual mode, 0666 less the
    umask, so images end up readable like the user's other files once moved into place.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(name, flags, 0o666), str(name)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write(target: Path, data: bytes) -> None:
    """Write data to target through a synced temporary file and os.replace (never half-written)."""
    fd, tmp = temp_file(target.parent, ".write-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_file(data: bytes, content_type: str, folder: Path, stem: str) -> SavedFile:
    """Write data atomically as folder/stem.<ext>; verified and hashed."""
    actual, width, height = inspect_image(data, content_type)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{stem}.{_EXT[actual]}"
    atomic_write(final, data)
    digest = hashlib.sha256(data).hexdigest()
    return SavedFile(final, digest, len(data), width, height, actual)


async def save_image(
    http: httpx.AsyncClient,
    url: str,
    *,
    declared_type: str | None,
    folder: Path,
    stem: str,
    metadata: dict[str, Any],
) -> SavedFile:
    """Download (or decode) one output image and keep it under folder with its provenance."""
    tagged, actual, _, _ = await fetch_image(
        http, url, declared_type=declared_type, folder=folder, metadata=metadata
    )
    return await asyncio.to_thread(store_file, tagged, actual, folder, stem)


async def fetch_image(
    http: httpx.AsyncClient,
    url: str,
    *,
    declared_type: str | None,
    folder: Path,
    metadata: dict[str, Any],
) -> tuple[bytes, str, int, int]:
    """One output image downloaded (or decoded), checked and tagged with its provenance:
    (bytes, content type, width, height); the download streams through ``folder``. Kept by
    the caller: a file (``save_image``) or any ImageStorage (falkit.storage)."""
    folder.mkdir(parents=True, exist_ok=True)
    if url.startswith("data:"):
        data, uri_type = decode_data_uri(url)
        declared_type = declared_type or uri_type
    else:
        tmp = await fetch_to_temp(http, url, folder)
        try:
            data = tmp.read_bytes()
        finally:
            tmp.unlink(missing_ok=True)
    actual, width, height = inspect_image(data, declared_type)
    return embed_metadata(data, actual, metadata, (width, height)), actual, width, height


def copy_out(path: Path, out_dir: Path) -> Path:
    """Also place a copy in a user's folder (atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    fd, tmp = temp_file(out_dir, ".copy-")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
