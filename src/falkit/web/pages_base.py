"""What every page shares: templates, the gate (the API's, with a login page), rendering.

Pages are server-rendered with Jinja2 and made live with htmx (vendored in ``static/``, its
version in the file name) and one small script (``static/falkit.js``: event streams, dropping
an image on the form, copying, selection). Every page goes through the API's gate
(``security.authorized``): on loopback without a token anyone on the machine may use it;
with ``FALKIT_API_TOKEN`` the browser is sent to ``/login`` once, and every change it makes
carries the session's CSRF token (htmx sends it as ``X-CSRF-Token`` from ``<body hx-headers>``).
The Fal key is never put in a page. Pages are left out of the OpenAPI document.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from falkit.errors import FieldError
from falkit.web.security import authorized, csrf_token
from falkit.web.state import WebState, web_state

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
HTMX_VERSION = "2.0.11"
HTMX = f"htmx-{HTMX_VERSION}.min.js"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


@dataclass
class Page:
    """A page request that passed the gate: what templates need besides their own values."""

    request: Request
    state: WebState
    csrf: str | None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    @property
    def images_root(self) -> Path:
        return self.state.images_root


async def page_gate(request: Request, state: Annotated[WebState, Depends(web_state)]) -> Page:
    """The API's gate; without a session a page is sent to /login (htmx: HX-Redirect)."""
    try:
        await authorized(request, state)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        target = "/login?next=" + quote(_local_path(request), safe="")
        if request.headers.get("hx-request") == "true":
            raise HTTPException(401, "log in first", {"HX-Redirect": target}) from None
        raise HTTPException(303, "log in first", {"Location": target}) from None
    return Page(request, state, csrf_token(request, state))


PageDep = Annotated[Page, Depends(page_gate)]


def _local_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def safe_next(target: str | None) -> str:
    """A redirect target on this server only ("/…", never "//host" or a full URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def environment(state: WebState) -> jinja2.Environment:
    """The templates, loaded once per app."""
    env: jinja2.Environment | None = state.extra.get("jinja")
    if env is None:
        import jinja2

        from falkit import __version__

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        env.globals.update(htmx=HTMX, version=__version__)
        env.filters.update(when=when, money=money, short=short, num=num)
        state.extra["jinja"] = env
    return env


def render(
    page: Page,
    name: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A template as an HTML answer (CSP: own scripts, styles and images only)."""
    context = {
        "csrf": page.csrf,
        "auth_required": bool(page.state.options.api_token),
        "path": page.request.url.path,
        **page.values,
        **values,
    }
    html = environment(page.state).get_template(name).render(context)
    answer = HTMLResponse(html, status_code=status, headers=headers)
    answer.headers["Content-Security-Policy"] = CSP
    answer.headers["Cache-Control"] = "no-store"
    return answer


def not_found(page: Page, message: str) -> HTMLResponse:
    """A page's 404, as a page (the API's are JSON)."""
    return render(page, "error.html", status=404, message=message)


def image_path(page: Page, local_path: str | None) -> str | None:
    """Where the page finds a kept image (``/images/…`` on this server), None if nowhere."""
    from falkit.web.views import image_url

    return image_url(page.request, page.images_root, local_path)


# ---- filters ----


def when(value: dt.datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def money(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:.4f}" if value < 0.1 else f"${value:.2f}"


def short(text: str | None, limit: int = 90) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


# ---- errors shown next to their inputs ----


def error_slots(errors: list[FieldError], known: set[str]) -> tuple[dict[str, str], list[str]]:
    """Errors by input slot (``loras.1.path`` -> ``lora_1``), and the ones no input owns."""
    slots: dict[str, str] = {}
    general = []
    for error in errors:
        parts = error.field.split(".")
        slot = f"lora_{parts[1]}" if parts[0] == "loras" and len(parts) > 1 else parts[0]
        text = one_line(error)
        if slot in known and slot not in slots:
            slots[slot] = text
        else:
            general.append(f"{error.field}: {text}")
    return slots, general


def one_line(error: FieldError) -> str:
    """A field's error as one short line: "must be 1 to 50 for flux-dev" for a range."""
    bound = ("less than", "greater than", "at least", "at most")
    if error.allowed and any(word in error.message for word in bound):
        return f"must be {error.allowed}"
    return error.message + (f" ({error.allowed})" if error.allowed else "")


def pydantic_errors(exc: Any) -> list[FieldError]:
    """A pydantic ValidationError's errors as falkit's field errors."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append(FieldError(".".join(loc) or "input", str(err.get("msg", ""))))
    return out
