"""Helpers for LoRA tests: small real images, datasets, zips, safetensors files, a CLI runner."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image


def image_bytes(index: int, fmt: str = "JPEG", size: tuple[int, int] = (48, 40)) -> bytes:
    """A small real image, different for each index."""
    buffer = io.BytesIO()
    color = ((index * 53) % 256, (index * 97) % 256, (index * 31) % 256)
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def make_folder(root: Path, count: int, *, captions: int = 0, fmt: str = "JPEG") -> Path:
    """A folder of `count` images; the first `captions` of them get a .txt caption."""
    root.mkdir(parents=True, exist_ok=True)
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    for i in range(count):
        (root / f"img{i:02d}.{ext}").write_bytes(image_bytes(i, fmt))
        if i < captions:
            (root / f"img{i:02d}.txt").write_text(f"a photo of [trigger] number {i}\n")
    return root


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def safetensors_bytes(seed: int = 0) -> bytes:
    """A tiny valid safetensors file (one 2x2 float32 tensor)."""
    header = {
        "__metadata__": {"format": "pt"},
        "lora.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + struct.pack("<4f", seed, 1.0, 2.0, 3.0)


def total_requests(server: Any) -> int:
    return sum(server.stats.requests.values())
