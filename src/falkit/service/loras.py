"""Resolving LoRA references: URLs pass through (names and local files: the LoRA issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falkit.service.core import FalService


async def resolve_loras(service: FalService, loras: Any) -> Any:
    """LoRA references as Fal takes them."""
    return loras
