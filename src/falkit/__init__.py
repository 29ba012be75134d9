"""falkit: generate images with Fal.ai, keep every image with its provenance.

Nothing is imported eagerly: ``import falkit`` stays fast, names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "FalService": "falkit.service",
    "Settings": "falkit.config",
    "load_settings": "falkit.config",
    "MODELS": "falkit.catalog",
    "FalkitError": "falkit.errors",
    "ServiceDisabledError": "falkit.errors",
    "ValidationError": "falkit.errors",
    "JobFailedError": "falkit.errors",
    "FalClient": "falkit.client",
}
__all__ = [
    "MODELS",
    "FalClient",
    "FalService",
    "FalkitError",
    "JobFailedError",
    "ServiceDisabledError",
    "Settings",
    "ValidationError",
    "__version__",
    "load_settings",
]

if TYPE_CHECKING:
    from falkit.catalog import MODELS
    from falkit.client import FalClient
    from falkit.config import Settings, load_settings
    from falkit.errors import FalkitError, JobFailedError, ServiceDisabledError, ValidationError
    from falkit.service import FalService


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'falkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
