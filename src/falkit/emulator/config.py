"""How one emulator instance behaves, and the counters it keeps for tests to assert on."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EmulatorConfig:
    """Behaviour knobs; every field is read when it is used, so tests may change them live."""

    latency: float = 1.0
    """Seconds a job spends IN_PROGRESS (and a sync run takes)."""
    concurrency: int = 2
    """Account limit: at most this many jobs IN_PROGRESS; the rest wait IN_QUEUE."""
    training_seconds: float = 3.0
    """How long a LoRA training job runs."""
    plain_images: bool = False
    """Serve one cached placeholder per size and format, with the prompt, model and seed in
    the file's metadata (JPEG comment, PNG iTXt) instead of drawn: near-free image downloads
    for load tests. The bytes still differ per (prompt, seed, model, index)."""
    api_keys: set[str] | None = field(default=None, repr=False)
    """Accepted keys; None accepts any non-empty key. Never shown in reprs."""
    log_window: int | None = None
    """None: status logs are the full list; N: only the last N lines (a moving window)."""
    ping_interval: float = 5.0
    """Seconds between ``: ping`` comments on idle SSE streams (must stay under 15 s)."""
    webhook_retry_delays: tuple[float, ...] = (0.2, 1.0, 3.0)
    """Waits before each retry of a failed webhook delivery."""
    user_id: str = "emulator-user"
    """The account id signed into webhooks (X-Fal-Webhook-User-Id)."""
    data_dir: Path | None = None
    """Keep jobs and files here across restarts (``falkit emulator --data``); None: memory."""

    def __post_init__(self) -> None:
        if not (0 <= self.latency < math.inf and 0 <= self.training_seconds < math.inf):
            raise ValueError("latency and training_seconds must be finite and >= 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not 0 < self.ping_interval < 15:
            raise ValueError("ping_interval must be between 0 and 15 seconds")
        if self.log_window is not None and self.log_window < 1:
            raise ValueError("log_window must be None or >= 1")


@dataclass
class Stats:
    """What the emulator saw: requests per route name, submits per endpoint, webhook deliveries."""

    submits: int = 0
    submits_by_endpoint: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    webhook_attempts: int = 0
    webhooks_delivered: int = 0
    webhooks_failed: int = 0

    def count(self, route: str) -> None:
        self.requests[route] += 1

    def count_submit(self, endpoint_id: str) -> None:
        self.submits += 1
        self.submits_by_endpoint[endpoint_id] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data (what ``GET /_emulator/stats`` answers)."""
        return {
            "submits": self.submits,
            "submits_by_endpoint": dict(self.submits_by_endpoint),
            "requests": dict(self.requests),
            "webhooks": {
                "attempts": self.webhook_attempts,
                "delivered": self.webhooks_delivered,
                "failed": self.webhooks_failed,
            },
        }

    def reset(self) -> None:
        """Start counting from zero (jobs and files are kept)."""
        self.submits = 0
        self.submits_by_endpoint.clear()
        self.requests.clear()
        self.webhook_attempts = self.webhooks_delivered = self.webhooks_failed = 0
