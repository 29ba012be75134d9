"""What every route goes through: counting, injected faults, and the API-key check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from falkit.emulator.engine import Engine
from falkit.emulator.faults import after, before

Handler = Callable[[Request], Awaitable[Response]]
BAD_KEY = {"detail": "No user found for Key ID and Secret"}


def key_accepted(engine: Engine, request: Request) -> bool:
    """``Authorization: Key <key>`` with a key the emulator accepts."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    key = value.strip()
    if scheme.lower() != "key" or not key:
        return False
    allowed = engine.config.api_keys
    return allowed is None or key in allowed


async def guarded(
    engine: Engine, name: str, request: Request, handler: Handler, *, auth: bool = True
) -> Response:
    """Count the request under ``name``, apply any armed fault, check the key, then handle it."""
    engine.stats.count(name)
    fault = engine.faults.pick(name)
    request.state.fault = fault
    if fault is not None:
        early = await before(fault, request)
        if early is not None:
            return early
    if auth and not key_accepted(engine, request):
        return JSONResponse(BAD_KEY, status_code=401)
    response = await handler(request)
    if fault is not None:
        response = await after(fault, request, response)
    return response


def origin(request: Request) -> str:
    """scheme://host[:port] the client used to reach us."""
    return f"{request.url.scheme}://{request.url.netloc}"


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.emulator
    return engine
