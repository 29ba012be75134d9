"""The queue and run roles: submit, status (polling and SSE), result, cancel; sync run.

Status, result and cancel find a request by id under ``{owner}/{alias}/requests/{id}`` or under
the full endpoint id, and every URL handed out points back at the listener that was asked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from falkit.catalog import BY_ENDPOINT
from falkit.emulator.engine import DONE, Engine, Job
from falkit.emulator.guard import engine_of, guarded, origin
from falkit.emulator.models import Endpoint, EndpointNotFound, resolve

ACTIONS = {
    ("GET", ""): "result",
    ("GET", "status"): "status",
    ("GET", "status/stream"): "stream",
    ("PUT", "cancel"): "cancel",
}
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def flag(value: str | None) -> bool:
    """Fal's ``logs`` flag: 1/0 (JS, docs) or true/false (Python)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def queue_routes(prefix: str) -> list[BaseRoute]:
    """The queue role; ``prefix`` is where it is mounted ("" when it owns a listener)."""
    return [Route("/{path:path}", partial(_queue, prefix=prefix), methods=["GET", "POST", "PUT"])]


def run_routes(prefix: str) -> list[BaseRoute]:
    """The sync-run role (fal.run)."""
    return [Route("/{path:path}", partial(_run, prefix=prefix), methods=["POST"])]


def _target(parts: list[str]) -> tuple[str, str, str] | None:
    """(app prefix, request id, action) for ``…/requests/{id}[/action]`` paths."""
    for i in range(2, len(parts) - 1):
        if parts[i] == "requests":
            return "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2 :])
    return None


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=404)


async def _queue(request: Request, prefix: str) -> Response:
    engine = engine_of(request)
    path = request.path_params["path"].strip("/")
    base = origin(request) + prefix
    target = _target(path.split("/"))
    if target is None:
        if request.method != "POST":
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
        return await guarded(engine, "submit", request, partial(_submit, path=path, base=base))
    app_prefix, request_id, action = target
    name = ACTIONS.get((request.method, action))
    if name is None:
        return _not_found(f"Path /{path} not found")
    handler = {"result": _result, "status": _status, "stream": _stream, "cancel": _cancel}[name]
    job_handler = partial(_with_job, handler=handler, app=app_prefix, rid=request_id, base=base)
    return await guarded(engine, name, request, job_handler)


async def read_json(request: Request) -> dict[str, Any] | Response:
    """The JSON object body ({} when empty), or a 422 like Fal's for anything else."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        item = {"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}
        return JSONResponse({"detail": [item]}, status_code=422)
    if not isinstance(data, dict):
        item = {"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}
        return JSONResponse({"detail": [{**item, "input": data}]}, status_code=422)
    return data


async def _endpoint_and_body(
    request: Request, path: str
) -> tuple[Endpoint, dict[str, Any]] | Response:
    try:
        endpoint = resolve(path)
    except EndpointNotFound as exc:
        return _not_found(str(exc))
    body = await read_json(request)
    return body if isinstance(body, Response) else (endpoint, body)


async def _submit(request: Request, path: str, base: str) -> Response:
    engine = engine_of(request)
    parsed = await _endpoint_and_body(request, path)
    if isinstance(parsed, Response):
        return parsed
    endpoint, body = parsed
    webhook = request.query_params.get("fal_webhook") or None
    ctx = engine.context(origin(request))
    timeout = _seconds(request.headers.get("x-fal-request-timeout"))
    job = engine.submit(
        endpoint, body, ctx, webhook=webhook, fault=request.state.fault, start_timeout=timeout
    )
    status = engine.status_body(job, base, with_logs=False)
    keys = ("request_id", "response_url", "status_url", "cancel_url")
    reply = {"status": "IN_QUEUE", **{k: status[k] for k in keys}}
    reply["queue_position"] = status.get("queue_position", 0)
    return JSONResponse(reply)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


async def _with_job(request: Request, handler: Any, app: str, rid: str, base: str) -> Response:
    engine = engine_of(request)
    job = engine.find(app, rid)
    if job is None:
        if handler is _cancel:
            return JSONResponse({"status": "NOT_FOUND", "detail": "Request not found"}, 404)
        return _not_found(f"Request {rid} not found")
    response: Response = await handler(request, engine, job, base)
    return response


async def _status(request: Request, engine: Engine, job: Job, base: str) -> Response:
    body = engine.status_body(job, base, flag(request.query_params.get("logs")))
    return JSONResponse(body, status_code=200 if job.state == DONE else 202)


async def _result(request: Request, engine: Engine, job: Job, base: str) -> Response:
    if job.state != DONE or job.outcome is None:
        where = "in queue" if job.state == "IN_QUEUE" else "in progress"
        return JSONResponse({"detail": f"Request is still {where}"}, status_code=400)
    outcome, body = job.outcome, engine.result_body(job, origin(request))
    return JSONResponse(body, outcome.status_code, headers=outcome.headers(job.id))


async def _cancel(request: Request, engine: Engine, job: Job, base: str) -> Response:
    code, body = engine.cancel(job)
    return JSONResponse(body, status_code=code)


async def _stream(request: Request, engine: Engine, job: Job, base: str) -> Response:
    with_logs = flag(request.query_params.get("logs"))
    events = status_events(engine, job, base, with_logs)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


async def status_events(engine: Engine, job: Job, base: str, with_logs: bool) -> AsyncIterator[str]:
    """One ``data:`` event per change of the status body, ``: ping`` when idle, end at COMPLETED."""
    loop = asyncio.get_running_loop()
    last_text, last_sent = "", loop.time()
    while True:
        text = json.dumps(engine.status_body(job, base, with_logs))
        if text != last_text:
            yield f"data: {text}\n\n"
            last_text, last_sent = text, loop.time()
        if job.state == DONE or engine.closing:
            return
        now = loop.time()
        deadline = last_sent + engine.config.ping_interval
        next_log = job.next_log_at(now) if with_logs else None
        wake = deadline if next_log is None else min(deadline, next_log)
        if not await engine.changed(job, wake - now) and loop.time() >= deadline:
            yield ": ping\n\n"
            last_sent = loop.time()


# ---- run role ----


async def _run(request: Request, prefix: str) -> Response:
    engine = engine_of(request)
    path = request.path_params["path"].strip("/")
    streaming = path.endswith("/stream") and path not in BY_ENDPOINT
    path = path.removesuffix("/stream") if streaming else path
    name = "run_stream" if streaming else "run"
    return await guarded(engine, name, request, partial(_run_model, path=path, stream=streaming))


async def _run_model(request: Request, path: str, stream: bool) -> Response:
    engine = engine_of(request)
    parsed = await _endpoint_and_body(request, path)
    if isinstance(parsed, Response):
        return parsed
    endpoint, body = parsed
    ctx = engine.context(origin(request))
    work = engine.run_now(endpoint, body, ctx, request.state.fault)
    if stream:
        return StreamingResponse(_run_events(work), media_type="text/event-stream")
    request_id, outcome = await work
    return JSONResponse(outcome.body, outcome.status_code, headers=outcome.headers(request_id))


async def _run_events(work: Any) -> AsyncIterator[str]:
    """fal.run streaming, approximated: one partial event, then the full output (or error)."""
    yield f"data: {json.dumps({'images': [], 'partial': True})}\n\n"
    _, outcome = await work
    body = outcome.body if isinstance(outcome.body, dict) else {"detail": outcome.body}
    yield f"data: {json.dumps({**body, 'partial': False})}\n\n"
