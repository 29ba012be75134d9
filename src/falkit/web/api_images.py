"""Generation: start an image job, estimate one, and the model catalog (for forms).

A request takes the parameters of `falkit generate` under Fal's names; any other parameter
the model takes passes through to the catalog's strict check. Everything is checked before
anything is written or sent: bad input is a 422 naming each field, a spend cap that would be
passed a 402. LoRAs are library names or URLs: a path on the server's disk is refused, so an
API caller cannot make the server upload its files to Fal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from falkit.errors import FieldError, ValidationError
from falkit.request import MAX_PROMPT_CHARS, MAX_SEED
from falkit.web.errors import responses
from falkit.web.security import Authorized
from falkit.web.state import WebState, web_state
from falkit.web.views import job_links

if TYPE_CHECKING:
    from falkit.catalog import ModelSpec
    from falkit.request import ImageRequest
    from falkit.service import FalService

router = APIRouter(prefix="/api/v1", tags=["images"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
URL_PREFIXES = ("https://", "http://", "data:")


class ImageSizeBody(BaseModel):
    width: int = Field(ge=1, le=14142)
    height: int = Field(ge=1, le=14142)


class LoraBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096, description="Library name or https URL")
    scale: float = Field(1.0, ge=0, le=2)


class ImageBody(BaseModel):
    """`falkit generate`'s parameters under Fal's names; other model parameters pass through."""

    model_config = ConfigDict(extra="allow")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, max_length=200, description="Catalog name or endpoint id")
    image_size: str | ImageSizeBody | None = Field(
        None, description="Preset, WxH or {width, height}"
    )
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    num_images: int | None = None
    output_format: str | None = None
    loras: list[LoraBody | str] | None = Field(None, max_length=10)

    def params(self) -> dict[str, Any]:
        return {**self.model_dump(exclude_none=True), **(self.model_extra or {})}


class StartedOut(BaseModel):
    job_id: str
    status: str
    estimated_cost_usd: float | None
    links: dict[str, str]


class EstimateOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    endpoint_id: str
    arguments: dict[str, Any]
    estimated_cost_usd: float | None
    spend_cap: dict[str, float | None]


async def checked_request(service: FalService, body: ImageBody) -> ImageRequest:
    """The request built from the body, its LoRAs restricted to the library and URLs."""
    request = service.request(**body.params())
    store = await service.store() if request.loras else None
    bad = []
    for index, ref in enumerate(request.loras):
        if ref.path.startswith(URL_PREFIXES):
            continue
        if store is None or await store.get_lora(ref.path) is None:
            bad.append(FieldError(
                f"loras.{index}.path", f"{ref.path!r} is not a LoRA in the library",
                "a library name (GET /api/v1/loras) or an https URL",
            ))  # fmt: skip
    if bad:
        raise ValidationError(bad)
    return request


@router.post(
    "/images",
    status_code=202,
    response_model=StartedOut,
    responses=responses(401, 402, 403, 413, 422, 502, 503),
)
async def create_image(
    body: ImageBody, request: Request, response: Response, state: State
) -> StartedOut:
    """Start a generation; answers at once with the job and where to follow it."""
    service = state.service
    prepared, plan = await service.plan_image(await checked_request(service, body))
    handle = await service.start_prepared(prepared, plan=plan)
    links = job_links(request, handle.job_id)
    response.headers["Location"] = links["job"]
    return StartedOut(
        job_id=handle.job_id, status=handle.state,
        estimated_cost_usd=prepared.estimated_cost, links=links,
    )  # fmt: skip


@router.post("/estimate", response_model=EstimateOut, responses=responses(401, 403, 413, 422))
async def estimate(body: ImageBody, state: State) -> EstimateOut:
    """What a generation would send and cost; nothing is written or sent."""
    service = state.service
    prepared, _ = await service.plan_image(await checked_request(service, body))
    return EstimateOut(
        model=prepared.model, endpoint_id=prepared.endpoint_id, arguments=prepared.arguments,
        estimated_cost_usd=prepared.estimated_cost, spend_cap=service.budget.to_json(),
    )  # fmt: skip


class ModelOut(BaseModel):
    name: str
    endpoint_id: str
    use: str
    kind: str
    price: str
    takes_loras: bool
    defaults: dict[str, Any]
    input_schema: dict[str, Any] = Field(description="JSON Schema of the model's input: ranges")


@router.get("/models", response_model=list[ModelOut], responses=responses(401, 403))
async def list_models() -> list[ModelOut]:
    """The catalog, with each model's input schema (ranges, choices, defaults) for forms."""
    from falkit.catalog import MODELS

    return [_model(spec) for spec in MODELS.values()]


def _model(spec: ModelSpec) -> ModelOut:
    return ModelOut(
        name=spec.name, endpoint_id=spec.endpoint_id, use=spec.use, kind=spec.kind,
        price=spec.price.describe(), takes_loras=spec.takes_loras, defaults=spec.defaults(),
        input_schema=spec.input_model.model_json_schema(),
    )  # fmt: skip
