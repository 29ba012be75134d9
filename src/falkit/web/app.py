"""The web service's app: the API routers over one FalService, error shapes, limits, headers.

``create_app(service, options)`` builds it; `falkit serve` runs it under uvicorn. Each part is
a router of its own module (session, images, jobs, events, LoRAs, batches, files, webhooks);
pages are added the same way, as routers passed in ``routers`` (they share ``WebState`` through
``Depends(web_state)`` and the API's gate through ``Depends(authorized)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from falkit.web import (
    api_batches,
    api_images,
    api_jobs,
    api_library,
    api_loras,
    errors,
    files,
    security,
    sse,
    webhooks,
)
from falkit.web.batches import BatchRuns
from falkit.web.limits import BodyLimit
from falkit.web.options import WebOptions
from falkit.web.security import Sessions
from falkit.web.state import WebState
from falkit.web.webhooks import WebhookReceiver

if TYPE_CHECKING:
    from falkit.service import FalService

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
API_ROUTERS = (
    security.router,
    api_images.router,
    api_jobs.router,
    api_library.router,
    sse.router,
    api_loras.router,
    api_batches.router,
    files.router,
    webhooks.router,
)


class Health(BaseModel):
    ok: bool
    version: str


def create_app(
    service: FalService,
    options: WebOptions | None = None,
    *,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The app over ``service`` (whose lifecycle stays the caller's)."""
    from falkit import __version__

    options = options or WebOptions()
    state = WebState(
        service=service,
        options=options,
        sessions=Sessions(options.session_hours * 3600),
        batches=BatchRuns(service),
        webhooks=WebhookReceiver(service, options),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await warm(state)
        yield
        await shutdown(state)

    app = FastAPI(
        title="falkit",
        version=__version__,
        summary="Generate images with Fal.ai: jobs, live events, LoRAs, batches, webhooks.",
        docs_url=None,  # Swagger UI would load scripts from a CDN; /openapi.json is the doc
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = state
    errors.install(app)
    for router in (*API_ROUTERS, *routers):
        app.include_router(router)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Whether the server is up (no credentials needed, nothing private)."""
        return Health(ok=True, version=__version__)

    app.add_middleware(BodyLimit, upload=options.max_upload_bytes, other=options.max_json_bytes)
    app.add_middleware(SecurityHeaders)
    return app


async def warm(state: WebState) -> None:
    """Fetch Fal's webhook keys once at start, so the first delivery does not wait for them."""
    if state.webhooks.enabled:
        try:
            await state.webhooks.fetcher().keys()
        except Exception as exc:  # the first delivery tries again
            state.log.warning("could not fetch Fal's webhook keys yet: %s", exc)


async def shutdown(state: WebState) -> None:
    await state.batches.aclose()
    await state.webhooks.aclose()


class SecurityHeaders:
    """ASGI middleware: headers every answer carries (no sniffing, no framing, no referrer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)
