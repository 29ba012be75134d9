"""Small builders shared by the store tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from falkit.store import JobRecord, JobStore, NewImage

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T")

BIG_SEED = 15860307465884635512  # a real Fal seed; larger than PostgreSQL's BIGINT


async def new_job(store: JobStore, prompt: str = "a lighthouse at dusk", **kw: Any) -> JobRecord:
    """A pending image job, as the service journals one before submitting."""
    arguments = kw.pop("arguments", {"prompt": prompt, "num_images": 1})
    values: dict[str, Any] = {
        "kind": "image",
        "model": "flux-schnell",
        "endpoint_id": "fal-ai/flux/schnell",
        "arguments": arguments,
        "estimated_cost": 0.003,
    }
    values.update(kw)
    return await store.create_job(**values)


async def on_connection(
    store: JobStore, fn: Callable[[Connection], T], *, write: bool = False
) -> T:
    """Run ``fn`` on one of the store's own connections (a reader's, or the writer's).

    For tests that look under the records: pragmas, the schema, raw rows. A write runs in the
    writer's group commit like any other operation.
    """
    if write:
        return await store._write(fn)
    return await store._read(fn)


def image(index: int = 0, *, job: str = "j") -> NewImage:
    return NewImage(
        index=index,
        url=f"https://v3.fal.media/files/{job}/{index}.png",
        local_path=f"/tmp/falkit/{job}_{index}.png",
        sha256=f"{index:064x}",
        size_bytes=1234 + index,
        width=1024,
        height=768,
        content_type="image/png",
        nsfw=index % 2 == 1,
    )


async def submit(store: JobStore, job_id: str, request_id: str | None = None) -> str:
    """Run the two journal steps around a submit; returns the request id used."""
    request_id = request_id or f"req-{job_id}"
    base = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}"
    await store.mark_submitting(job_id)
    await store.set_submitted(
        job_id,
        request_id=request_id,
        status_url=f"{base}/status",
        response_url=base,
        cancel_url=f"{base}/cancel",
    )
    return request_id


async def complete(
    store: JobStore, job_id: str, *, cost: float | None = 0.003, images: int = 1
) -> None:
    await store.complete_job(
        job_id,
        seed=BIG_SEED,
        cost_usd=cost,
        billable_units=1.0,
        timings={"inference": 0.42},
        output={"images": [], "has_nsfw_concepts": [False]},
        images=[image(i, job=job_id) for i in range(images)],
    )
