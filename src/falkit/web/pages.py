"""The web page at ``/``: the generate form, live progress, login, static files.

``routers()`` is what `falkit serve` passes to ``create_app``: this module's router and those
of the gallery (pages_gallery) and the LoRA and batch pages (pages_work). The form posts to
``/ui/…`` routes that answer HTML fragments for htmx; they run the API's own code paths
(``checked_request``, ``plan_image``, ``start_prepared``), so a page and an API call check,
refuse and start jobs alike, and the API's 422 field errors show next to their inputs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from falkit.errors import FalkitError, LookupFailedError, ValidationError
from falkit.web.pages_base import (
    HTMX,
    STATIC,
    Page,
    PageDep,
    error_slots,
    image_path,
    not_found,
    pydantic_errors,
    render,
    safe_next,
)
from falkit.web.pages_form import (
    LORA_ROWS,
    image_model_names,
    model_fields,
    params_from_form,
    spec_for,
    values_from_arguments,
    values_from_image,
)
from falkit.web.security import LoginBody, check_host, login
from falkit.web.state import WebState, web_state

if TYPE_CHECKING:
    from falkit.catalog import ModelSpec
    from falkit.request import PreparedJob
    from falkit.service.loras import LoraPlan
    from falkit.store import JobRecord, LoraRecord

router = APIRouter(include_in_schema=False)
State = Annotated[WebState, Depends(web_state)]
STATIC_FILES = {HTMX: "text/javascript", "falkit.js": "text/javascript", "falkit.css": "text/css"}
MAX_DROP_BYTES = 64 * 1024 * 1024


def routers() -> list[APIRouter]:
    """Every page router, for ``create_app(service, options, routers=routers())``."""
    from falkit.web import pages_gallery, pages_work

    return [router, pages_gallery.router, pages_work.router]


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    """The page's own script, styles and the vendored htmx (nothing else)."""
    kind = STATIC_FILES.get(name)
    if kind is None:
        raise HTTPException(404, "no such file")
    headers = {"Cache-Control": "public, max-age=3600"}
    return FileResponse(STATIC / name, media_type=kind, headers=headers)


# ---- login ----


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, state: State, next: str = "/") -> Response:
    check_host(request, state)
    page = Page(request, state, None)
    return render(page, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: State) -> Response:
    """Trade the token for the session cookie (as POST /api/v1/session), then go on."""
    form = await request.form()
    target = safe_next(str(form.get("next") or "/"))
    answer = RedirectResponse(target, status_code=303)
    try:
        await login(LoginBody(token=str(form.get("token") or "-")), request, answer, state)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        page = Page(request, state, None)
        return render(page, "login.html", status=401, next=target, error="Wrong token.")
    return answer


@router.post("/logout")
async def logout_form(page: PageDep) -> Response:
    from falkit.web.security import SESSION_COOKIE

    page.state.sessions.drop(page.request.cookies.get(SESSION_COOKIE))
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return answer


# ---- the generate page ----


async def library_loras(state: WebState) -> list[LoraRecord]:
    return await state.service.list_loras()


def form_context(
    spec: ModelSpec,
    values: Mapping[str, Any],
    loras: list[LoraRecord],
    *,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """What ``_form.html`` draws: the model's fields with values, LoRA rows, errors."""
    from falkit.catalog import MODELS

    triggers = {record.name: record.trigger_word for record in loras}
    given = list(values.get("loras") or [])[:LORA_ROWS]
    rows = [
        {"path": str(item.get("path") or ""), "scale": item.get("scale", 1),
         "trigger": triggers.get(str(item.get("path") or ""))}
        for item in given
    ]  # fmt: skip
    rows += [{"path": "", "scale": 1, "trigger": None}] * (LORA_ROWS - len(rows))
    return {
        "model": spec.name,
        "spec": spec,
        "models": [MODELS[name] for name in image_model_names()],
        "fields": model_fields(spec),
        "given": dict(values),
        "lora_rows": rows,
        "loras": loras,
        "errors": errors or {},
        "general": general or [],
        "notes": notes or [],
    }


@router.get("/", response_class=HTMLResponse)
async def generate_page(
    page: PageDep,
    remix: str | None = None,
    seed: str | None = None,
    job: str | None = None,
    lora: str | None = None,
) -> Response:
    """The prompt-first form, runs in progress, and the newest images."""
    service = page.state.service
    loras = await library_loras(page.state)
    values: dict[str, Any] = {}
    notes = []
    if remix:
        try:
            record = await service.get_job(remix)
        except LookupFailedError as exc:
            return not_found(page, str(exc))
        values = values_from_arguments(record.model, record.arguments, loras)
        if seed == "new":
            values.pop("seed", None)
        elif record.seed is not None:
            values["seed"] = record.seed
        notes.append(f"Remixing {record.id}: change anything, then Generate.")
    elif lora:
        values = {"loras": [{"path": lora, "scale": 1}], "model": "flux-lora"}
    spec = spec_for(values.get("model"))
    shown = await exact_or_none(page.state, job) if job else []
    recent = await service.list_jobs(limit=12, status="completed", kind="image")
    return render(
        page, "generate.html", form=form_context(spec, values, loras, notes=notes),
        runs=[card(page, r) for r in shown], recent=[tile(page, r) for r in recent],
    )  # fmt: skip


async def exact_or_none(state: WebState, job_id: str) -> list[JobRecord]:
    """The job with exactly this id, in a list (empty when there is none)."""
    from falkit.web.api_library import exact_jobs

    return await exact_jobs(state, [job_id])


def card(page: Page, record: JobRecord) -> dict[str, Any]:
    """A job card's data: its event stream drives the rest (see falkit.js)."""
    ended = record.completed_at.timestamp() if record.completed_at else None
    return {
        "id": record.id, "kind": record.kind, "model": record.model,
        "prompt": record.prompt or record.arguments.get("trigger_word") or "",
        "started": record.created_at.timestamp(), "ended": ended,
        "events": f"/api/v1/jobs/{record.id}/events",
    }  # fmt: skip


def live_card(job_id: str, kind: str, model: str, prompt: str) -> dict[str, Any]:
    return {
        "id": job_id, "kind": kind, "model": model, "prompt": prompt, "started": time.time(),
        "ended": None, "events": f"/api/v1/jobs/{job_id}/events",
    }  # fmt: skip


def tile(page: Page, record: JobRecord) -> dict[str, Any]:
    """A job as the gallery and the recent strip show it."""
    first = record.images[0] if record.images else None
    return {
        "id": record.id, "status": record.status, "model": record.model,
        "prompt": record.prompt or "", "created": record.created_at, "starred": record.starred,
        "count": len(record.images), "kind": record.kind,
        "src": image_path(page, first.local_path) if first else None,
        "error": record.error,
    }  # fmt: skip


# ---- htmx fragments: fields, estimate, generate, drop an image ----


async def posted(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}


@router.post("/ui/fields", response_class=HTMLResponse)
async def model_fields_fragment(page: PageDep) -> Response:
    """The model-dependent part of the form, for the model now chosen; values kept."""
    form = await posted(page.request)
    spec = spec_for(str(form.get("model") or ""))
    values = {**form, "loras": [], **_size_value(form)}
    loras = await library_loras(page.state)
    return render(page, "_fields.html", form=form_context(spec, values, loras))


def _size_value(form: Mapping[str, Any]) -> dict[str, Any]:
    if form.get("image_size") == "custom":
        return {
            "image_size": {"width": form.get("image_width"), "height": form.get("image_height")}
        }
    return {}


async def plan_form(state: WebState, form: Mapping[str, Any]) -> tuple[PreparedJob, LoraPlan]:
    """The form through the API's checks; ValidationError names the fields at fault."""
    import pydantic

    from falkit.web.api_images import ImageBody, checked_request

    try:
        body = ImageBody.model_validate(params_from_form(form))
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_errors(exc)) from None
    return await state.service.plan_image(await checked_request(state.service, body))


def slots_for(spec: ModelSpec) -> set[str]:
    """The error slots the form has for this model (an out-of-band swap needs its target)."""
    rows = range(LORA_ROWS) if spec.takes_loras else range(0)
    return {"prompt", "model", *(f.name for f in model_fields(spec)), *(f"lora_{i}" for i in rows)}


def failure(exc: FalkitError, spec: ModelSpec) -> tuple[dict[str, str], list[str]]:
    if isinstance(exc, ValidationError):
        return error_slots(exc.errors, slots_for(spec))
    return {}, [str(exc)]


@router.post("/ui/estimate", response_class=HTMLResponse)
async def estimate_fragment(page: PageDep) -> Response:
    """The live cost estimate, and each field's one-line error (out-of-band swaps)."""
    form = await posted(page.request)
    spec = spec_for(str(form.get("model") or ""))
    typed = bool(str(form.get("prompt") or "").strip())
    try:  # before a prompt is typed, the rest is estimated with a stand-in
        prepared, _ = await plan_form(page.state, form if typed else {**form, "prompt": "-"})
    except FalkitError as exc:
        errors, general = failure(exc, spec)
        return render(page, "_estimate.html", prepared=None, errors=errors, general=general,
                      slots=sorted(slots_for(spec)), cap=None)  # fmt: skip
    cap = page.state.service.budget.to_json()
    return render(page, "_estimate.html", prepared=prepared, errors={}, general=[],
                  slots=sorted(slots_for(spec)), cap=cap)  # fmt: skip


@router.post("/ui/generate", response_class=HTMLResponse)
async def generate_fragment(page: PageDep) -> Response:
    """Start the job: its live card (prepended to the runs), or the errors in place."""
    form = await posted(page.request)
    spec = spec_for(str(form.get("model") or ""))
    slots = sorted(slots_for(spec))
    try:
        prepared, plan = await plan_form(page.state, form)
        handle = await page.state.service.start_prepared(prepared, plan=plan)
    except FalkitError as exc:
        errors, general = failure(exc, spec)
        return render(page, "_estimate.html", prepared=None, errors=errors, general=general,
                      slots=slots, cap=None, headers={"HX-Reswap": "none"})  # fmt: skip
    info = live_card(handle.job_id, "image", prepared.model, str(prepared.arguments["prompt"]))
    return render(page, "_run.html", run=info, slots=slots)


@router.post("/ui/parse-image", response_class=HTMLResponse)
async def parse_image_fragment(page: PageDep) -> Response:
    """The form filled from a dropped image: falkit's record, or A1111's parameters."""
    import asyncio

    from falkit.service.geninfo import image_parameters

    upload = (await page.request.form()).get("image")
    loras = await library_loras(page.state)
    data = await upload.read(MAX_DROP_BYTES + 1) if isinstance(upload, UploadFile) else b""
    notes: list[str] = []
    values: dict[str, Any] = {}
    try:
        found = await asyncio.to_thread(image_parameters, data) if data else None
    except ValueError:
        found, notes = None, ["That file is not an image falkit can read."]
    if found is None and not notes:
        notes = ["That image carries no generation parameters."]
    if found is not None:
        values, notes = values_from_image(found)
        source = "falkit's record" if found["source"] == "falkit" else "A1111 parameters"
        name = upload.filename if isinstance(upload, UploadFile) else "the image"
        notes.insert(0, f"Loaded {source} from {name}.")
    spec = spec_for(values.get("model"))
    return render(page, "_form.html", form=form_context(spec, values, loras, notes=notes))
