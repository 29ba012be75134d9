"""What the app holds for its routers: the service, the options and the server's own state.

Routers (API modules now, page modules later) take it with ``Depends(web_state)``; nothing in
it is global, so tests can run several apps side by side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from falkit.web.options import WebOptions

if TYPE_CHECKING:
    from falkit.service import FalService
    from falkit.web.batches import BatchRuns
    from falkit.web.security import Sessions
    from falkit.web.webhooks import WebhookReceiver


@dataclass
class WebState:
    service: FalService
    options: WebOptions
    sessions: Sessions
    batches: BatchRuns
    webhooks: WebhookReceiver
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("falkit.web"))
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for page modules added later (templates, caches)."""

    @property
    def images_root(self) -> Path:
        """The library's images: the only files ``/images/...`` serves."""
        return self.service.settings.home / "images"


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state
