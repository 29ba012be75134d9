"""The one exception tree of falkit.

Every error a caller can see derives from :class:`FalkitError`::

    FalkitError                       root; carries request_id and status_code when known
    ├── ServiceDisabledError          no API key configured (how to fix: set FAL_API_KEY)
    ├── ValidationError               bad input, caught locally or answered by Fal with 422
    ├── BudgetExceededError           a job would pass a budget or spend cap; nothing was sent
    ├── LookupFailedError             no such job, LoRA or batch in the local library
    ├── ApiError                      Fal answered with an error status
    │   ├── AuthenticationError       401 / 403: bad key, locked account
    │   ├── NotFoundError             404: unknown app, path or request id
    │   ├── RateLimitedError          429 (and 408/409): carries retry_after
    │   └── ServerError               5xx
    ├── TransportError                the connection failed, dropped or timed out
    │   ├── FalTimeoutError           a deadline passed
    │   └── SubmitUncertainError      a submit may have reached Fal; it is never re-sent
    ├── JobFailedError                a job ended with an error (error_type from Fal)
    │   └── JobCancelledError         a job was cancelled
    ├── DownloadError                 an output file could not be fetched or did not verify
    └── StoreError                    the library database could not be opened or written

:func:`error_from_response` is the one place where an HTTP response becomes an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

SET_KEY_HINT = (
    "run `falkit keys set`, or set FAL_API_KEY in the environment or in a .env file "
    "(or run with --emulator to try falkit offline)"
)


class FalkitError(Exception):
    """Root of every falkit error."""

    def __init__(
        self, message: str, *, request_id: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class ServiceDisabledError(FalkitError):
    """No API key is configured, so nothing can be sent to Fal."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"Fal service is disabled: no API key; {SET_KEY_HINT}")


@dataclass(frozen=True)
class FieldError:
    """One invalid field: where it is, what is wrong, and what is allowed."""

    field: str
    message: str
    allowed: str | None = None

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


class ValidationError(FalkitError, ValueError):
    """Input was rejected, before sending (status_code None) or by Fal (422)."""

    def __init__(
        self,
        errors: list[FieldError] | str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        if isinstance(errors, str):
            errors = [FieldError(field="input", message=errors)]
        self.errors = errors
        message = "invalid input: " + "; ".join(str(e) for e in errors)
        super().__init__(message, request_id=request_id, status_code=status_code)

    @classmethod
    def field(cls, field: str, message: str, allowed: str | None = None) -> ValidationError:
        return cls([FieldError(field, message, allowed)])


class BudgetExceededError(FalkitError):
    """A job was refused because its estimate would pass a budget or spend cap."""


class LookupFailedError(FalkitError, LookupError):
    """No job, LoRA or batch by that name in the local library (not an answer from Fal)."""


class ApiError(FalkitError):
    """Fal answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, request_id=request_id, status_code=status_code)
        self.error_type = error_type
        self.body = body


class AuthenticationError(ApiError):
    """The key was refused (401) or the account is locked (403)."""


class NotFoundError(ApiError):
    """Unknown app, path or request id."""


class RateLimitedError(ApiError):
    """Too many requests; retry_after is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(ApiError):
    """Fal or the model failed (5xx)."""


class TransportError(FalkitError):
    """The connection failed, dropped or timed out."""


class FalTimeoutError(TransportError):
    """A deadline passed before Fal answered."""


class SubmitUncertainError(TransportError):
    """A submit may have reached Fal, so it is not sent again (no job is paid for twice)."""


class JobFailedError(FalkitError):
    """A job reached its end with an error."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        error_type: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, status_code=status_code)
        self.error_type = error_type


class JobCancelledError(JobFailedError):
    """A job was cancelled before it finished."""


class DownloadError(FalkitError):
    """An output file could not be fetched, or it is not the image it claims to be."""


class StoreError(FalkitError):
    """The library database could not be opened, migrated or written (never holds a password)."""


def _detail_text(body: Any) -> str | None:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if detail is not None:
            return json.dumps(detail)[:300]
    return None


def field_errors_from_detail(detail: Any) -> list[FieldError]:
    """Fal's 422 ``detail`` list as field errors naming the field and its limit."""
    if not isinstance(detail, list):
        return [FieldError("input", str(detail))]
    out: list[FieldError] = []
    for item in detail:
        if not isinstance(item, dict):
            out.append(FieldError("input", str(item)))
            continue
        loc = [str(p) for p in item.get("loc", []) if p != "body"]
        ctx = item.get("ctx") or {}
        allowed = ", ".join(f"{k} {v}" for k, v in ctx.items()) if isinstance(ctx, dict) else None
        out.append(FieldError(".".join(loc) or "input", str(item.get("msg", "")), allowed or None))
    return out


def _plain_text(text: str) -> str:
    """An HTML error page (as Fal's nginx gateway sends on 502/503/504) reduced to its title."""
    lowered = text.lower()
    if "<html" not in lowered and "<title" not in lowered:
        return text
    start, end = lowered.find("<title>"), lowered.find("</title>")
    title = text[start + 7 : end].strip() if 0 <= start < end else "an HTML error page"
    return f"{title} (from Fal's gateway)"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        import datetime as dt

        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> FalkitError:
    """Map an error response from any Fal URL to its exception (the one place that does)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    code = response.status_code
    request_id = response.headers.get("x-fal-request-id")
    body_type = body.get("error_type") if isinstance(body, dict) else None
    error_type = body_type or response.headers.get("x-fal-error-type")
    text = _plain_text(body) if isinstance(body, str) and body else response.reason_phrase
    detail = _detail_text(body) or text
    kw: dict[str, Any] = {
        "request_id": request_id,
        "status_code": code,
        "error_type": error_type,
        "body": body,
    }
    if code == 422 and isinstance(body, dict) and isinstance(body.get("detail"), list):
        return ValidationError(
            field_errors_from_detail(body["detail"]), request_id=request_id, status_code=code
        )
    if code in (401, 403):
        return AuthenticationError(
            f"Fal refused the API key ({code}): {detail}; check FAL_API_KEY", **kw
        )
    if code == 404:
        return NotFoundError(f"not found (404): {detail}", **kw)
    if code in (408, 409, 429):
        return RateLimitedError(
            f"Fal asked to slow down ({code}): {detail}", retry_after=_retry_after(response), **kw
        )
    if code >= 500:
        return ServerError(f"Fal server error ({code}): {detail}", **kw)
    return ApiError(f"Fal error ({code}): {detail}", **kw)
