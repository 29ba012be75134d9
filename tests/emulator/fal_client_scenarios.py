"""Scenarios for the official fal-client against the emulator; run in a subprocess.

fal-client reads FAL_RUN_HOST / FAL_QUEUE_RUN_HOST when imported and hard-codes https, so the
test starts this script with those variables, FAL_KEY and SSL_CERT_FILE set. Only REST_URL and
CDN_URL are assigned here (from EMU_REST_URL / EMU_CDN_URL). Prints one JSON object: each
scenario's observations, or its error.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import fal_client
import fal_client.client
import httpx
from PIL import Image

fal_client.client.REST_URL = os.environ["EMU_REST_URL"]
fal_client.client.CDN_URL = os.environ["EMU_CDN_URL"]


def _image_info(url: str) -> dict[str, Any]:
    """Fetch an output URL (trusting SSL_CERT_FILE like the client does) and decode it."""
    response = httpx.get(url)
    image = Image.open(io.BytesIO(response.content))
    return {"status": response.status_code, "size": list(image.size), "format": image.format}


def _describe(update: Any) -> dict[str, Any]:
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
        on_queue_update=lambda update: updates.append(_describe(update)),
    )
    blocker.get()
    return {
        "updates": updates,
        "enqueued": enqueued,
        "result": result,
        "image": _image_info(result["images"][0]["url"]),
    }


def submit_status_result() -> dict[str, Any]:
    handle = fal_client.submit("fal-ai/flux/dev", arguments={"prompt": "boats", "seed": 5})
    first = _describe(handle.status(with_logs=True))
    output = handle.get()
    again = fal_client.SyncClient().get_handle("fal-ai/flux/dev", handle.request_id)
    by_id = fal_client.status("fal-ai/flux/dev", handle.request_id, with_logs=True)
    return {
        "request_id": handle.request_id,
        "status_url": handle.status_url,
        "first_status": first,
        "final_status": _describe(by_id),
        "result": output,
        "result_by_id": fal_client.result("fal-ai/flux/dev", handle.request_id),
        "reattached": again.get(),
    }


def cancel() -> dict[str, Any]:
    blocker = fal_client.submit("fal-ai/flux/schnell", arguments={"prompt": "blocker"})
    queued = fal_client.submit("fal-ai/flux/dev", arguments={"prompt": "never"})
    queued.cancel()
    after = _describe(queued.status())
    blocker.get()
    try:
        blocker.cancel()
        finished_cancel = None
    except fal_client.FalClientHTTPError as exc:
        finished_cancel = exc.status_code
    return {"after": after, "cancel_finished_code": finished_cancel}


def run() -> dict[str, Any]:
    body = {"prompt": "a dog", "format": "png", "image_size": {"width": 256, "height": 192}}
    output = fal_client.run("fal-ai/fast-sdxl", arguments=body)
    return {"result": output, "image": _image_info(output["images"][0]["url"])}


def invalid_input() -> dict[str, Any]:
    try:
        fal_client.subscribe(
            "fal-ai/flux/schnell", arguments={"prompt": "x", "num_inference_steps": 40}
        )
    except fal_client.FalClientHTTPError as exc:
        return {"status_code": exc.status_code, "message": exc.message}
    return {"status_code": None}


def upload() -> dict[str, Any]:
    data = os.urandom(3000)
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
        handle.write(data)
    cdn_url = fal_client.upload_file(handle.name)
    legacy_url = fal_client.upload(data, "application/octet-stream", repository="fal")
    return {
        "cdn_url": cdn_url,
        "cdn_same": httpx.get(cdn_url).content == data,
        "legacy_url": legacy_url,
        "legacy_same": httpx.get(legacy_url).content == data,
    }


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f for f in (subscribe, submit_status_result, cancel, run, invalid_input, upload)
}


def main() -> None:
    out: dict[str, Any] = {}
    for name, scenario in SCENARIOS.items():
        try:
            out[name] = scenario()
        except Exception:
            out[name] = {"crashed": traceback.format_exc()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
