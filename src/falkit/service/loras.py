"""Resolving LoRA references: URLs pass through (names and local files: the LoRA issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.service.progress import ProgressCallback


async def resolve_loras(
    service: FalService, prompt: str, loras: Any, on_progress: ProgressCallback | None
) -> tuple[str, Any]:
    """The prompt and the LoRAs as Fal takes them."""
    return prompt, loras
