"""LoRAs: the library, and training a new one from an uploaded zip or a set of images.

The upload is written to a private folder under FALKIT_HOME/uploads (file names reduced to
their last part; only images, captions and zips kept), checked and packed by the training
service exactly as `falkit lora train` does, and removed once the dataset is in memory. The
whole request is capped by the server's upload limit (413 past it).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict

from falkit.errors import ValidationError
from falkit.views import lora_json
from falkit.web.errors import responses
from falkit.web.security import Authorized
from falkit.web.state import WebState, web_state
from falkit.web.views import job_links

router = APIRouter(prefix="/api/v1", tags=["loras"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
KEPT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".txt", ".zip")
CHUNK = 1024 * 1024


class LoraOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    trigger_word: str | None
    url: str
    config_url: str | None
    job_id: str | None
    params: dict[str, Any]
    created_at: str


class TrainingStarted(BaseModel):
    job_id: str
    status: str
    links: dict[str, str]


@router.get("/loras", response_model=list[LoraOut], responses=responses(401, 403))
async def list_loras(state: State) -> list[LoraOut]:
    """Every LoRA in the library (name, trigger word, weights URL)."""
    records = await state.service.list_loras()
    return [LoraOut.model_validate(lora_json(record)) for record in records]


def safe_name(filename: str | None, index: int) -> str:
    """An uploaded file's name reduced to a plain last part (no folders, no dots first)."""
    raw = filename or f"file-{index}"
    name = PureWindowsPath(PurePosixPath(raw).name).name
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip(" .") or f"file-{index}"
    return name[:120]


async def save_upload(files: list[UploadFile], folder: Path) -> Path:
    """Write the upload into ``folder``: the folder itself, or the zip if one zip was sent."""
    folder.mkdir(parents=True)
    written: list[Path] = []
    for index, upload in enumerate(files):
        name = safe_name(upload.filename, index)
        if not name.lower().endswith(KEPT_SUFFIXES):
            raise ValidationError.field(
                f"files.{index}", f"{name!r} is not an image, caption or zip",
                "a .zip, or jpg/jpeg/png/webp images with optional same-named .txt captions",
            )  # fmt: skip
        target = folder / name
        if target.exists():
            raise ValidationError.field(f"files.{index}", f"{name!r} was sent twice")
        with target.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                await asyncio.to_thread(out.write, chunk)
        written.append(target)
    zips = [p for p in written if p.suffix.lower() == ".zip"]
    if zips and len(written) > 1:
        raise ValidationError.field("files", "send one .zip, or images (not both)")
    return zips[0] if zips else folder


@router.post(
    "/loras", status_code=202, response_model=TrainingStarted,
    responses=responses(401, 402, 403, 413, 422, 502, 503),
)  # fmt: skip
async def train_lora(
    request: Request,
    response: Response,
    state: State,
    files: Annotated[list[UploadFile], File(description="A .zip, or images and .txt captions")],
    trigger_word: Annotated[str | None, Form(max_length=100)] = None,
    name: Annotated[str | None, Form(max_length=100)] = None,
    steps: Annotated[int, Form(ge=1, le=10000)] = 1000,
    is_style: Annotated[bool, Form()] = False,
    create_masks: Annotated[bool, Form()] = True,
) -> TrainingStarted:
    """Start training a LoRA from the uploaded pictures; answers with the training job."""
    service = state.service
    service.client()  # no key: 503 before the upload is written anywhere
    stem = safe_name(name or trigger_word or "dataset", 0)
    root = service.settings.home / "uploads" / f"web-{secrets.token_hex(8)}"
    try:
        source = await save_upload(files, root / stem)
        handle = await service.start_training(
            source, trigger_word=trigger_word or None, name=name or None, steps=steps,
            is_style=is_style, create_masks=create_masks,
        )  # fmt: skip
    finally:  # the checked dataset is in memory by now
        await asyncio.to_thread(shutil.rmtree, root, True)
    links = job_links(request, handle.job_id)
    response.headers["Location"] = links["job"]
    return TrainingStarted(job_id=handle.job_id, status=handle.state, links=links)
