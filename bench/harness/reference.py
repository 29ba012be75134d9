"""The yardstick: a plain asyncio + httpx loop doing the same HTTP work as falkit, no journal.

For each of ``n`` jobs, at most ``concurrency`` at once: submit to the queue, poll the status
URL every ``poll_interval`` seconds until COMPLETED, fetch the result, download every image to
``out_dir``. Retries only where correctness needs them: reads (status, result, images) on
transport errors, 429 and 5xx; a submit only when it certainly did not reach the server
(connection refused, 429, a 503 without a request id), so no job is submitted twice.

Each worker holds at most one connection; workers share httpx clients of at most ``pool``
connections each, because httpcore's pool scans its connections on every request (quadratically
once many are idle), which makes one client with 5,000 connections spend milliseconds of CPU per
request. The clients share one SSL context (building one costs ~30 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from falkit.config import EMULATOR_KEY

DEFAULT_KEY = EMULATOR_KEY
MAX_ATTEMPTS = 8
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
Arguments = Mapping[str, Any] | Callable[[int], Mapping[str, Any]]


@dataclass
class ReferenceResult:
    """What the reference client did: wall time, jobs completed/failed, HTTP requests sent."""

    wall_seconds: float
    completed: int
    failed: int
    requests: int
    """Every HTTP request sent, retries included."""
    images: int
    bytes_downloaded: int
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    """submit / status / result / image."""
    errors: list[str] = field(default_factory=list)
    """One line per failed job (the first 20)."""

    @property
    def requests_per_job(self) -> float:
        return self.requests / max(1, self.completed + self.failed)


class _Client:
    def __init__(self, http: httpx.AsyncClient, auth: dict[str, str]) -> None:
        self.http = http
        self.auth = auth
        self.counts: Counter[str] = Counter()
        self.bytes = 0

    async def send(
        self, kind: str, method: str, url: str, *, body: Any = None, auth: bool = True
    ) -> httpx.Response:
        """One request, retried as its kind allows (see the module docstring)."""
        submit = kind == "submit"
        headers = self.auth if auth else None
        for attempt in range(MAX_ATTEMPTS):
            last = attempt == MAX_ATTEMPTS - 1
            self.counts[kind] += 1
            try:
                response = await self.http.request(method, url, json=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if last:
                    raise
            except httpx.TransportError:
                if submit or last:  # a submit may have reached the server: never resend it
                    raise
            else:
                code = response.status_code
                retry = code == 429 or (
                    code >= 500 and (not submit or "x-fal-request-id" not in response.headers)
                )
                if not retry or last:
                    return response
                after = response.headers.get("retry-after")
                if after is not None:
                    try:
                        await asyncio.sleep(min(float(after), 10.0))
                        continue
                    except ValueError:
                        pass
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")


async def _job(
    client: _Client,
    base_url: str,
    endpoint: str,
    index: int,
    body: Mapping[str, Any],
    poll_interval: float,
    out_dir: Path,
) -> int:
    """Run one job to its files; the number of images written (raises on failure)."""
    submitted = await client.send("submit", "POST", f"{base_url}/queue/{endpoint}", body=body)
    submitted.raise_for_status()
    handle = submitted.json()
    while True:
        await asyncio.sleep(poll_interval)
        polled = await client.send("status", "GET", handle["status_url"])
        if polled.status_code not in (200, 202):
            polled.raise_for_status()
        if polled.json().get("status") == "COMPLETED":
            break
    result = await client.send("result", "GET", handle["response_url"])
    if result.status_code != 200:
        raise RuntimeError(f"result {result.status_code}: {result.text[:200]}")
    images = result.json().get("images") or []
    for k, image in enumerate(images):
        got = await client.send("image", "GET", image["url"], auth=False)
        got.raise_for_status()
        content_type = got.headers.get("content-type", "").split(";")[0]
        path = out_dir / f"{index:06d}-{k}.{EXTENSIONS.get(content_type, 'bin')}"
        path.write_bytes(got.content)
        client.bytes += len(got.content)
    return len(images)


def _default_arguments(index: int) -> dict[str, Any]:
    return {"prompt": f"reference job {index}", "seed": index}


async def run_reference(
    base_url: str,
    n: int,
    concurrency: int,
    *,
    poll_interval: float = 0.1,
    endpoint: str = "fal-ai/flux/schnell",
    arguments: Arguments | None = None,
    out_dir: str | Path,
    api_key: str = DEFAULT_KEY,
    timeout: float = 120.0,
    pool: int = 16,
) -> ReferenceResult:
    """Run ``n`` jobs through the Fal queue at ``base_url`` (``{base}/queue/{endpoint}``).

    ``arguments`` is each job's input: a mapping used for every job, or a function of the job's
    index (default: ``{"prompt": f"reference job {i}", "seed": i}``, so no two images are the
    same). Images are written to ``out_dir`` as ``{index:06d}-{k}.{ext}``.
    """
    base_url = base_url.rstrip("/")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    make = arguments if callable(arguments) else None
    fixed = arguments if arguments is not None and not callable(arguments) else None
    workers = max(1, min(concurrency, n))
    shards = -(-workers // max(1, pool))
    per_client = -(-workers // shards)
    limits = httpx.Limits(
        max_connections=per_client, max_keepalive_connections=per_client, keepalive_expiry=30.0
    )
    tls = httpx.create_ssl_context()
    indices = iter(range(n))
    completed = failed = images = 0
    errors: list[str] = []
    auth = {"Authorization": f"Key {api_key}"}

    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(shards):
            http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout), verify=tls)
            clients.append(_Client(await stack.enter_async_context(http), auth))

        async def worker(client: _Client) -> None:
            nonlocal completed, failed, images
            for index in indices:
                if make is not None:
                    body = make(index)
                else:
                    body = fixed if fixed is not None else _default_arguments(index)
                try:
                    written = await _job(
                        client, base_url, endpoint, index, body, poll_interval, folder
                    )
                except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
                    failed += 1
                    if len(errors) < 20:
                        errors.append(f"job {index}: {type(exc).__name__}: {exc}")
                else:
                    completed += 1
                    images += written

        started = time.perf_counter()
        await asyncio.gather(*(worker(clients[i % shards]) for i in range(workers)))
        wall = time.perf_counter() - started
    counts: Counter[str] = sum((client.counts for client in clients), Counter())

    return ReferenceResult(
        wall_seconds=wall,
        completed=completed,
        failed=failed,
        requests=sum(counts.values()),
        images=images,
        bytes_downloaded=sum(client.bytes for client in clients),
        requests_by_kind=dict(counts),
        errors=errors,
    )
