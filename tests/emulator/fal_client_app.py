"""An ordinary fal-client app, unchanged: nothing patched, configured only by the environment.

The test runs it with nothing but PATH, HOME and the four variables `falkit emulator --tls`
prints (FAL_KEY, FAL_RUN_HOST, FAL_QUEUE_RUN_HOST, SSL_CERT_FILE). It prints one JSON object:
what each part of the app saw, or its traceback.
"""

from __future__ import annotations

import io
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import fal_client
import httpx
from PIL import Image


def image_info(url: str) -> dict[str, Any]:
    """Download an output file as any app would (httpx trusts SSL_CERT_FILE) and decode it."""
    response = httpx.get(url)
    image = Image.open(io.BytesIO(response.content))
    return {"status": response.status_code, "size": list(image.size), "format": image.format}


def describe(update: Any) -> dict[str, Any]:
    kind = type(update).__name__
    if isinstance(update, fal_client.Queued):
        return {"type": kind, "position": update.position}
    if isinstance(update, fal_client.InProgress):
        return {"type": kind, "logs": [entry["message"] for entry in update.logs or []]}
    if isinstance(update, fal_client.Completed):
        logs = [entry["message"] for entry in update.logs or []]
        return {"type": kind, "logs": logs, "metrics": update.metrics, "error": update.error}
    return {"type": kind}


def subscribe() -> dict[str, Any]:
    blocker = fal_client.submit("fal-ai/flux/schnell", arguments={"prompt": "blocker"})
    updates: list[dict[str, Any]] = []
    enqueued: list[str] = []
    result = fal_client.subscribe(
        "fal-ai/flux/dev",
        arguments={"prompt": "a lighthouse", "image_size": "square", "num_inference_steps": 5},
        with_logs=True,
        on_enqueue=enqueued.append,
        on_queue_update=lambda update: updates.append(describe(update)),
    )
    blocker.get()
    image = image_info(result["images"][0]["url"])
    return {"updates": updates, "enqueued": enqueued, "result": result, "image": image}


def submit_status_result() -> dict[str, Any]:
    handle = fal_client.submit("fal-ai/flux/dev", arguments={"prompt": "boats", "seed": 5})
    first = describe(handle.status(with_logs=True))
    output = handle.get()
    return {
        "request_id": handle.request_id,
        "status_url": handle.status_url,
        "first_status": first,
        "final_status": describe(
            fal_client.status("fal-ai/flux/dev", handle.request_id, with_logs=True)
        ),
        "result": output,
        "result_by_id": fal_client.result("fal-ai/flux/dev", handle.request_id),
    }


def cancel() -> dict[str, Any]:
    blocker = fal_client.submit("fal-ai/flux/schnell", arguments={"prompt": "blocker"})
    queued = fal_client.submit("fal-ai/flux/dev", arguments={"prompt": "never"})
    queued.cancel()
    after = describe(queued.status())
    blocker.get()
    try:
        blocker.cancel()
        finished_code = None
    except fal_client.FalClientHTTPError as exc:
        finished_code = exc.status_code
    return {"after": after, "cancel_finished_code": finished_code}


def run() -> dict[str, Any]:
    body = {"prompt": "a dog", "format": "png", "image_size": {"width": 256, "height": 192}}
    output = fal_client.run("fal-ai/fast-sdxl", arguments=body)
    return {"result": output, "image": image_info(output["images"][0]["url"])}


PARTS: dict[str, Callable[[], dict[str, Any]]] = {
    part.__name__: part for part in (subscribe, submit_status_result, cancel, run)
}


def main() -> None:
    seen: dict[str, Any] = {}
    for name, part in PARTS.items():
        try:
            seen[name] = part()
        except Exception:
            seen[name] = {"crashed": traceback.format_exc()}
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
