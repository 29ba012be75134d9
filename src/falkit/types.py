"""Wire and domain types shared by every layer.

Request-side models are strict (unknown fields are errors); response-side models are lenient
(new fields from Fal are kept). Statuses and progress events are small frozen dataclasses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
ImagePreset = Literal[
    "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"
]
MAX_SIDE = 14142
_WXH = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class ImageSize(BaseModel):
    """A custom image size in pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    width: int = Field(gt=0, le=MAX_SIDE, description="Width in pixels")
    height: int = Field(gt=0, le=MAX_SIDE, description="Height in pixels")


def parse_image_size(value: str | ImageSize | dict[str, Any]) -> str | ImageSize:
    """A preset name, "WxH", a dict or an ImageSize; presets stay names (Fal takes them)."""
    if isinstance(value, ImageSize):
        return value
    if isinstance(value, dict):
        return ImageSize.model_validate(value)
    if value in IMAGE_SIZE_PRESETS:
        return value
    match = _WXH.match(value)
    if match:
        return ImageSize(width=int(match.group(1)), height=int(match.group(2)))
    return value  # left for the model's validation to reject with the allowed values


def image_dimensions(
    value: str | ImageSize | dict[str, Any] | None, default: str
) -> tuple[int, int]:
    """Width and height in pixels of a size given in any accepted form."""
    size = parse_image_size(value if value is not None else default)
    if isinstance(size, ImageSize):
        return size.width, size.height
    return IMAGE_SIZE_PRESETS[size]


class LoraWeight(BaseModel):
    """A LoRA to apply: a URL (or path Fal can read) of a .safetensors file and its strength."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    path: str = Field(min_length=1, description="URL of the LoRA .safetensors file")
    scale: float = Field(
        1.0, ge=0.0, le=2.0, description="Strength, 0 to 2 (0.6 to 1.0 is the usual range)"
    )


class OutputImage(BaseModel):
    """One image in a model's output."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    url: str
    width: int | None = None
    height: int | None = None
    content_type: str = "image/jpeg"


class OutputFile(BaseModel):
    """A file in a model's output (e.g. trained LoRA weights)."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None


# ---- queue statuses (Fal's three; failures are Completed with an error) ----


@dataclass(frozen=True)
class LogEntry:
    """One log line from a running job."""

    message: str
    timestamp: str = ""
    level: str = "INFO"
    source: str = "USER"

    @property
    def key(self) -> tuple[str, str]:
        """Identity within Fal's moving log window."""
        return (self.timestamp, self.message)


@dataclass(frozen=True)
class Queued:
    """Waiting in Fal's queue; position is 0-based."""

    position: int
    request_id: str = ""


@dataclass(frozen=True)
class InProgress:
    """Running; logs holds the lines not seen before (when logs were asked for)."""

    logs: tuple[LogEntry, ...] = ()
    request_id: str = ""


@dataclass(frozen=True)
class Completed:
    """Finished; error and error_type are set when the job failed."""

    logs: tuple[LogEntry, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    request_id: str = ""

    @property
    def failed(self) -> bool:
        return self.error is not None


Status = Queued | InProgress | Completed


@dataclass(frozen=True)
class RequestHandle:
    """Where a submitted request lives; enough to reattach to it later."""

    endpoint_id: str
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    queue_position: int | None = None  # as submit answered; not known when reattaching


@dataclass(frozen=True)
class FalResponse:
    """A model's output with what Fal's response headers told us."""

    data: dict[str, Any]
    request_id: str | None = None
    billable_units: float | None = None
