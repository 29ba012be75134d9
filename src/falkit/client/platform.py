"""Fal's platform API (``FALKIT_API_URL``, default ``https://api.fal.ai/v1``): request history.

``GET {api_url}/models/requests/by-endpoint`` lists the requests an endpoint received, with
their input when ``expand=payloads`` is asked for. falkit reads it for one reason: to find out
whether a submit whose answer was lost (a job left ``unknown``) reached Fal after all, so the
job is reattached by its request id instead of paid for twice (see
:mod:`falkit.service.reconcile`).

No official client wraps this API and its shape is only documented, not pinned down
(fal-protocol.md §13), so the parser is tolerant: the list may be the body itself or under
``items`` (or ``requests``, ``data``, ``results``); an item's id under ``request_id`` or
``id``; its input under ``json_input`` (or ``input``, ``payload``, ``arguments``), as an object
or as JSON text; its submit time under ``sent_at`` (or ``created_at``, ``submitted_at``,
``started_at``). Items without a request id are skipped. Paging follows ``next_cursor``
while ``has_more`` (or, without ``has_more``, while a cursor comes back), up to a page cap;
:attr:`History.complete` says whether every page was read.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from falkit.client.http import json_body
from falkit.errors import ApiError

if TYPE_CHECKING:
    from falkit.client.http import FalHttp

HISTORY_PATH = "/models/requests/by-endpoint"
PAGE_SIZE = 100  # Fal's maximum
MAX_PAGES = 500
"""50,000 requests of one endpoint in the unknown jobs' window: a 10,000-job batch on a busy
account (its submits all within minutes of each other) fits several times over."""
_LIST_KEYS = ("items", "requests", "data", "results")
_ID_KEYS = ("request_id", "id")
_INPUT_KEYS = ("json_input", "input", "payload", "arguments")
_TIME_KEYS = ("sent_at", "created_at", "submitted_at", "started_at")


@dataclass(frozen=True)
class HistoryEntry:
    """One request Fal received, as far as its history tells."""

    request_id: str
    endpoint_id: str | None
    sent_at: dt.datetime | None
    """When Fal received it (UTC), if the history says."""
    payload: dict[str, Any] | None
    """The input as Fal received it; None when the history gave none."""
    status_code: int | None = None
    """The result's HTTP code once the request ended; None while in flight (or not given)."""


@dataclass(frozen=True)
class History:
    """The requests of an endpoint within a time window."""

    entries: tuple[HistoryEntry, ...]
    complete: bool
    """False when more pages were left unread (the page cap): absence proves nothing."""


class PlatformClient:
    """The platform API over FalClient's HTTP layer (the key goes to ``api_url`` only)."""

    def __init__(self, http: FalHttp) -> None:
        self._http = http

    async def request_history(
        self,
        endpoint_id: str,
        *,
        start: dt.datetime,
        end: dt.datetime | None = None,
        max_pages: int = MAX_PAGES,
    ) -> History:
        """Requests of ``endpoint_id`` sent from ``start`` to ``end`` (now when None), with
        their payloads. Raises ApiError / TransportError when the history cannot be read."""
        url = self._http.settings.api_url + HISTORY_PATH
        params: dict[str, str] = {
            "endpoint_id": endpoint_id,
            "start": _iso(start, math.floor),
            "expand": "payloads",
            "limit": str(PAGE_SIZE),
        }
        if end is not None:
            params["end"] = _iso(end, math.ceil)
        entries: list[HistoryEntry] = []
        for _ in range(max_pages):
            response = await self._http.send("history", "GET", url, params=params)
            items, cursor = parse_page(json_body(response), url)
            entries.extend(items)
            if cursor is None:
                return History(tuple(entries), complete=True)
            params["cursor"] = cursor
        return History(tuple(entries), complete=False)


def parse_page(
    body: Any, where: str = "the request history"
) -> tuple[list[HistoryEntry], str | None]:
    """The entries of one history page and the cursor of the next (None: last page)."""
    raw = _items(body)
    if raw is None:
        raise ApiError(
            f"Fal's request history at {where} is not a list of requests: {str(body)[:200]!r}"
        )
    entries = [entry for entry in map(parse_entry, raw) if entry is not None]
    return entries, _next_cursor(body)


def parse_entry(item: Any) -> HistoryEntry | None:
    """One history item, or None when it names no request."""
    if not isinstance(item, dict):
        return None
    request_id = _first(item, _ID_KEYS)
    if not isinstance(request_id, str) or not request_id:
        return None
    endpoint = item.get("endpoint_id")
    code = item.get("status_code")
    return HistoryEntry(
        request_id=request_id,
        endpoint_id=endpoint if isinstance(endpoint, str) else None,
        sent_at=_time(_first(item, _TIME_KEYS)),
        payload=_payload(_first(item, _INPUT_KEYS)),
        status_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def _items(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in _LIST_KEYS:
            value = body.get(key)
            if isinstance(value, list):
                return value
    return None


def _next_cursor(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    cursor = body.get("next_cursor", body.get("cursor"))
    if not isinstance(cursor, str) or not cursor:
        return None
    more = body.get("has_more")
    return cursor if more is None or more is True else None


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if item.get(key) is not None:
            return item[key]
    return None


def _payload(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _time(value: Any) -> dt.datetime | None:
    """A UTC time from ISO 8601 text or unix seconds; None when it is neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _iso(when: dt.datetime, rounding: Any) -> str:
    """Whole seconds, UTC, ``Z`` (rounded outwards so the window only grows)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = rounding(when.timestamp())
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
