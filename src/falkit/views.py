"""JSON views of library records, one shape for every front end (CLI --json, MCP answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falkit.store import JobRecord, LoraRecord


def job_json(job: JobRecord) -> dict[str, Any]:
    """A job's facts: ids, status, model, prompt, seed, costs, error and its images."""
    return {
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "model": job.model,
        "endpoint_id": job.endpoint_id,
        "request_id": job.request_id,
        "prompt": job.prompt,
        "seed": job.seed,
        "estimated_cost_usd": job.estimated_cost,
        "cost_usd": job.cost_usd,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "arguments": job.arguments,
        "images": [
            {
                "path": img.local_path,
                "url": img.url,
                "width": img.width,
                "height": img.height,
                "content_type": img.content_type,
                "sha256": img.sha256,
            }
            for img in job.images
        ],
    }


def lora_json(record: LoraRecord) -> dict[str, Any]:
    """A registered LoRA: name, trigger word, weights URL and local copy, origin."""
    return {
        "name": record.name,
        "trigger_word": record.trigger_word,
        "url": record.url,
        "config_url": record.config_url,
        "local_path": record.local_path,
        "job_id": record.job_id,
        "params": record.params,
        "created_at": record.created_at.isoformat(),
    }
