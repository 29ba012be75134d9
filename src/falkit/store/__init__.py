"""The library store: what falkit remembers about every job, image, LoRA, upload and batch.

``JobStore.open(url)`` opens SQLite (the default, under FALKIT_HOME) or PostgreSQL, migrating it
only when its schema is behind. The records are plain frozen dataclasses; importing them does
not import SQLAlchemy, and opening a SQLite store imports neither the ORM nor Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falkit.store.records import (
    BatchRecord,
    ImageRecord,
    JobRecord,
    JobStatus,
    LoraRecord,
    NewImage,
    NewJob,
)
from falkit.store.stats import StoreStats

if TYPE_CHECKING:
    from falkit.store.jobs import JobStore

__all__ = [
    "BatchRecord",
    "ImageRecord",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "LoraRecord",
    "NewImage",
    "NewJob",
    "StoreStats",
]


def __getattr__(name: str) -> Any:
    if name == "JobStore":
        from falkit.store.jobs import JobStore

        return JobStore
    raise AttributeError(f"module 'falkit.store' has no attribute {name!r}")
