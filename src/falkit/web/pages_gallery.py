"""The gallery: the library's jobs with filters and paging, stars, selection (zip, delete,
compare), and each job's page (every parameter, provenance, remix, same/new seed, copy as a
command or Python)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from falkit.errors import FalkitError, LookupFailedError
from falkit.web.api_jobs import lora_needle
from falkit.web.api_library import delete_records, exact_jobs
from falkit.web.pages import card, library_loras, plan_form, tile
from falkit.web.pages_base import Page, PageDep, image_path, not_found, render
from falkit.web.pages_form import (
    cli_command,
    image_model_names,
    python_code,
    values_from_arguments,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 24
STATUSES = ("completed", "failed", "cancelled", "unknown", "pending", "submitted", "running")


def _date(text: str | None, *, end: bool = False) -> dt.datetime | None:
    """A day from a date input, as UTC midnight (the day after it for ``end``)."""
    try:
        day = dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None
    if day is None:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=int(end)), dt.time(), dt.UTC)


def filters_from(query: Any) -> dict[str, str]:
    keys = ("q", "model", "lora", "status", "since", "until", "starred")
    return {key: str(query.get(key) or "").strip()[:500] for key in keys}


async def results(page: Page, filters: dict[str, str], offset: int) -> dict[str, Any]:
    """One page of jobs matching the filters, as tiles, and the paging links."""
    store = await page.state.service.store()
    status = filters["status"] if filters["status"] in STATUSES else None
    records = await store.list_jobs(
        search=filters["q"] or None, limit=PAGE_SIZE + 1, status=status, kind="image",
        model=filters["model"] or None, since=_date(filters["since"]),
        until=_date(filters["until"], end=True), starred=True if filters["starred"] else None,
        lora=await lora_needle(page.state.service, filters["lora"]), offset=offset,
    )  # fmt: skip
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    base = f"/gallery?{query}&" if query else "/gallery?"
    return {
        "tiles": [tile(page, r) for r in records[:PAGE_SIZE]],
        "offset": offset,
        "prev": f"{base}offset={max(0, offset - PAGE_SIZE)}" if offset > 0 else None,
        "next": f"{base}offset={offset + PAGE_SIZE}" if len(records) > PAGE_SIZE else None,
        "page_number": offset // PAGE_SIZE + 1,
    }


@router.get("/gallery", response_class=HTMLResponse)
async def gallery(page: PageDep, offset: int = 0) -> Response:
    """Every image job, newest first; htmx asks for the results part alone."""
    filters = filters_from(page.request.query_params)
    found = await results(page, filters, max(0, min(offset, 100_000)))
    if page.htmx and page.request.headers.get("hx-target") == "gallery-results":
        return render(page, "_results.html", **found, filters=filters)
    loras = await library_loras(page.state)
    return render(
        page, "gallery.html", **found, filters=filters, models=image_model_names(),
        loras=loras, statuses=STATUSES,
    )  # fmt: skip


@router.post("/ui/jobs/{job_id}/star", response_class=HTMLResponse)
async def toggle_star(job_id: str, page: PageDep) -> Response:
    record = await page.state.service.get_job(job_id)
    store = await page.state.service.store()
    record = await store.set_starred(record.id, not record.starred)
    return render(page, "_star.html", t={"id": record.id, "starred": record.starred})


@router.post("/ui/delete", response_class=HTMLResponse)
async def delete_selected(page: PageDep) -> Response:
    """Delete the selected jobs (and their images), then show the same results again."""
    form = await page.request.form()
    ids = [str(v) for v in form.getlist("job_id")][:200]
    message = None
    try:
        deleted = await delete_records(page.state, ids)
        message = f"Deleted {len(deleted.deleted)} job(s), {deleted.files_removed} image file(s)."
    except Exception as exc:  # 409: one is still running
        message = getattr(exc, "detail", None) or str(exc)
    filters = filters_from(form)
    found = await results(page, filters, 0)
    return render(page, "_results.html", **found, filters=filters, message=message)


# ---- one job ----


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        if "path" in value:
            return f"{value['path']} × {value.get('scale', 1)}"
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    return str(value)


def _embedded(path: str | None) -> dict[str, Any]:
    """What the kept file itself says: falkit's record keys and the A1111 text."""
    from falkit.service.downloads import read_metadata
    from falkit.service.geninfo import read_parameters_text

    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        from pathlib import Path

        record = read_metadata(Path(path))
        return {"falkit": sorted(record) if record else [], "a1111": read_parameters_text(data)}
    except OSError:
        return {}


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(job_id: str, page: PageDep) -> Response:
    """Every parameter, the provenance, the images; remix, reruns, copy, delete."""
    try:
        record = await page.state.service.get_job(job_id)
    except LookupFailedError as exc:
        return not_found(page, str(exc))
    loras = await library_loras(page.state)
    values = values_from_arguments(record.model, record.arguments, loras)
    if record.seed is not None:
        values["seed"] = record.seed
    images = [{"src": image_path(page, i.local_path), "record": i} for i in record.images]
    first = record.images[0].local_path if record.images else None
    embedded = await asyncio.to_thread(_embedded, first)
    return render(
        page, "job.html", job=record, images=images, embedded=embedded,
        params=[(k, _flat(v)) for k, v in record.arguments.items() if k not in ("prompt", "seed")],
        cli=cli_command(record.model, values) if record.kind == "image" else None,
        python=python_code(record.model, values) if record.kind == "image" else None,
        run=card(page, record), t=tile(page, record),
    )  # fmt: skip


@router.post("/ui/jobs/{job_id}/rerun", response_class=HTMLResponse)
async def rerun(job_id: str, page: PageDep) -> Response:
    """The same request again, with the same seed or a new one; opens it on the form page."""
    record = await page.state.service.get_job(job_id)
    form = await page.request.form()
    loras = await library_loras(page.state)
    values = values_from_arguments(record.model, record.arguments, loras)
    values.pop("seed", None)
    if form.get("seed") != "new" and record.seed is not None:
        values["seed"] = record.seed
    try:
        prepared, plan = await plan_form(page.state, _as_form(values))
        handle = await page.state.service.start_prepared(prepared, plan=plan)
    except FalkitError as exc:
        return HTMLResponse(f'<p class="err">{_escape(str(exc))}</p>', status_code=200)
    return HTMLResponse("", headers={"HX-Redirect": f"/?job={handle.job_id}"})


def _as_form(values: dict[str, Any]) -> dict[str, Any]:
    """Form values (as pages_form reads a post) for a job's values."""
    form = {k: v for k, v in values.items() if k != "loras"}
    size = values.get("image_size")
    if isinstance(size, dict):
        form.update(
            image_size="custom", image_width=size.get("width"), image_height=size.get("height")
        )
    for row, item in enumerate(values.get("loras") or []):
        form[f"lora_path_{row}"], form[f"lora_scale_{row}"] = item["path"], item.get("scale", 1)
    for name, value in list(form.items()):
        if value is False:
            del form[name]  # an unchecked checkbox is not posted
    return form


def _escape(text: str) -> str:
    import html

    return html.escape(text)


@router.post("/ui/jobs/{job_id}/delete", response_class=HTMLResponse)
async def delete_one(job_id: str, page: PageDep) -> Response:
    record = await page.state.service.get_job(job_id)
    await delete_records(page.state, [record.id])
    return HTMLResponse("", headers={"HX-Redirect": "/gallery"})


@router.get("/compare", response_class=HTMLResponse)
async def compare(page: PageDep) -> Response:
    """Two jobs side by side, their differing parameters marked."""
    ids = [str(v) for v in page.request.query_params.getlist("job_id")][:2]
    records = await exact_jobs(page.state, ids)
    if len(records) != 2:
        return not_found(page, "Pick two jobs of the library to compare.")
    a, b = records
    keys = list(dict.fromkeys(["model", "seed", *a.arguments, *b.arguments]))

    def get(record: Any, key: str) -> str:
        if key in ("model", "seed"):
            return _flat(getattr(record, key))
        return _flat(record.arguments[key]) if key in record.arguments else "–"

    rows = [(k, get(a, k), get(b, k)) for k in keys]
    sides = [
        {"job": r, "src": image_path(page, r.images[0].local_path) if r.images
         else None}
        for r in records
    ]  # fmt: skip
    return render(page, "compare.html", sides=sides, rows=rows)
