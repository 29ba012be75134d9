"""The service layer: FalService and what it returns.

Batch, training and engine modules load on first use, so ``falkit generate`` pays only for
what it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falkit.service.core import FalService
from falkit.service.results import GenerationResult, ResultImage
from falkit.service.sync import SyncFalService

if TYPE_CHECKING:
    from falkit.request import PreparedJob
    from falkit.service.batch import BatchResult
    from falkit.service.handle import JobHandle
    from falkit.service.training import TrainingResult

_LAZY = {
    "BatchResult": "falkit.service.batch",
    "JobHandle": "falkit.service.handle",
    "PreparedJob": "falkit.request",
    "TrainingResult": "falkit.service.training",
}

__all__ = [
    "BatchResult",
    "FalService",
    "GenerationResult",
    "JobHandle",
    "PreparedJob",
    "ResultImage",
    "SyncFalService",
    "TrainingResult",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'falkit.service' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
