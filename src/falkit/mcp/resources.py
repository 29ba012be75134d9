"""Full-size images as MCP resources, so that a client on another machine can fetch them.

``falkit://images/{job_id}/{index}.{ext}`` is image ``index`` (0-based, as in the file name)
of a job in the library; one template per file type, so each declares its MIME type. Only
images the library recorded, lying under FALKIT_HOME, are served: the URI names a job and an
index, never a path, and the recorded path is resolved and checked before it is read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from falkit.errors import LookupFailedError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from falkit.service import FalService
    from falkit.store import ImageRecord

SCHEME = "falkit://images"
EXTENSIONS = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def image_uri(job_id: str, index: int, content_type: str) -> str | None:
    """The resource URI of a kept image (None for a type no template serves)."""
    ext = next((e for e, t in EXTENSIONS.items() if t == content_type), None)
    return None if ext is None else f"{SCHEME}/{job_id}/{index}.{ext}"


def register_images(server: MCPServer[Any], service: FalService) -> None:
    """One resource template per image type, each reading from ``service``'s library."""
    for ext, mime in EXTENSIONS.items():
        server.resource(
            f"{SCHEME}/{{job_id}}/{{index}}.{ext}",
            name=f"image-{ext}",
            title=f"A generated image ({ext})",
            description="A full-size image that falkit generated and keeps in its library "
            "(image index, from 0, of the job); generate_image and get_job link to it.",
            mime_type=mime,
        )(_reader(service, mime))


def _reader(service: FalService, mime: str) -> Any:
    async def read_image(job_id: str, index: str) -> bytes:
        return await read_library_image(service, job_id, index, mime)

    return read_image


async def read_library_image(service: FalService, job_id: str, index: str, mime: str) -> bytes:
    """The bytes of a job's image from the library, or ResourceNotFoundError saying why."""
    try:
        job = await service.get_job(job_id)
    except LookupFailedError as exc:
        raise ResourceNotFoundError(str(exc)) from None
    image = next((img for img in job.images if str(img.index) == index), None)
    if image is None:
        uris = [image_uri(job.id, img.index, img.content_type) for img in job.images]
        listed = ", ".join(u for u in uris if u) or "none"
        raise ResourceNotFoundError(f"job {job.id} has no image {index}; its images: {listed}")
    if image.content_type != mime:
        right = image_uri(job.id, image.index, image.content_type)
        raise ResourceNotFoundError(
            f"image {index} of job {job.id} is {image.content_type}: {right}"
        )
    path = library_file(service.settings.home, image)
    return await asyncio.to_thread(path.read_bytes)


def library_file(home: Path, image: ImageRecord) -> Path:
    """The image's file, resolved, if it lies under FALKIT_HOME and exists."""
    root = home.expanduser().resolve()
    path = (root / image.local_path).resolve()
    if not path.is_relative_to(root):
        raise ResourceNotFoundError(
            f"image {image.index} of job {image.job_id} is not in the library"
        )
    if not path.is_file():
        raise ResourceNotFoundError(
            f"the file of image {image.index} of job {image.job_id} is gone"
        )
    return path
