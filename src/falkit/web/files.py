"""Serving kept files: the library's images, and a batch's folder (manifest, contact sheet).

Only files under the folder in question are served, whatever the path says: the path is
resolved (symlinks included) and must stay inside it, and only image and report types are
served, so ``..``, absolute paths, encoded slashes and symlinks out all end in 404.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from falkit.errors import LookupFailedError
from falkit.web.errors import responses
from falkit.web.security import Authorized
from falkit.web.state import WebState, web_state

router = APIRouter(tags=["files"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
REPORT_TYPES = {
    **IMAGE_TYPES,
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
FILE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file", "content": {"image/*": {}}}
}


def inside(root: Path, relative: str, types: dict[str, str]) -> tuple[Path, str]:
    """The file at ``relative`` under ``root`` and its type, or LookupFailedError (404)."""
    missing = LookupFailedError(f"no such file: {relative}")
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")):
        raise missing
    try:
        base = root.resolve(strict=True)
        path = (base / relative).resolve(strict=True)
        path.relative_to(base)
    except (OSError, ValueError, RuntimeError):
        raise missing from None
    kind = types.get(path.suffix.lower())
    if kind is None or not path.is_file():
        raise missing
    return path, kind


def file_response(path: Path, kind: str) -> FileResponse:
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
    if kind.startswith("text/html"):  # a batch's index page: its own links only, no scripts
        headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
        )
    return FileResponse(path, media_type=kind, headers=headers)


@router.get("/images/{path:path}", responses={**FILE_DOC, **responses(401, 403, 404)})
async def library_image(path: str, state: State) -> Response:
    """An image from the library (FALKIT_HOME/images, or the FALKIT_STORAGE_URL bucket),
    never anything outside it."""
    if state.service.settings.storage_url:
        return await stored_image(state, path)
    return file_response(*inside(state.images_root, path, IMAGE_TYPES))


async def stored_image(state: WebState, key: str) -> Response:
    """An image read from object storage by key (checked as strictly as a path)."""
    kind = IMAGE_TYPES.get(PurePosixPath(key).suffix.lower())
    parts = key.split("/")
    if kind is None or "\x00" in key or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise LookupFailedError(f"no such file: {key}")
    data = await state.service.storage().get(key)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
    return Response(data, media_type=kind, headers=headers)
