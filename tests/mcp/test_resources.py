"""Full-size images as MCP resources: read back byte for byte, and only from the library."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import BlobResourceContents, CallToolResult, ResourceLink

from falkit.mcp.resources import library_file
from falkit.service import FalService
from tests.mcp.helpers import assert_images, data, ok


def resource_links(result: CallToolResult) -> list[ResourceLink]:
    return [
        block
        for block in result.content
        if isinstance(block, ResourceLink) and str(block.uri).startswith("falkit://")
    ]


async def read_blob(client: Client, uri: str) -> BlobResourceContents:
    (contents,) = (await client.read_resource(uri)).contents
    assert isinstance(contents, BlobResourceContents)
    return contents


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_full_size_images_are_read_back_as_resources(
    connect: Any, emu: Any, service: FalService
) -> None:
    async with connect() as client:
        templates = (await client.list_resource_templates()).resource_templates
        jpegs = ok(await client.call_tool("generate_image", {"prompt": "kites", "num_images": 2}))
        png = ok(
            await client.call_tool("generate_image", {"prompt": "a kite", "output_format": "png"})
        )
        later = ok(await client.call_tool("get_job", {"job_id": data(jpegs)["job_id"]}))
        listed = ok(await client.call_tool("list_jobs", {}))
        links = resource_links(jpegs) + resource_links(png)
        blobs = [await read_blob(client, str(link.uri)) for link in links]
    assert {t.uri_template: t.mime_type for t in templates} == {
        "falkit://images/{job_id}/{index}.jpg": "image/jpeg",
        "falkit://images/{job_id}/{index}.png": "image/png",
        "falkit://images/{job_id}/{index}.webp": "image/webp",
    }
    job_id = data(jpegs)["job_id"]
    assert [str(link.uri) for link in links[:2]] == [
        f"falkit://images/{job_id}/0.jpg",
        f"falkit://images/{job_id}/1.jpg",
    ]
    assert str(links[2].uri).endswith("/0.png")
    files = assert_images(jpegs, 2) + assert_images(png)
    views = data(jpegs)["images"] + data(png)["images"]
    for link, blob, path, view in zip(links, blobs, files, views, strict=True):
        raw = base64.b64decode(blob.blob)
        assert sha256(raw) == sha256(path.read_bytes()) == view["sha256"]
        assert blob.mime_type == link.mime_type == view["content_type"]
        assert view["resource_uri"] == str(link.uri) == str(blob.uri)
    assert blobs[2].mime_type == "image/png"
    uris = [view["resource_uri"] for view in data(jpegs)["images"]]
    assert [view["resource_uri"] for view in data(later)["images"]] == uris
    (first, *_) = [j for j in data(listed)["jobs"] if j["job_id"] == job_id]
    assert [view["resource_uri"] for view in first["images"]] == uris


async def test_only_images_of_the_library_are_served(
    connect: Any, emu: Any, service: FalService
) -> None:
    async with connect() as client:
        result = ok(await client.call_tool("generate_image", {"prompt": "a lone kite"}))
        job_id = data(result)["job_id"]
        refused: dict[str, str] = {}
        for uri in (
            "falkit://images/j_nosuch/0.jpg",
            f"falkit://images/{job_id}/3.jpg",
            f"falkit://images/{job_id}/0.png",
            f"falkit://images/{job_id}/x.jpg",
            "falkit://images/..%2F..%2Fetc/0.jpg",
            f"falkit://images/{job_id}/..%2F..%2F0.jpg",
            "falkit://images/%2Fetc%2Fpasswd/0.jpg",
        ):
            with pytest.raises(MCPError) as info:
                await client.read_resource(uri)
            refused[uri] = str(info.value)
    assert "j_nosuch" in refused["falkit://images/j_nosuch/0.jpg"]
    right = f"falkit://images/{job_id}/0.jpg"
    assert f"has no image 3; its images: {right}" in refused[f"falkit://images/{job_id}/3.jpg"]
    assert f"is image/jpeg: {right}" in refused[f"falkit://images/{job_id}/0.png"]
    assert len(refused) == 7


async def test_a_recorded_path_outside_the_library_is_never_read(
    emu: Any, service: FalService, connect: Any, tmp_path: Path
) -> None:
    async with connect() as client:
        result = ok(await client.call_tool("generate_image", {"prompt": "a kite at sea"}))
    job = await service.get_job(data(result)["job_id"])
    image = job.images[0]
    home = service.settings.home
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(Path(image.local_path).read_bytes())
    link = home / "images" / "leak.jpg"
    link.symlink_to(secret)
    assert library_file(home, image) == Path(image.local_path).resolve()
    for outside in (str(secret), str(link), "../secret.jpg", "images/../../secret.jpg"):
        with pytest.raises(ResourceNotFoundError, match="not in the library"):
            library_file(home, dataclasses.replace(image, local_path=outside))
    with pytest.raises(ResourceNotFoundError, match="is gone"):
        library_file(home, dataclasses.replace(image, local_path="images/nothing.jpg"))
