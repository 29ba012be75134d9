"""Reading MCP tool answers in tests."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from PIL import Image


def text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def data(result: CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def ok(result: CallToolResult) -> CallToolResult:
    assert not result.is_error, text(result)
    return result


def thumbnails(result: CallToolResult) -> list[Image.Image]:
    """Every inline preview, decoded (so a broken one fails the test)."""
    out = []
    for block in result.content:
        if isinstance(block, ImageContent):
            raw = base64.b64decode(block.data)
            assert len(raw) < 1_000_000
            image = Image.open(io.BytesIO(raw))
            image.load()
            out.append(image)
    return out


def file_links(result: CallToolResult) -> list[Path]:
    return [
        Path(unquote(urlparse(str(b.uri)).path))
        for b in result.content
        if isinstance(b, ResourceLink) and str(b.uri).startswith("file://")
    ]


def assert_images(result: CallToolResult, count: int = 1) -> list[Path]:
    """A finished generation: decodable previews, files on disk named in text and links."""
    ok(result)
    previews = thumbnails(result)
    assert len(previews) == count
    assert all(max(p.size) <= 384 for p in previews)
    paths = file_links(result)
    assert len(paths) == count
    for path in paths:
        assert path.is_file()
        assert path.name in text(result)
        with Image.open(path) as full:
            assert max(full.size) > max(previews[0].size)
    return paths
