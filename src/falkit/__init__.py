"""falkit: generate images with Fal.ai, keep every image with its provenance.

Nothing is imported eagerly: ``import falkit`` stays fast, names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "FalService": "falkit.service",
    "SyncFalService": "falkit.service.sync",
    "JobHandle": "falkit.service.handle",
    "GenerationResult": "falkit.service.results",
    "ResultImage": "falkit.service.results",
    "TrainingResult": "falkit.service.training",
    "BatchResult": "falkit.service.batch",
    "ImageRequest": "falkit.request",
    "LoraRef": "falkit.request",
    "PreparedJob": "falkit.request",
    "JobRecord": "falkit.store.records",
    "ImageRecord": "falkit.store.records",
    "LoraRecord": "falkit.store.records",
    "Settings": "falkit.config",
    "load_settings": "falkit.config",
    "MODELS": "falkit.catalog",
    "FalkitError": "falkit.errors",
    "ServiceDisabledError": "falkit.errors",
    "ValidationError": "falkit.errors",
    "JobFailedError": "falkit.errors",
    "JobCancelledError": "falkit.errors",
    "BudgetExceededError": "falkit.errors",
    "FalClient": "falkit.client",
    "Event": "falkit.events",
    "QueuedEvent": "falkit.events",
    "StartedEvent": "falkit.events",
    "LogEvent": "falkit.events",
    "StepEvent": "falkit.events",
    "NoteEvent": "falkit.events",
    "DownloadingEvent": "falkit.events",
    "CompletedEvent": "falkit.events",
    "FailedEvent": "falkit.events",
    "CancelledEvent": "falkit.events",
    "BatchProgressEvent": "falkit.events",
    "ProgressEvent": "falkit.events",
}
__all__ = [
    "MODELS",
    "BatchProgressEvent",
    "BatchResult",
    "BudgetExceededError",
    "CancelledEvent",
    "CompletedEvent",
    "DownloadingEvent",
    "Event",
    "FailedEvent",
    "FalClient",
    "FalService",
    "FalkitError",
    "GenerationResult",
    "ImageRecord",
    "ImageRequest",
    "JobCancelledError",
    "JobFailedError",
    "JobHandle",
    "JobRecord",
    "LogEvent",
    "LoraRecord",
    "LoraRef",
    "NoteEvent",
    "PreparedJob",
    "ProgressEvent",
    "QueuedEvent",
    "ResultImage",
    "ServiceDisabledError",
    "Settings",
    "StartedEvent",
    "StepEvent",
    "SyncFalService",
    "TrainingResult",
    "ValidationError",
    "__version__",
    "load_settings",
]

if TYPE_CHECKING:
    from falkit.catalog import MODELS
    from falkit.client import FalClient
    from falkit.config import Settings, load_settings
    from falkit.errors import (
        BudgetExceededError,
        FalkitError,
        JobCancelledError,
        JobFailedError,
        ServiceDisabledError,
        ValidationError,
    )
    from falkit.events import (
        BatchProgressEvent,
        CancelledEvent,
        CompletedEvent,
        DownloadingEvent,
        Event,
        FailedEvent,
        LogEvent,
        NoteEvent,
        ProgressEvent,
        QueuedEvent,
        StartedEvent,
        StepEvent,
    )
    from falkit.request import ImageRequest, LoraRef, PreparedJob
    from falkit.service import FalService
    from falkit.service.batch import BatchResult
    from falkit.service.handle import JobHandle
    from falkit.service.results import GenerationResult, ResultImage
    from falkit.service.sync import SyncFalService
    from falkit.service.training import TrainingResult
    from falkit.store.records import ImageRecord, JobRecord, LoraRecord


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'falkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
