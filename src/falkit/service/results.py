"""What the service hands back: results with everything a caller needs to find and trust them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falkit.store import JobRecord


@dataclass(frozen=True)
class ResultImage:
    """One image kept on disk."""

    path: Path
    url: str
    width: int
    height: int
    content_type: str
    sha256: str
    nsfw: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "url": self.url if not self.url.startswith("data:") else "data:…",
            "width": self.width,
            "height": self.height,
            "content_type": self.content_type,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class GenerationResult:
    """A finished generation: the job, Fal's request, the seed used, the images and the cost."""

    job_id: str
    request_id: str | None
    status: str
    model: str
    endpoint_id: str
    seed: int | None
    images: tuple[ResultImage, ...]
    estimated_cost: float | None
    cost_usd: float | None
    timings: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    copies: tuple[Path, ...] = ()
    record: JobRecord | None = field(default=None, repr=False, compare=False)
    """The journal record the result was made from (not part of the JSON form)."""

    @property
    def paths(self) -> list[Path]:
        return [img.path for img in self.images]

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "request_id": self.request_id,
            "status": self.status,
            "model": self.model,
            "endpoint_id": self.endpoint_id,
            "seed": self.seed,
            "images": [img.to_json() for img in self.images],
            "cost_usd": self.cost_usd,
            "estimated_cost_usd": self.estimated_cost,
            "timings": self.timings,
            "prompt": self.prompt,
        }

    @classmethod
    def from_record(cls, job: JobRecord) -> GenerationResult:
        images = tuple(
            ResultImage(
                path=Path(img.local_path),
                url=img.url,
                width=img.width,
                height=img.height,
                content_type=img.content_type,
                sha256=img.sha256,
                nsfw=img.nsfw,
            )
            for img in job.images
        )
        return cls(
            job_id=job.id,
            request_id=job.request_id,
            status=job.status,
            model=job.model,
            endpoint_id=job.endpoint_id,
            seed=job.seed,
            images=images,
            estimated_cost=job.estimated_cost,
            cost_usd=job.cost_usd,
            timings=dict(job.timings or {}),
            prompt=job.prompt,
            record=job,
        )
