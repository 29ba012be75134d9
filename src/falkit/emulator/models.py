"""What the emulated models do: resolve endpoint ids, validate input as Fal does, make outputs.

Catalog endpoints validate with the catalog's input model, leniently (unknown fields ignored,
as Fal's apps do) and with wire names (fast-sdxl takes ``format``). Other paths of a known image
app get a generic FLUX-like treatment; anything else is 404 like Fal's gateway.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict

from falkit.catalog import BY_ENDPOINT, MODELS, FluxDevInput, ModelSpec
from falkit.emulator import training
from falkit.emulator.render import RenderSpec, data_uri, render
from falkit.emulator.storage import FileStore, name_from_url
from falkit.types import image_dimensions

NAMESPACES = ("workflows", "comfy")
DEFAULT_STEPS = 28
MAX_STEP_LINES = 20


def app_of(endpoint_id: str) -> str:
    """owner/alias (with its namespace, if any) of an endpoint id; "" if it has none."""
    parts = endpoint_id.strip("/").split("/")
    size = 3 if parts[0] in NAMESPACES else 2
    return "/".join(parts[:size]) if len(parts) >= size and all(parts[:size]) else ""


IMAGE_APPS = frozenset(app_of(s.endpoint_id) for s in MODELS.values() if s.kind == "image")
KNOWN_APPS = IMAGE_APPS | {app_of(s.endpoint_id) for s in MODELS.values()}


class EndpointNotFound(Exception):
    """Fal's gateway would answer 404 with this detail."""


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint: its id, app, and catalog entry (None: generic image endpoint)."""

    endpoint_id: str
    app: str
    spec: ModelSpec | None

    @property
    def is_training(self) -> bool:
        return self.spec is not None and self.spec.kind == "training"


def resolve(endpoint_id: str) -> Endpoint:
    """The endpoint for an id, or EndpointNotFound with Fal's message."""
    endpoint_id = endpoint_id.strip("/")
    app = app_of(endpoint_id)
    spec = BY_ENDPOINT.get(endpoint_id)
    if spec is not None or app in IMAGE_APPS:
        return Endpoint(endpoint_id, app, spec)
    if app in KNOWN_APPS:
        raise EndpointNotFound(f"Path /{endpoint_id[len(app) + 1 :]} not found")
    alias = app.rsplit("/", 1)[-1] if app else endpoint_id
    raise EndpointNotFound(f"Application '{alias}' not found")


@dataclass
class Outcome:
    """How a job ended: the result's HTTP code and body, and the status's error fields."""

    status_code: int
    body: Any
    error: str | None = None
    error_type: str | None = None
    billable_units: float | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status_code == 200

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {"x-fal-request-id": request_id}
        if self.ok and self.billable_units is not None:
            headers["x-fal-billable-units"] = f"{self.billable_units:g}"
        body_type = self.body.get("error_type") if isinstance(self.body, dict) else None
        if body_type:
            headers["x-fal-error-type"] = str(body_type)
        return {**headers, **self.extra_headers}


def invalid(detail: list[dict[str, Any]]) -> Outcome:
    """A 422 with Fal's detail list; the status carries the first item's message and type."""
    first = detail[0] if detail else {"msg": "invalid input", "type": "validation_error"}
    return Outcome(422, {"detail": detail}, error=str(first["msg"]), error_type=str(first["type"]))


def failure(code: int, text: str, error_type: str) -> Outcome:
    """An infrastructure-style failure: flat detail plus error_type, like Fal's."""
    return Outcome(code, {"detail": text, "error_type": error_type}, text, error_type)


# ---- validation ----


@functools.cache
def _lenient(model: type[BaseModel]) -> type[BaseModel]:
    """The catalog model with unknown fields ignored, as Fal's apps treat them."""
    namespace = {"model_config": ConfigDict(extra="ignore"), "__module__": __name__}
    return cast(type[BaseModel], type(f"Emulated{model.__name__}", (model,), namespace))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _is_tag(part: Any) -> bool:
    """Union-member labels pydantic puts in error locations (not field names)."""
    return isinstance(part, str) and ("[" in part or part[:1].isupper() or "-" in part)


def fal_detail(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as Fal's 422 detail items: loc, msg, type, ctx, input, url."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not _is_tag(p)]
        if tuple(loc) in seen:
            continue
        seen.add(tuple(loc))
        item: dict[str, Any] = {"loc": ["body", *loc], "msg": err["msg"], "type": err["type"]}
        if err.get("ctx"):
            item["ctx"] = _jsonable(err["ctx"])
        item["input"] = _jsonable(err.get("input"))
        item["url"] = f"https://docs.fal.ai/errors/#{err['type']}"
        out.append(item)
    return out


def validate(endpoint: Endpoint, body: dict[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    """(clean params, None) or ({}, Fal's detail list)."""
    spec = endpoint.spec
    data = dict(body)
    renames = spec.wire_renames if spec else (("output_format", "format"),)
    for ours, theirs in renames:
        if spec is not None:
            data.pop(ours, None)  # the model does not know our name for it: Fal ignores it
        if theirs in data:
            data[ours] = data.pop(theirs)
    model = spec.input_model if spec else FluxDevInput
    try:
        parsed = _lenient(model).model_validate(data)
    except pydantic.ValidationError as exc:
        return {}, fal_detail(exc)
    return parsed.model_dump(), None


# ---- running ----


@dataclass
class RunContext:
    """What a model needs from the emulator: its store, its CDN base URL, its own hosts."""

    store: FileStore
    cdn_base: str
    hosts: frozenset[str] = field(default_factory=frozenset)
    plain_images: bool = False
    """Images are one cached placeholder per size and format, details in metadata."""

    def points_here(self, url: str) -> bool:
        """Whether ``url`` names this emulator: one of its hosts, or a loopback spelling of one
        (``localhost:8765`` for ``127.0.0.1:8765``); never another server on the machine."""
        parts = urlsplit(url)
        if parts.netloc in self.hosts:
            return True
        if parts.hostname not in training.LOOPBACK:
            return False
        try:
            port = parts.port
        except ValueError:
            return False
        own = (urlsplit(f"//{host}") for host in self.hosts)
        return any(p.hostname in training.LOOPBACK and p.port == port for p in own)

    def local_bytes(self, url: str) -> bytes | None:
        if not self.points_here(url):
            return None
        return self.store.data_of(name_from_url(url))


async def execute(
    ctx: RunContext, endpoint: Endpoint, params: dict[str, Any], took: float
) -> Outcome:
    """Run the model for already-validated params; ``took`` is the inference time to report."""
    if endpoint.is_training:
        return await _train(ctx, params)
    return await _generate(ctx, endpoint, params, took)


def _missing_loras(ctx: RunContext, loras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, lora in enumerate(loras):
        path = str(lora["path"])
        if ctx.points_here(path) and not ctx.store.has(name_from_url(path)):
            loc = ["body", "loras", i, "path"]
            out.append(training.download_error(path, "no such file on the emulator", loc))
    return out


def _default_size(endpoint: Endpoint) -> str:
    model = endpoint.spec.input_model if endpoint.spec else FluxDevInput
    return str(model.model_fields["image_size"].default)


async def _generate(
    ctx: RunContext, endpoint: Endpoint, params: dict[str, Any], took: float
) -> Outcome:
    missing = _missing_loras(ctx, params.get("loras") or [])
    if missing:
        return invalid(missing)
    seed = params.get("seed")
    seed = secrets.randbits(64) if seed is None else int(seed)
    width, height = image_dimensions(params.get("image_size"), _default_size(endpoint))
    count = int(params.get("num_images") or 1)
    loras = tuple(str(lora["path"]) for lora in params.get("loras") or [])
    fmt = "png" if params.get("output_format") == "png" else "jpeg"
    images = []
    for index in range(count):
        spec = RenderSpec(
            params["prompt"], seed, endpoint.endpoint_id, width, height, fmt, index, count, loras,
            plain=ctx.plain_images,
        )  # fmt: skip
        if params.get("sync_mode"):
            url = data_uri(await asyncio.to_thread(render, spec), spec.content_type)
        else:
            url = f"{ctx.cdn_base}/files/{ctx.store.put_recipe(spec)}"
        images.append(
            {"url": url, "width": width, "height": height, "content_type": spec.content_type}
        )
    body = {
        "images": images,
        "timings": {"inference": round(took, 4)},
        "seed": seed,
        "has_nsfw_concepts": [False] * count,
        "prompt": params["prompt"],
    }
    return Outcome(200, body, billable_units=billable_units(endpoint, width, height, count))


def billable_units(endpoint: Endpoint, width: int, height: int, count: int) -> float:
    """Units billed per the catalog's price rule: megapixels, images or runs."""
    unit = endpoint.spec.price.unit if endpoint.spec else "megapixel"
    if unit == "run":
        return 1.0
    if unit == "image":
        return float(count)
    megapixels = width * height / 1_000_000
    if endpoint.spec is not None and endpoint.spec.price.round_up:
        megapixels = math.ceil(megapixels)
    return round(megapixels * count, 6)


async def _train(ctx: RunContext, params: dict[str, Any]) -> Outcome:
    url = str(params["images_data_url"])
    try:
        archive = training.fetch_archive(url, ctx.local_bytes)
        images = training.check_archive(url, archive)
    except training.ArchiveError as exc:
        return invalid([exc.detail])
    digest = training.digest_of(archive)
    lora = training.make_lora(params.get("trigger_word"), int(params["steps"]), digest)
    config = training.training_config(params, images, digest)
    lora_name = ctx.store.put(lora, "application/octet-stream", "safetensors")
    config_name = ctx.store.put(config, "application/json", "json")
    body = {
        "diffusers_lora_file": {
            "url": f"{ctx.cdn_base}/files/{lora_name}",
            "content_type": "application/octet-stream",
            "file_name": "pytorch_lora_weights.safetensors",
            "file_size": len(lora),
        },
        "config_file": {
            "url": f"{ctx.cdn_base}/files/{config_name}",
            "content_type": "application/json",
            "file_name": "config.json",
            "file_size": len(config),
        },
    }
    return Outcome(200, body, billable_units=1.0)


def log_plan(
    endpoint: Endpoint, params: dict[str, Any], duration: float
) -> list[tuple[float, str]]:
    """(seconds after start, message) lines a running job shows: a preamble, then step k/N."""
    if endpoint.is_training:
        total = int(params.get("steps") or 1000)
        head = ["Preparing training data", "Starting LoRA training (emulated)"]
    else:
        total = int(params.get("num_inference_steps") or DEFAULT_STEPS)
        head = [f"Loading model {endpoint.endpoint_id} (emulator)", "Model loaded; generating"]
    lines = [(0.0, head[0]), (duration * 0.05, head[1])]
    steps = list(range(1, total + 1))
    if total > MAX_STEP_LINES:
        steps = sorted(
            {math.ceil(total * j / MAX_STEP_LINES) for j in range(1, MAX_STEP_LINES + 1)}
        )
    for j, step in enumerate(steps, start=1):
        lines.append((duration * (0.1 + 0.85 * j / len(steps)), f"step {step}/{total}"))
    return lines
