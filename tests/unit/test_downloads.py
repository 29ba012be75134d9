"""Downloads are verified, tagged with provenance and written atomically."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from falkit.errors import DownloadError
from falkit.service.downloads import read_metadata, save_image


def _image_bytes(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def _server(files: dict[str, tuple[int, bytes]]) -> httpx.AsyncClient:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls[path] = calls.get(path, 0) + 1
        code, body = files[path]
        if code == 503 and calls[path] > 1:
            code, body = 200, files[path + "#then"][1]
        return httpx.Response(code, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://cdn")


@pytest.mark.parametrize(
    ("fmt", "ctype", "ext"), [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg")]
)
async def test_saved_image_carries_metadata_and_matches_hash(
    tmp_path: Path, fmt: str, ctype: str, ext: str
) -> None:
    http = _server({"/a": (200, _image_bytes(fmt))})
    meta = {"prompt": "a red square", "seed": 42, "model": "flux-dev"}
    saved = await save_image(
        http, "http://cdn/a", declared_type=ctype, folder=tmp_path, stem="j1_0_red", metadata=meta
    )
    assert saved.path == tmp_path / f"j1_0_red.{ext}"
    data = saved.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == saved.sha256
    assert (saved.width, saved.height) == (64, 48)
    assert read_metadata(saved.path) == meta
    with Image.open(saved.path) as img:
        img.load()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


async def test_data_uri(tmp_path: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(_image_bytes("PNG")).decode()
    saved = await save_image(
        _server({}), uri, declared_type=None, folder=tmp_path, stem="d", metadata={}
    )
    assert saved.content_type == "image/png"


async def test_transient_error_is_retried(tmp_path: Path) -> None:
    http = _server({"/b": (503, b"busy"), "/b#then": (200, _image_bytes("PNG"))})
    saved = await save_image(
        http, "http://cdn/b", declared_type="image/png", folder=tmp_path, stem="b", metadata={}
    )
    assert saved.path.exists()


async def test_not_an_image_leaves_nothing(tmp_path: Path) -> None:
    http = _server({"/c": (200, b"<html>not an image</html>")})
    with pytest.raises(DownloadError, match="not a valid image"):
        await save_image(
            http, "http://cdn/c", declared_type="image/png", folder=tmp_path, stem="c", metadata={}
        )
    assert list(tmp_path.iterdir()) == []


async def test_declared_type_mismatch(tmp_path: Path) -> None:
    http = _server({"/d": (200, _image_bytes("JPEG"))})
    with pytest.raises(DownloadError, match="declared as image/png"):
        await save_image(
            http, "http://cdn/d", declared_type="image/png", folder=tmp_path, stem="d", metadata={}
        )
