"""A batch's plan: every expanded request checked, priced and given its place, before any send.

The batch id is a hash of what will be asked of Fal (endpoint and checked arguments of every job,
in order), so running the same command again finds the same batch and resumes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falkit.errors import FieldError, ValidationError
from falkit.request import SHORT_NAMES, ImageRequest, PreparedJob
from falkit.service.batch_input import BatchRequest

SPEC_VERSION = 1
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class PlannedJob:
    """One job of a batch: its place, the request it came from, and what will be sent."""

    index: int
    request: BatchRequest
    prepared: PreparedJob


@dataclass(frozen=True)
class BatchPlan:
    """Every job of a batch, checked and priced; nothing has been sent."""

    batch_id: str
    jobs: tuple[PlannedJob, ...]
    varying: tuple[str, ...]
    source: str

    @property
    def estimated_cost(self) -> float | None:
        """Total estimated USD, or None when some model's price is unknown."""
        costs = [job.prepared.estimated_cost for job in self.jobs]
        if any(cost is None for cost in costs):
            return None
        return round(sum(c for c in costs if c is not None), 6)

    def label(self, job: PlannedJob | int) -> str:
        """The parameters that vary across the batch, for this job (contact-sheet captions)."""
        planned = self.jobs[job] if isinstance(job, int) else job
        return describe(planned.prepared, self.varying)

    def spec(self, options: dict[str, Any]) -> dict[str, Any]:
        """What the store keeps to resume the batch: the expanded requests and the options."""
        requests = [
            {"line": j.request.line, "where": j.request.where, "params": j.request.params}
            | ({"sweep": j.request.sweep} if j.request.sweep else {})
            for j in self.jobs
        ]
        return {
            "version": SPEC_VERSION,
            "source": self.source,
            "requests": requests,
            "options": options,
        }


def plan_batch(requests: list[BatchRequest], source: str) -> BatchPlan:
    """Check every request (all errors at once, each naming its input line and field)."""
    jobs: list[PlannedJob] = []
    errors: list[FieldError] = []
    for index, request in enumerate(requests):
        try:
            prepared = prepare(request.params)
        except ValidationError as exc:
            errors.extend(
                FieldError(f"{request.label}: {e.field}", e.message, e.allowed) for e in exc.errors
            )
            continue
        if prepared.kind != "image":
            errors.append(FieldError(f"{request.label}: model", "not an image model"))
            continue
        jobs.append(PlannedJob(index, request, prepared))
    if errors:
        raise _combined(errors)
    return BatchPlan(batch_id_for(jobs), tuple(jobs), varying_keys(jobs), source)


def prepare(params: dict[str, Any]) -> PreparedJob:
    """One request checked against the catalog (LoRA names and files not resolved yet)."""
    return ImageRequest.build(**params).prepare()


def plan_from_spec(spec: dict[str, Any]) -> BatchPlan:
    """The plan of a stored batch (its requests are stored already expanded)."""
    if spec.get("version") != SPEC_VERSION:
        raise ValidationError.field("batch", f"unsupported batch spec {spec.get('version')!r}")
    requests = [
        BatchRequest(
            int(r["line"]), dict(r["params"]), str(r.get("where", "line")), r.get("sweep") or {}
        )
        for r in spec["requests"]
    ]
    return plan_batch(requests, str(spec.get("source", "")))


def batch_id_for(jobs: list[PlannedJob]) -> str:
    """``b_`` and 16 hex digits of a hash of every job's endpoint and arguments, in order."""
    digest = hashlib.sha256()
    for job in jobs:
        item = [job.prepared.endpoint_id, job.prepared.arguments]
        digest.update(json.dumps(item, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return "b_" + digest.hexdigest()[:16]


def varying_keys(jobs: list[PlannedJob]) -> tuple[str, ...]:
    """The parameters whose value is not the same in every job (model first, prompt last)."""
    seen: dict[str, set[str]] = {}
    for job in jobs:
        fields = {"model": job.prepared.model, **job.prepared.arguments}
        for key in set(seen) | set(fields):
            seen.setdefault(key, set()).add(json.dumps(fields.get(key), sort_keys=True))
    keys = [key for key, values in seen.items() if len(values) > 1]
    order = ["model", "image_size", "guidance_scale", "num_inference_steps", "loras", "seed"]
    ranked = sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))
    if "prompt" in ranked:
        ranked.remove("prompt")
        ranked.append("prompt")
    return tuple(ranked)


def describe(prepared: PreparedJob, keys: tuple[str, ...]) -> str:
    """``flux-dev · guidance 3.5 · seed 2``: the given parameters of one job, short."""
    fields = {"model": prepared.model, **prepared.arguments}
    parts = []
    for key in keys:
        value = fields.get(key)
        if key == "model":
            parts.append(str(value))
        elif key == "prompt":
            text = str(value or "")
            parts.append(text if len(text) <= 40 else text[:39] + "…")
        else:
            parts.append(f"{SHORT_NAMES.get(key, key)} {_value_text(key, value)}")
    return " · ".join(parts)


def _value_text(key: str, value: Any) -> str:
    if value is None:
        return "default"
    if key == "loras" and isinstance(value, list):
        return " + ".join(
            f"{_short(str(item.get('path', '')))}:{item.get('scale', 1.0):g}" for item in value
        )
    if isinstance(value, dict) and {"width", "height"} <= set(value):
        return f"{value['width']}x{value['height']}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _short(path: str) -> str:
    name = Path(path.split("?")[0]).stem
    return name[:20] or "lora"


def _combined(errors: list[FieldError]) -> ValidationError:
    unique = list(dict.fromkeys(errors))
    shown = unique[:MAX_REPORTED_ERRORS]
    if len(unique) > len(shown):
        shown.append(FieldError("input", f"and {len(unique) - len(shown)} more problems"))
    return ValidationError(shown)
