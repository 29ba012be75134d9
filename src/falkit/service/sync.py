"""A small blocking facade over FalService for scripts and notebooks-free code."""

from __future__ import annotations

import asyncio
from typing import Any

from falkit.config import Settings
from falkit.service.core import FalService
from falkit.service.results import GenerationResult


class SyncFalService:
    """FalService for code that is not async: each call runs on one private event loop."""

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self.service = FalService(settings, **kwargs)

    @property
    def enabled(self) -> bool:
        return self.service.enabled

    def generate_image(self, prompt: str, **params: Any) -> GenerationResult:
        return self._runner.run(self.service.generate_image(prompt, **params))

    def resume(self) -> list[Any]:
        return self._runner.run(self.service.resume())

    def close(self) -> None:
        self._runner.run(self.service.aclose())
        self._runner.close()

    def __enter__(self) -> SyncFalService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
