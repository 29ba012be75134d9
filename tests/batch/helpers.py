"""Helpers for batch tests: reading a batch folder back and checking it against the disk."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx


def manifest(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def manifest_csv(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def submitted_pairs(emu: Any) -> list[tuple[str, Any]]:
    """(prompt, seed) of every job the emulator was sent, in the order it got them."""
    return [(job.params.get("prompt"), job.params.get("seed")) for job in emu.engine.jobs.values()]


class Overbilling(httpx.AsyncBaseTransport):
    """A network path on which Fal bills ``factor`` times the published price (it happens:
    prices change, estimates are estimates); everything else passes through untouched."""

    def __init__(self, factor: float) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.factor = factor

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        units = response.headers.get("x-fal-billable-units")
        if units is not None:
            response.headers["x-fal-billable-units"] = f"{float(units) * self.factor:g}"
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
