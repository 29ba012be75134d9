"""The service layer: FalService and what it returns."""

from falkit.service.core import FalService
from falkit.service.results import GenerationResult, PreparedJob, ResultImage
from falkit.service.sync import SyncFalService

__all__ = ["FalService", "GenerationResult", "PreparedJob", "ResultImage", "SyncFalService"]
