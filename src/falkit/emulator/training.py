"""LoRA training, emulated: fetch and check the image archive, then write small real outputs.

The archive is read from the emulator's own store or a ``data:`` URI, and from nowhere else:
a URL a chat model passes to ``train_lora`` must not make the emulator fetch it (a loopback
service, a cloud metadata address), nor learn what such a server answered. Checks follow Fal's
422 error types ``invalid_archive`` and ``archive_file_count_below_minimum``. The weights are a
valid, tiny ``.safetensors`` file: 8-byte little-endian header length, a JSON header (dtype,
shape, data_offsets), raw tensors.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import struct
import zipfile
from collections.abc import Callable
from typing import Any

MIN_IMAGES = 4
IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".webp"]
ARCHIVE_EXTENSIONS = [".zip"]
LORA_RANK = 4
LORA_DIM = 64
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ArchiveError(Exception):
    """The archive could not be used; ``detail`` is Fal's 422 item for it."""

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__(detail["msg"])
        self.detail = detail


def _item(url: str, msg: str, kind: str, ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"loc": ["body", "images_data_url"], "msg": msg, "type": kind}
    if ctx:
        item["ctx"] = ctx
    item["input"] = url
    item["url"] = f"https://docs.fal.ai/errors/#{kind}"
    return item


def download_error(url: str, why: str, loc: list[Any] | None = None) -> dict[str, Any]:
    """Fal's ``file_download_error`` item."""
    item = _item(url, f"Failed to download the file: {why}", "file_download_error")
    if loc is not None:
        item["loc"] = loc
    return item


def fetch_archive(url: str, local: Callable[[str], bytes | None]) -> bytes:
    """The archive's bytes: a file the emulator stores (``local``) or a ``data:`` URI.

    Nothing is fetched over the network, whatever the URL: the answer for any other URL is the
    same download error, so it says nothing about what lives at that address.
    """
    if url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=False)
        except (IndexError, ValueError):
            raise ArchiveError(download_error(url, "malformed data URI")) from None
    data = local(url)
    if data is not None:
        return data
    why = (
        "not a file stored on this emulator; it reads only its own storage URLs and data: "
        "URIs (upload the archive first)"
    )
    raise ArchiveError(download_error(url, why))


def check_archive(url: str, data: bytes) -> list[str]:
    """The image names in a zip archive, or ArchiveError as Fal would report it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, ValueError):
        msg = "The archive could not be opened; upload a .zip of images"
        supported = {"supported_extensions": ARCHIVE_EXTENSIONS}
        raise ArchiveError(_item(url, msg, "invalid_archive", supported)) from None
    images = [n for n in names if _is_image(n)]
    if len(images) < MIN_IMAGES:
        msg = f"The archive must contain at least {MIN_IMAGES} images, found {len(images)}"
        ctx: dict[str, Any] = {
            "min_count": MIN_IMAGES,
            "provided_count": len(images),
            "supported_extensions": IMAGE_EXTENSIONS,
        }
        raise ArchiveError(_item(url, msg, "archive_file_count_below_minimum", ctx))
    return sorted(images)


def _is_image(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    if name.startswith("__MACOSX/") or base.startswith("."):
        return False
    return any(base.lower().endswith(ext) for ext in IMAGE_EXTENSIONS)


def make_lora(trigger_word: str | None, steps: int, archive_digest: str) -> bytes:
    """A small, valid safetensors file of LoRA A/B matrices, deterministic for its inputs."""
    rng = random.Random(f"{trigger_word}|{steps}|{archive_digest}")
    tensors: list[tuple[str, list[int]]] = []
    for block in range(2):
        prefix = f"transformer.single_transformer_blocks.{block}.attn.to_q"
        tensors.append((f"{prefix}.lora_A.weight", [LORA_RANK, LORA_DIM]))
        tensors.append((f"{prefix}.lora_B.weight", [LORA_DIM, LORA_RANK]))
    header: dict[str, Any] = {
        "__metadata__": {
            "format": "pt",
            "generator": "falkit-emulator",
            "trigger_word": trigger_word or "",
            "steps": str(steps),
        }
    }
    blobs, offset = [], 0
    for name, shape in tensors:
        count = shape[0] * shape[1]
        blob = struct.pack(f"<{count}f", *(rng.gauss(0.0, 0.01) for _ in range(count)))
        header[name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format allows padding the header to an 8-byte boundary
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def training_config(params: dict[str, Any], images: list[str], digest: str) -> bytes:
    """The config_file output: what was trained, on what."""
    config = {
        "trigger_word": params.get("trigger_word"),
        "steps": params.get("steps"),
        "is_style": params.get("is_style", False),
        "create_masks": params.get("create_masks", True),
        "images": images,
        "archive_sha256": digest,
        "lora_rank": LORA_RANK,
        "generator": "falkit-emulator",
    }
    return json.dumps(config, indent=2).encode()


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
