"""The LoRA page (the library, a training form with upload and training progress) and the
batch pages (a sweep form with a budget, each batch's per-job progress and contact sheet).

Both run the API's own code: training through ``api_loras.train_lora``, batches through
``BatchRuns.start`` and ``api_batches.get_batch``, so what the page refuses the API refuses.
"""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from falkit.errors import FalkitError, LookupFailedError, ValidationError
from falkit.web.pages import library_loras, live_card
from falkit.web.pages_base import (
    Page,
    PageDep,
    error_slots,
    not_found,
    pydantic_errors,
    render,
)
from falkit.web.pages_form import image_model_names

router = APIRouter(include_in_schema=False)
TRAIN_SLOTS = {"files", "trigger_word", "name", "steps"}
BATCH_SLOTS = {"prompts", "seeds", "models", "guidance", "sizes", "budget", "concurrency"}


# ---- LoRAs ----


@router.get("/loras", response_class=HTMLResponse)
async def loras_page(page: PageDep) -> Response:
    loras = await library_loras(page.state)
    return render(page, "loras.html", loras=loras, errors={}, general=[])


@router.get("/ui/loras/table", response_class=HTMLResponse)
async def loras_table(page: PageDep) -> Response:
    return render(page, "_lora_table.html", loras=await library_loras(page.state))


@router.post("/ui/loras/train", response_class=HTMLResponse)
async def train(page: PageDep) -> Response:
    """Start training from the uploaded zip or images: the job's live card, or the errors."""
    from falkit.web.api_loras import train_lora

    form = await page.request.form()
    files: list[Any] = [
        f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename
    ]
    try:
        if not files:
            raise ValidationError.field("files", "choose a .zip or at least 4 images")
        started = await train_lora(
            page.request, Response(), page.state, files,
            trigger_word=_text(form.get("trigger_word")), name=_text(form.get("name")),
            steps=_int(form.get("steps"), 1000), is_style="is_style" in form,
            create_masks="create_masks" in form,
        )  # fmt: skip
    except FalkitError as exc:
        return _form_errors(page, exc, TRAIN_SLOTS)
    label = _text(form.get("name")) or _text(form.get("trigger_word")) or "new LoRA"
    info = live_card(started.job_id, "training", "flux-lora-training", f"Training {label}")
    return render(page, "_run.html", run=info, slots=sorted(TRAIN_SLOTS))


def _text(value: Any) -> str | None:
    text = str(value or "").strip()
    return text or None


def _int(value: Any, default: int) -> int:
    text = str(value or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValidationError.field("steps", f"{text[:20]!r} is not a whole number") from None


def _form_errors(page: Page, exc: FalkitError, slots: set[str]) -> Response:
    errors, general = (
        error_slots(exc.errors, slots) if isinstance(exc, ValidationError) else ({}, [str(exc)])
    )
    return render(
        page, "_estimate.html", prepared=None, errors=errors, general=general,
        slots=sorted(slots), cap=None, headers={"HX-Reswap": "none"},
    )  # fmt: skip


# ---- batches ----


@router.get("/batches", response_class=HTMLResponse)
async def batches_page(page: PageDep) -> Response:
    store = await page.state.service.store()
    recent = await store.list_batches(limit=20)
    return render(page, "batches.html", batches=recent, models=image_model_names())


def batch_request(form: Any) -> tuple[list[str], dict[str, Any]]:
    """The sweep form as ``BatchBody`` (the API's): prompts a line, sweeps as the CLI's text."""
    from falkit.web.api_batches import BatchBody

    prompts = [line.strip() for line in str(form.get("prompts") or "").splitlines()]
    data: dict[str, Any] = {"prompts": [p for p in prompts if p]}
    for name in ("seeds", "guidance", "sizes"):
        if _text(form.get(name)):
            data[name] = _text(form.get(name))
    models = [str(m) for m in form.getlist("models") if str(m)]
    if models:
        data["models"] = models
    for name in ("budget", "concurrency"):
        if _text(form.get(name)):
            data[name] = _text(form.get(name))
    steps = _text(form.get("steps"))
    if steps:
        data["defaults"] = {"num_inference_steps": steps}
    try:
        body = BatchBody.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_errors(exc)) from None
    return list(body.prompts), body.options()  # type: ignore[arg-type]


@router.post("/ui/batches/estimate", response_class=HTMLResponse)
async def batch_estimate(page: PageDep) -> Response:
    """How many jobs and what they would cost; nothing is written or sent."""
    from falkit.web.batches import check_loras

    form = await page.request.form()
    try:
        prompts, options = batch_request(form)
        await check_loras(page.state.service, prompts, options.get("defaults"))
        dry = await page.state.service.generate_batch(prompts, dry_run=True, **options)
    except FalkitError as exc:
        return _form_errors(page, exc, BATCH_SLOTS)
    return render(page, "_batch_estimate.html", dry=dry, slots=sorted(BATCH_SLOTS))


@router.post("/ui/batches", response_class=HTMLResponse)
async def batch_start(page: PageDep) -> Response:
    """Start the batch (or resume the same one) and open its page."""
    form = await page.request.form()
    try:
        prompts, options = batch_request(form)
        run = await page.state.batches.start(prompts, options)
    except FalkitError as exc:
        return _form_errors(page, exc, BATCH_SLOTS)
    return HTMLResponse("", headers={"HX-Redirect": f"/batches/{run.batch_id}"})


async def batch_view(page: Page, batch_id: str) -> dict[str, Any]:
    from falkit.web.api_batches import get_batch

    out = await get_batch(batch_id, page.request, page.state, limit=500, offset=0)
    rows = [{"job": job, "src": job.images[0].get("url") if job.images else None}
            for job in out.jobs]  # fmt: skip
    done = sum(v for k, v in out.counts.items() if k in ("completed", "failed", "cancelled"))
    return {"batch": out, "rows": rows, "done": done}


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
async def batch_page(batch_id: str, page: PageDep) -> Response:
    try:
        return render(page, "batch.html", **await batch_view(page, batch_id))
    except LookupFailedError as exc:
        return not_found(page, str(exc))


@router.get("/ui/batches/{batch_id}/jobs", response_class=HTMLResponse)
async def batch_jobs(batch_id: str, page: PageDep) -> Response:
    """The batch's progress and jobs (polled by the page while the batch runs)."""
    return render(page, "_batch_jobs.html", **await batch_view(page, batch_id))
