"""The emulator as an ASGI app: five Fal roles (queue, run, rest, cdn, api) over one engine.

By default one app serves every role under a path prefix (``/queue``, ``/run``, ``/rest``,
``/cdn``, and ``/api`` for the platform API's request history), matching
:meth:`falkit.config.Settings.with_urls`. A role can instead own a whole listener at its
root (``root_role``), which is how the official client, whose queue and run hosts take no
path, is pointed at the emulator.

The combined app also answers ``GET /_emulator/stats`` (and ``POST /_emulator/stats/reset``)
for harnesses in other processes: the counters of :class:`~falkit.emulator.config.Stats` plus
jobs by state. That prefix is the emulator's own, so it cannot clash with a Fal path; those
requests need no key and are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from falkit.emulator.config import EmulatorConfig
from falkit.emulator.engine import Engine
from falkit.emulator.routes_files import cdn_routes, rest_routes
from falkit.emulator.routes_platform import api_routes
from falkit.emulator.routes_queue import queue_routes, run_routes

Role = Literal["queue", "run", "rest", "cdn", "api"]
ROLES: dict[Role, Callable[[str], list[BaseRoute]]] = {
    "queue": queue_routes,
    "run": run_routes,
    "rest": rest_routes,
    "cdn": cdn_routes,
    "api": api_routes,
}


async def _http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = f"Path {request.url.path} not found" if code == 404 else str(exc)
    return JSONResponse({"detail": detail}, status_code=code)


STATS_PREFIX = "/_emulator"


def stats_body(engine: Engine) -> dict[str, Any]:
    """Counters and jobs by state, as ``GET /_emulator/stats`` answers them."""
    jobs = {"queued": engine.queued, "running": engine.running, "completed": engine.completed}
    return {**engine.stats.snapshot(), "jobs": jobs}


async def _stats(request: Request) -> Response:
    return JSONResponse(stats_body(request.app.state.emulator))


async def _stats_reset(request: Request) -> Response:
    engine: Engine = request.app.state.emulator
    engine.stats.reset()
    return JSONResponse(stats_body(engine))


def stats_routes() -> list[BaseRoute]:
    return [
        Route("/stats", _stats, methods=["GET"]),
        Route("/stats/reset", _stats_reset, methods=["POST"]),
    ]


def create_app(
    config: EmulatorConfig | None = None,
    *,
    engine: Engine | None = None,
    root_role: Role | None = None,
) -> Starlette:
    """A Starlette app emulating Fal; ``app.state.emulator`` is its engine.

    Pass ``engine`` to serve one engine from several apps (one per listener). Nothing starts
    until the first request, so the app also works under ``httpx.ASGITransport``.
    """
    engine = engine or Engine(config)
    if root_role is None:
        routes: list[BaseRoute] = [
            Mount(f"/{role}", routes=make(f"/{role}")) for role, make in ROLES.items()
        ]
        routes.append(Mount(STATS_PREFIX, routes=stats_routes()))
    else:
        routes = ROLES[root_role]("")
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.emulator = engine
    return app
