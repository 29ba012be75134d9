"""Jobs and LoRAs as people read them: table rows, `show` pages, cancel outcomes, `--since`.

Nothing here prints Python values: no `None`, no dict reprs. Missing facts are left out, sizes
read `1024x768`, LoRAs `name:0.8`, money `$0.0030`, times are local. `--json` keeps the raw
values (see falkit.views).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from falkit.cli.table import Cell, Column

if TYPE_CHECKING:
    from falkit.store import JobRecord, LoraRecord

JOB_COLUMNS = (
    Column("id", keep=True),
    Column("status", keep=True),
    Column("model"),
    Column("created", keep=True),
    Column("cost", right=True, keep=True),
    Column("prompt"),
)
LORA_COLUMNS = (
    Column("name", keep=True),
    Column("trigger word"),
    Column("created", keep=True),
    Column("local file"),
)
#: Fal's cancel answers (and ours) as sentences; `--json` keeps the code.
CANCEL_SENTENCES = {
    "OK": "cancelled job {job}",
    "CANCELLATION_REQUESTED": "cancellation of job {job} requested: it had started at Fal, "
    "so it may still finish (and be billed)",
    "ALREADY_COMPLETED": "job {job} had already completed; nothing to cancel "
    "(`falkit open {job}` shows its images)",
    "ALREADY_FAILED": "job {job} had already failed; nothing to cancel",
    "ALREADY_CANCELLED": "job {job} was already cancelled",
    "ALREADY_UNKNOWN": "job {job} is unknown (its submit may have reached Fal); nothing to cancel",
}


def money(value: float | None) -> str:
    return "" if value is None else f"${value:.4f}"


def local_time(when: dt.datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return when.astimezone().strftime(fmt)


def job_cost(job: JobRecord) -> float | None:
    return job.cost_usd if job.cost_usd is not None else job.estimated_cost


def job_rows(jobs: Sequence[JobRecord], short: Mapping[str, str]) -> list[list[Cell]]:
    """A table row per job: full values for pipes, short ids and times for the terminal."""
    rows: list[list[Cell]] = []
    for job in jobs:
        cost = job_cost(job)
        rows.append(
            [
                (job.id, short.get(job.id, job.id)),
                job.status,
                job.model,
                (job.created_at.isoformat(), local_time(job.created_at, "%m-%d %H:%M")),
                ("" if cost is None else f"{cost:g}", money(cost)),
                job.prompt or "",
            ]
        )
    return rows


def lora_rows(records: Sequence[LoraRecord]) -> list[list[Cell]]:
    return [
        [
            r.name,
            r.trigger_word or "",
            (r.created_at.isoformat(), local_time(r.created_at, "%Y-%m-%d %H:%M")),
            r.local_path or "",
        ]
        for r in records
    ]


def cancel_sentence(job_id: str, outcome: str) -> str:
    template = CANCEL_SENTENCES.get(outcome)
    if template is None:
        return f"job {job_id}: Fal answered {outcome}"
    return template.format(job=job_id)


# ---- show pages ----


def job_fields(job: JobRecord) -> list[tuple[str, str]]:
    """`falkit jobs show`: label and text for every fact the job has."""
    fields: list[tuple[str, str | None]] = [
        ("job", job.id),
        ("status", job.status),
        ("kind", job.kind),
        (
            "model",
            job.model if job.model == job.endpoint_id else f"{job.model} ({job.endpoint_id})",
        ),
        ("request", job.request_id),
        ("batch", _batch(job)),
        ("prompt", job.prompt),
        ("seed", None if job.seed is None else str(job.seed)),
        ("cost", _cost_text(job)),
        ("created", local_time(job.created_at)),
        ("completed", _completed(job)),
        ("error", _error(job)),
    ]
    fields += [("image", _image_text(img)) for img in job.images]
    params = [(k, v) for k, v in sorted(job.arguments.items()) if k != "prompt"]
    return _kept(fields) + _parameter_lines(params)


def lora_fields(record: LoraRecord) -> list[tuple[str, str]]:
    """`falkit lora show`: the LoRA's facts and the parameters it was trained with."""
    fields: list[tuple[str, str | None]] = [
        ("name", record.name),
        ("trigger word", record.trigger_word),
        ("weights", record.url),
        ("config", record.config_url),
        ("local file", record.local_path),
        ("trained by job", record.job_id),
        ("created", local_time(record.created_at)),
    ]
    return _kept(fields) + _parameter_lines(sorted(record.params.items()))


def _kept(fields: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(label, text) for label, text in fields if text]


def _parameter_lines(params: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    if not params:
        return []
    return [("parameters:", ""), *((f"  {key}", value_text(key, value)) for key, value in params)]


def format_fields(fields: Sequence[tuple[str, str]]) -> str:
    """Aligned `label  text` lines; a label ending in ':' heads the indented ones below it."""
    width = max((len(label) for label, _ in fields), default=0)
    lines = []
    for label, text in fields:
        lines.append(label if label.endswith(":") else f"{label:<{width}}  {text}".rstrip())
    return "\n".join(lines) + "\n"


def value_text(key: str, value: Any) -> str:
    """A parameter's value as a person writes it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict) and {"width", "height"} <= set(value) and len(value) == 2:
        return f"{value['width']}x{value['height']}"
    if key == "loras" and isinstance(value, list):
        return ", ".join(_lora_text(item) for item in value) or "none"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _lora_text(item: Any) -> str:
    if isinstance(item, Mapping) and "path" in item:
        return f"{item['path']}:{float(item.get('scale', 1.0)):g}"
    return json.dumps(item, ensure_ascii=False)


def _batch(job: JobRecord) -> str | None:
    if job.batch_id is None:
        return None
    return f"{job.batch_id} #{job.batch_index}" if job.batch_index is not None else job.batch_id


def _cost_text(job: JobRecord) -> str | None:
    if job.cost_usd is not None:
        return money(job.cost_usd)
    if job.estimated_cost is not None:
        return f"{money(job.estimated_cost)} (estimated)"
    return None


def _completed(job: JobRecord) -> str | None:
    if job.completed_at is None:
        return None
    took = (job.completed_at - job.created_at).total_seconds()
    return f"{local_time(job.completed_at)} (after {took:.1f} s)"


def _error(job: JobRecord) -> str | None:
    if not job.error:
        return None
    return f"{job.error} [{job.error_type}]" if job.error_type else job.error


def _image_text(img: Any) -> str:
    return f"{img.local_path} ({img.width}x{img.height}, {img.content_type})"


# ---- --since ----

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`30m`, `2h`, `3d`, `1w` ago, `today`, or an ISO date or time (local unless it says)."""
    from falkit.errors import ValidationError

    now = now or dt.datetime.now().astimezone()
    value = text.strip().lower()
    match = _AGO.match(value)
    if match:
        return now - dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2].lower()])
    if value == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError.field(
            "since", f"{text!r} is not a time", "30m, 2h, 3d, 1w, today or a date like 2025-01-31"
        ) from None
    return when if when.tzinfo else when.astimezone()
