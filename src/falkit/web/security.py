"""Who may call the API: loopback without a token, or a bearer token / login session.

* No ``FALKIT_API_TOKEN`` (only allowed on loopback): every caller on this machine may use
  the API, but the Host header must name loopback too, so a web page elsewhere cannot reach it
  by DNS rebinding; cross-site requests that change anything are refused (``Origin`` and
  ``Sec-Fetch-Site``), so a page elsewhere cannot make the browser spend Fal credit either.
* With a token: ``Authorization: Bearer <token>``, or a session cookie from
  ``POST /api/v1/session`` (what the page uses: HttpOnly, SameSite=Strict, Secure over https).
  A request that changes anything with a session cookie must also carry the session's CSRF
  token in ``X-CSRF-Token`` (or a ``csrf_token`` form field) — cookies ride along on requests
  other sites make, that header does not.

``/webhooks/fal`` is none of this: Fal signs its deliveries (see webhooks.py).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from falkit.web.errors import responses
from falkit.web.options import is_loopback
from falkit.web.state import WebState, web_state

SESSION_COOKIE = "falkit_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Session:
    csrf: str
    expires: float


class Sessions:
    """Login sessions in memory: a restart logs everyone out (the token is asked once more)."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._by_id: dict[str, Session] = {}

    def create(self) -> tuple[str, Session]:
        self._sweep()
        session = Session(secrets.token_urlsafe(32), time.time() + self.lifetime)
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None or session.expires < time.time():
            return None
        return session

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _sweep(self) -> None:
        now = time.time()
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _host_name(value: str) -> str:
    return urlsplit(f"//{value}").hostname or ""


def check_origin(request: Request) -> None:
    """Refuse a request from another site that would change something (403)."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise HTTPException(403, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin == "null" and request.headers.get("sec-fetch-site", "").lower() == "same-origin":
        return  # a form posted by one of our pages: no-referrer makes its Origin "null"
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"request from another origin ({origin}) refused")


def check_host(request: Request, state: WebState) -> None:
    """Without a token the API answers only to loopback names (no DNS rebinding)."""
    if state.options.api_token:
        return
    if not is_loopback(_host_name(request.headers.get("host", ""))):
        raise HTTPException(403, "this server answers only to 127.0.0.1 / localhost")


async def _csrf_given(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def authorized(request: Request, state: Annotated[WebState, Depends(web_state)]) -> None:
    """The API's gate (see the module docstring): 401 without credentials, 403 when refused."""
    check_host(request, state)
    check_origin(request)
    token = state.options.api_token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given and _same(given.strip(), token):
        return
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise HTTPException(
            401, "a bearer token or a login session is needed", {"WWW-Authenticate": "Bearer"}
        )
    if request.method not in SAFE_METHODS and not _same(await _csrf_given(request), session.csrf):
        raise HTTPException(403, "missing or wrong CSRF token (send X-CSRF-Token)")


Authorized = Depends(authorized)


def csrf_token(request: Request, state: WebState) -> str | None:
    """The CSRF token pages put in their forms (None when no session is in use)."""
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    return session.csrf if session else None


# ---- login ----


class LoginBody(BaseModel):
    token: str = Field(min_length=1, max_length=4096, description="The FALKIT_API_TOKEN")


class SessionOut(BaseModel):
    auth_required: bool = Field(description="Whether this server asks for a token")
    authenticated: bool
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token on changes")
    expires_at: float | None = Field(None, description="Unix time the session ends")


router = APIRouter(prefix="/api/v1", tags=["session"])


@router.get("/session", response_model=SessionOut)
async def get_session(
    request: Request, state: Annotated[WebState, Depends(web_state)]
) -> SessionOut:
    """Whether the caller is logged in (and the session's CSRF token for forms)."""
    check_host(request, state)
    if not state.options.api_token:
        return SessionOut(auth_required=False, authenticated=True)
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return SessionOut(auth_required=True, authenticated=False)
    return SessionOut(
        auth_required=True, authenticated=True, csrf_token=session.csrf, expires_at=session.expires
    )


@router.post("/session", response_model=SessionOut, responses=responses(401, 403, 422))
async def login(
    body: LoginBody,
    request: Request,
    response: Response,
    state: Annotated[WebState, Depends(web_state)],
) -> SessionOut:
    """Trade the API token for a session cookie (HttpOnly, SameSite=Strict)."""
    check_host(request, state)
    check_origin(request)
    token = state.options.api_token
    if not token:
        return SessionOut(auth_required=False, authenticated=True)
    if not _same(body.token, token):
        state.log.warning("login refused from %s", request.client.host if request.client else "?")
        raise HTTPException(401, "wrong token", {"WWW-Authenticate": "Bearer"})
    sid, session = state.sessions.create()
    secure = request.url.scheme == "https" or (state.options.public_url or "").startswith("https")
    response.set_cookie(
        SESSION_COOKIE, sid, max_age=int(state.sessions.lifetime), httponly=True,
        samesite="strict", secure=secure, path="/",
    )  # fmt: skip
    return SessionOut(
        auth_required=True, authenticated=True, csrf_token=session.csrf, expires_at=session.expires
    )


@router.delete("/session", response_model=SessionOut, responses=responses(401, 403))
async def logout(
    request: Request, response: Response, state: Annotated[WebState, Depends(web_state)]
) -> SessionOut:
    """End the caller's session."""
    await authorized(request, state)
    state.sessions.drop(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return SessionOut(auth_required=bool(state.options.api_token), authenticated=False)
