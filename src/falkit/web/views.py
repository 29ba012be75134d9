"""JSON answers of the API: jobs (with links and image URLs this server serves), events.

A job's JSON is ``falkit.views.job_json`` (what ``falkit jobs show --json`` prints) plus
``timings``, so once completed it has every key of ``falkit generate --json``; each image's
``url`` points at this server's ``/images/...`` (Fal's own URL, which expires, is ``fal_url``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from falkit.views import job_json

if TYPE_CHECKING:
    from fastapi import Request

    from falkit.events import Event
    from falkit.service.handle import JobHandle
    from falkit.store import JobRecord


class ImageOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    path: str = Field(description="Where the image is kept on the server")
    url: str | None = Field(description="The image, served by this server")
    fal_url: str | None = Field(None, description="Fal's URL (expires after a while)")
    width: int
    height: int
    content_type: str
    sha256: str


class JobLinks(BaseModel):
    job: str
    events: str
    cancel: str


class JobOut(BaseModel):
    """A job: the keys of `falkit jobs show --json` (and, completed, `generate --json`)."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    kind: str
    status: str = Field(description="The journal's status: pending … completed, failed")
    state: str = Field(description="Live state: queued, running, downloading, … or status")
    position: int | None = Field(None, description="Place in Fal's queue while queued")
    model: str | None = Field(description="None only while the job is being prepared")
    endpoint_id: str | None
    request_id: str | None
    prompt: str | None
    seed: int | None
    estimated_cost_usd: float | None
    cost_usd: float | None
    error: str | None
    created_at: str | None = Field(description="None only while the job is being prepared")
    completed_at: str | None
    arguments: dict[str, Any]
    images: list[ImageOut]
    timings: dict[str, Any]
    starred: bool = Field(False, description="Marked in the gallery (POST /jobs/{id}/star)")
    links: JobLinks


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def job_links(request: Request, job_id: str) -> dict[str, str]:
    root = f"{base_url(request)}/api/v1/jobs/{quote(job_id)}"
    return {"job": root, "events": f"{root}/events", "cancel": f"{root}/cancel"}


def image_url(request: Request, images_root: Path, local_path: str | None) -> str | None:
    """``{base}/images/<path in the library>``, or None for a file outside the library."""
    if not local_path:
        return None
    if "://" in local_path:  # in object storage (FALKIT_STORAGE_URL): served by its key
        key = request.app.state.web.service.storage().key_of(local_path)
        return f"{base_url(request)}/images/{quote(key)}" if key else None
    try:
        relative = Path(local_path).resolve().relative_to(images_root.resolve())
    except (ValueError, OSError):
        return None
    return f"{base_url(request)}/images/{quote(relative.as_posix())}"


def served_images(request: Request, images_root: Path, images: list[Any]) -> list[Any]:
    """Image dicts with ``url`` rewritten to this server and Fal's kept as ``fal_url``."""
    out = []
    for image in images:
        if isinstance(image, dict):
            fal = image.get("url")
            image = {**image, "url": image_url(request, images_root, image.get("path"))}
            image["fal_url"] = fal
        out.append(image)
    return out


def job_view(
    request: Request, images_root: Path, record: JobRecord, handle: JobHandle | None = None
) -> dict[str, Any]:
    data = job_json(record)
    data["timings"] = dict(record.timings or {})
    data["images"] = served_images(request, images_root, data["images"])
    live = handle is not None and not handle.done
    data["state"] = handle.state if live and handle is not None else record.status
    data["position"] = handle.position if live and handle is not None else None
    data["starred"] = record.starred
    data["links"] = job_links(request, record.id)
    return data


def preparing_view(request: Request, handle: JobHandle) -> dict[str, Any]:
    """A job not journaled yet (its uploads are under way): what the engine knows."""
    none = ("model", "endpoint_id", "request_id", "prompt", "seed", "estimated_cost_usd",
            "cost_usd", "error", "created_at", "completed_at", "position")  # fmt: skip
    return {
        **dict.fromkeys(none), "job_id": handle.job_id, "kind": handle.kind, "status": "pending",
        "state": handle.state, "arguments": {}, "images": [], "timings": {},
        "links": job_links(request, handle.job_id),
    }  # fmt: skip


class EventCache:
    """Each event's SSE message, encoded once however many subscribers stream it."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._messages: OrderedDict[tuple[str, int, str, str], bytes] = OrderedDict()

    def message(self, event: Event, request: Request, base: str, images_root: Path) -> bytes:
        """``id: <seq>`` and one ``data:`` line of the event's JSON (which holds no newline);
        ``base`` is the request's base URL (image URLs in a completed event point there)."""
        import json

        key = (event.job_id, event.seq, event.type, base)
        cached = self._messages.get(key)
        if cached is not None:
            return cached
        data = event.to_json()
        result = data.get("result")
        if isinstance(result, dict) and isinstance(result.get("images"), list):
            result["images"] = served_images(request, images_root, result["images"])
        text = json.dumps(data, default=str, separators=(",", ":"))
        message = f"id: {event.seq}\r\ndata: {text}\r\n\r\n".encode()
        self._messages[key] = message
        if len(self._messages) > self.size:
            self._messages.popitem(last=False)
        return message
