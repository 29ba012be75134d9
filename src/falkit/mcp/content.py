"""Tool answers: text a model can act on, small image previews, and links to the kept files.

Every answer also carries the same facts as structured content for programs (their shapes:
answers.py). Previews are JPEG thumbnails (at most THUMB_SIDE pixels a side, a few tens of KB),
far under the size chat hosts accept; the full image stays on disk and is linked twice: as a
``falkit://images/...`` resource any client can read over MCP, and as a file:// link for
clients on the same machine.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from falkit.mcp.resources import image_uri
from falkit.views import job_json

if TYPE_CHECKING:
    from falkit.service.results import GenerationResult, ResultImage
    from falkit.service.training import TrainingResult
    from falkit.store import JobRecord

THUMB_SIDE = 320
THUMB_QUALITY = 80


def answer(text: str, data: dict[str, Any], extra: Sequence[ContentBlock] = ()) -> CallToolResult:
    """A tool result: text first (what the model reads), then any blocks, with structured data."""
    blocks: list[ContentBlock] = [TextContent(type="text", text=text), *extra]
    return CallToolResult(content=blocks, structured_content=data)


def thumbnail(path: Path, side: int = THUMB_SIDE) -> bytes:
    """A JPEG preview of an image file, at most ``side`` pixels on its longer side."""
    from PIL import Image

    with Image.open(path) as image:
        image.thumbnail((side, side))
        preview = image.convert("RGB")
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return buffer.getvalue()


async def image_blocks(job_id: str, images: Sequence[ResultImage]) -> list[ContentBlock]:
    """For each image: its preview, links to the kept file (MCP resource and file://) and a
    link to Fal's URL."""
    blocks: list[ContentBlock] = []
    for index, image in enumerate(images):
        if image.path.is_file():
            data = await asyncio.to_thread(thumbnail, image.path)
            encoded = base64.b64encode(data).decode("ascii")
            blocks.append(ImageContent(type="image", data=encoded, mime_type="image/jpeg"))
            blocks.extend(_kept_links(job_id, image, index))
        if image.url.startswith(("https://", "http://")):
            blocks.append(
                ResourceLink(
                    type="resource_link",
                    uri=image.url,
                    name=f"image {index + 1} at Fal",
                    description="Fal's copy of the image; it expires, the local file is kept",
                    mime_type=image.content_type,
                )
            )
    return blocks


def _kept_links(job_id: str, image: ResultImage, index: int) -> list[ResourceLink]:
    size = image.path.stat().st_size
    title = f"image {index + 1} ({image.width}x{image.height})"
    links = []
    uri = image_uri(job_id, index, image.content_type)
    if uri is not None:
        links.append(
            ResourceLink(
                type="resource_link",
                uri=uri,
                name=image.path.name,
                title=title,
                description="The full-size image, readable over MCP (resources/read)",
                mime_type=image.content_type,
                size=size,
            )
        )
    links.append(
        ResourceLink(
            type="resource_link",
            uri=image.path.resolve().as_uri(),
            name=image.path.name,
            title=title,
            description="The full-size image, kept on the user's computer",
            mime_type=image.content_type,
            size=size,
        )
    )
    return links


def with_uris(data: dict[str, Any], job_id: str, types: Sequence[str]) -> dict[str, Any]:
    """``data`` with each of its images' resource URI (images in index order)."""
    images = []
    for index, (view, content_type) in enumerate(zip(data.get("images", []), types, strict=False)):
        uri = image_uri(job_id, index, content_type)
        images.append({**view, "resource_uri": uri} if uri else view)
    return {**data, "images": images} if "images" in data else data


def job_view(job: JobRecord) -> dict[str, Any]:
    """A job's facts (views.job_json) with its images' resource URIs."""
    data = job_json(job)
    views = []
    for view, img in zip(data["images"], job.images, strict=False):
        uri = image_uri(job.id, img.index, img.content_type)
        views.append({**view, "resource_uri": uri} if uri else view)
    return {**data, "images": views}


def image_lines(job_id: str, images: Sequence[ResultImage]) -> list[str]:
    lines: list[str] = []
    for index, image in enumerate(images):
        lines.append(f"Image {index + 1}: {image.path} ({image.width}x{image.height})")
        uri = image_uri(job_id, index, image.content_type)
        if uri is not None:
            lines.append(f"  full size over MCP: {uri}")
        if image.url.startswith(("https://", "http://")):
            lines.append(f"  Fal URL (expires; the file above is kept): {image.url}")
    return lines


def _cost(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


async def generation_answer(result: GenerationResult, notes: Sequence[str] = ()) -> CallToolResult:
    """A finished generation: what was made, where it is, previews and links."""
    count = len(result.images)
    head = (
        f"Generated {count} image{'s' if count != 1 else ''} with {result.model} "
        f"(job {result.job_id}, seed {result.seed}, cost {_cost(result.cost_usd)})."
    )
    lines = [head, *image_lines(result.job_id, result.images), *notes]
    data = {**result.to_json(), "done": True, "notes": list(notes)}
    data = with_uris(data, result.job_id, [image.content_type for image in result.images])
    return answer("\n".join(lines), data, await image_blocks(result.job_id, result.images))


def training_answer(result: TrainingResult) -> CallToolResult:
    word = result.trigger_word
    usage = f'put "{word}" in the prompt' if word else "describe the subject as in the captions"
    text = (
        f"LoRA {result.name!r} is trained (job {result.job_id}, cost {_cost(result.cost_usd)}) "
        f"and kept at {result.local_path}. Use it: generate_image with loras "
        f'["{result.name}"] and {usage}.'
    )
    return answer(text, {**result.to_json(), "done": True})


def running_answer(job_id: str, kind: str, status: str, progress: str | None) -> CallToolResult:
    """A job still going: its id and what to do next."""
    what = "training" if kind == "training" else "generation"
    where = f" ({progress})" if progress else ""
    text = (
        f"The {what} job {job_id} is still {status}{where}. It keeps running in this falkit "
        f'server, which saves its result when it ends. Call get_job with job_id "{job_id}" to '
        "wait for it and get the result."
    )
    data = {"job_id": job_id, "kind": kind, "status": status, "done": False, "progress": progress}
    return answer(text, data)


def preparing_answer(key: str) -> CallToolResult:
    text = (
        f"The training request {key} is still being checked and uploaded. Call get_job with "
        f'job_id "{key}" to follow it.'
    )
    return answer(text, {"job_id": key, "kind": "training", "status": "preparing", "done": False})


def ended_answer(job: JobRecord) -> CallToolResult:
    """A job that failed, was cancelled, or whose submit is uncertain."""
    text = f"Job {job.id} ({job.kind}, {job.model}) ended {job.status}: {job.error or 'no detail'}"
    if job.status == "unknown":
        text += (
            " Nothing was resent. `falkit jobs reconcile` in a terminal looks it up in"
            " Fal's request history: it is reattached if it arrived, else sent once."
        )
    return answer(text, {**job_view(job), "done": True})


def job_line(job: JobRecord) -> str:
    prompt = (job.prompt or "").replace("\n", " ")
    prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    label = f" {prompt!r}" if prompt else ""
    files = f", {len(job.images)} image(s): {job.images[0].local_path}" if job.images else ""
    when = job.created_at.strftime("%Y-%m-%d %H:%M")
    return f"{job.id} {job.status} {job.model} {when}{label}{files}"
