"""One error shape for every answer that is not a success, and which status each error gets.

Every failure is ``{"error": code, "message": text, "errors": [{field, message, allowed}]}``;
``errors`` lists the fields at fault for 422s (from falkit's own checks and from the request's
schema alike), so a form can show each next to its input. Messages are falkit's own, which
never hold the Fal key.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from falkit import errors as fe

logger = logging.getLogger("falkit.web")


class FieldErrorBody(BaseModel):
    """One invalid field: where, what is wrong, what is allowed."""

    field: str
    message: str
    allowed: str | None = None


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str = Field(description="A stable code: validation_error, budget_exceeded, …")
    message: str = Field(description="What went wrong and how to fix it, in one line")
    errors: list[FieldErrorBody] = Field(default_factory=list)


#: (falkit error, HTTP status, code), most specific first.
_STATUS: tuple[tuple[type[fe.FalkitError], int, str], ...] = (
    (fe.ValidationError, 422, "validation_error"),
    (fe.BudgetExceededError, 402, "budget_exceeded"),
    (fe.LookupFailedError, 404, "not_found"),
    (fe.ServiceDisabledError, 503, "service_disabled"),
    (fe.StoreError, 503, "store_unavailable"),
    (fe.RateLimitedError, 503, "fal_rate_limited"),
    (fe.AuthenticationError, 502, "fal_refused_key"),
    (fe.ApiError, 502, "fal_error"),
    (fe.TransportError, 502, "fal_unreachable"),
    (fe.JobFailedError, 409, "job_failed"),
)


def error_response(
    status: int, code: str, message: str, fields: list[FieldErrorBody] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, message=message, errors=fields or [])
    return JSONResponse(body.model_dump(), status_code=status)


def falkit_error_response(exc: fe.FalkitError) -> JSONResponse:
    """The answer for a falkit error (see ``_STATUS``; anything else is a 409 conflict)."""
    status, code = 409, "conflict"
    for kind, mapped, name in _STATUS:
        if isinstance(exc, kind):
            status, code = mapped, name
            break
    fields = []
    if isinstance(exc, fe.ValidationError):
        fields = [
            FieldErrorBody(field=e.field, message=e.message, allowed=e.allowed) for e in exc.errors
        ]
        if exc.status_code is not None:  # Fal itself refused the input
            status, code = 422, "fal_validation_error"
    headers = {}
    if isinstance(exc, fe.RateLimitedError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    response = error_response(status, code, str(exc), fields)
    response.headers.update(headers)
    return response


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "input"


async def _on_falkit(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, fe.FalkitError)
    return falkit_error_response(exc)


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        FieldErrorBody(field=_field_name(err.get("loc", ())), message=str(err.get("msg", "")))
        for err in exc.errors()
    ]
    text = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return error_response(422, "validation_error", f"invalid input: {text}", fields)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {
        401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
        413: "too_large",
    }  # fmt: skip
    response = error_response(exc.status_code, code.get(exc.status_code, "http_error"), exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the server's log")


def install(app: FastAPI) -> None:
    """Route every failure through the one error shape."""
    app.add_exception_handler(fe.FalkitError, _on_falkit)
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_bug)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer."""
    text = {
        400: "Bad request",
        401: "No valid token or session",
        402: "The spend cap would be passed; nothing was sent",
        403: "Refused (cross-site request, missing CSRF token, or a foreign Host)",
        404: "Not found",
        409: "Conflict with the job's state",
        413: "Request body too large",
        422: "Invalid input, with the fields at fault; nothing was written or sent",
        502: "Fal answered with an error or could not be reached",
        503: "No Fal key configured, or the library is unavailable",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in statuses}
