"""The service layer: FalService and what it returns."""

from falkit.service.batch import BatchResult
from falkit.service.core import FalService
from falkit.service.results import GenerationResult, PreparedJob, ResultImage
from falkit.service.sync import SyncFalService

__all__ = [
    "BatchResult",
    "FalService",
    "GenerationResult",
    "PreparedJob",
    "ResultImage",
    "SyncFalService",
]
