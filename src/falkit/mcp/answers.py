"""The structured content of each tool's answer, published as the tool's output schema.

Programs read these; a model reads the text. The SDK checks every answer against its schema
before sending it (and the official client checks again), so these types are the contract.
Objects stay open (new fields may appear); fields a kind of answer lacks are optional.
"""

from __future__ import annotations

from typing import Any, NotRequired, Required

from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from 3.12


class ImageView(TypedDict):
    """One kept image: the file on disk, its MCP resource, and Fal's (expiring) URL."""

    path: str
    url: str
    width: int
    height: int
    content_type: str
    sha256: str
    resource_uri: NotRequired[str]


class JobFacts(TypedDict, total=False):
    """A job as the library knows it."""

    job_id: Required[str]
    status: Required[str]
    kind: str
    model: str
    endpoint_id: str
    request_id: str | None
    prompt: str | None
    seed: int | None
    estimated_cost_usd: float | None
    cost_usd: float | None
    error: str | None
    created_at: str
    completed_at: str | None
    arguments: dict[str, Any]
    images: list[ImageView]


class JobAnswer(JobFacts, total=False):
    """A job's answer: done with its images (or LoRA), ended, or still running."""

    done: Required[bool]
    progress: str | None
    notes: list[str]
    timings: dict[str, Any]
    name: str | None
    trigger_word: str | None
    url: str
    config_url: str | None
    local_path: str
    params: dict[str, Any]


class EstimateAnswer(TypedDict):
    """What a generation would send and cost; nothing was sent."""

    model: str
    endpoint_id: str
    kind: str
    arguments: dict[str, Any]
    estimated_cost: float | None
    cap_usd: float | None
    spent_usd: NotRequired[float]
    fits_cap: NotRequired[bool]


class ModelView(TypedDict):
    """A catalog model."""

    name: str
    endpoint_id: str
    use: str
    kind: str
    price: str
    takes_loras: bool
    defaults: dict[str, Any]


class ModelsAnswer(TypedDict):
    models: list[ModelView]


class JobsAnswer(TypedDict):
    jobs: list[JobFacts]


class CancelAnswer(TypedDict):
    job_id: str
    outcome: str


class LoraView(TypedDict):
    """A LoRA in the library."""

    name: str
    trigger_word: str | None
    url: str
    config_url: str | None
    local_path: str | None
    job_id: str | None
    params: dict[str, Any]
    created_at: str


class LorasAnswer(TypedDict):
    loras: list[LoraView]
