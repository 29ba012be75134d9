"""The checks `falkit doctor` runs: key, home folder, library database, Fal's base URLs.

Each check gives one line: what was found and, when something is wrong, the fix. The key is
shown masked and sent only to the configured queue URL, in the Authorization header, to see
whether Fal accepts it (a status read of a request that does not exist: free, nothing queued).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import TextClause
    from sqlalchemy.engine import URL

    from falkit.config import Settings

Level = Literal["ok", "warn", "fail"]
URL_FIELDS = ("queue_url", "run_url", "rest_url", "cdn_url", "api_url")
URL_VARIABLES = {name: f"FALKIT_{name.upper()}" for name in URL_FIELDS}
PROBE_ENDPOINT = "fal-ai/flux/schnell"


@dataclass(frozen=True)
class Check:
    """One finding: its name, level, what was seen, and the fix when it is not ok."""

    name: str
    level: Level
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "level": self.level, "detail": self.detail, "fix": self.fix}


async def run_checks(settings: Settings, timeout: float) -> list[Check]:
    """Every check, the URLs probed at once (each within ``timeout`` seconds)."""
    import httpx

    found = [check_key(settings), check_home(settings.home), await check_database(settings)]
    urls = [(name, getattr(settings, name)) for name in URL_FIELDS if hasattr(settings, name)]
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        probes = [check_url(http, name, url) for name, url in urls]
        found += await asyncio.gather(*probes)
        queue = next((c for c in found if c.name == "queue_url"), None)
        if settings.enabled and queue is not None and queue.level == "ok":
            found.append(await check_key_accepted(http, settings))
    return found


def check_key(settings: Settings) -> Check:
    from falkit.keyfile import key_origin

    if not settings.enabled:
        fix = "run `falkit keys set`, or set FAL_API_KEY in the environment or a .env file"
        return Check("key", "fail", "no Fal key", fix)
    origin = key_origin(settings)
    return Check("key", "ok", f"{settings.masked_key} from {origin.describe()}")


def check_home(home: Path) -> Check:
    """FALKIT_HOME exists and is writable (or can be made)."""
    fix = "set FALKIT_HOME to a folder you can write to"
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return Check("home", "fail", f"{home}: {existing} is not a folder", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check("home", "fail", f"{home} is not writable", fix)
    state = "writable" if existing == home else "made on first use"
    return Check("home", "ok", f"{home} ({state})")


async def check_database(settings: Settings) -> Check:
    """The library database: where (password masked), and its schema version."""
    from falkit.store.db import mask_url
    from falkit.store.schema import HEAD_REVISION

    shown = mask_url(settings.db_url)
    try:
        version = await schema_version(settings.db_url)
    except Exception as exc:  # any driver's failure is this check's finding
        fix = "check FALKIT_DATABASE_URL (and that the server runs)"
        return Check("database", "fail", f"{shown}: {exc.__class__.__name__}: {exc}"[:300], fix)
    if version is None:
        return Check("database", "ok", f"{shown} (created on first use)")
    if version == HEAD_REVISION:
        return Check("database", "ok", f"{shown} (schema {version}, current)")
    if version.isdigit() and version < HEAD_REVISION:
        return Check("database", "ok", f"{shown} (schema {version}, upgraded on next use)")
    fix = "upgrade falkit, or point FALKIT_DATABASE_URL at another database"
    return Check("database", "fail", f"{shown} (schema {version}: newer than this falkit)", fix)


async def schema_version(url: str) -> str | None:
    """The library's schema revision; None when there is no library there yet."""
    from sqlalchemy import text

    from falkit.store.db import parse_url
    from falkit.store.schema import VERSION_TABLE

    parsed = parse_url(url)
    query = text(f"SELECT version_num FROM {VERSION_TABLE}")
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).exists():
            return None
        return await asyncio.to_thread(_sqlite_version, parsed, query)
    from sqlalchemy.exc import ProgrammingError
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(parsed, connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            try:
                value = (await conn.execute(query)).scalar()
            except ProgrammingError:
                return None  # no version table: an empty database
    finally:
        await engine.dispose()
    return None if value is None else str(value)


def _sqlite_version(parsed: URL, query: TextClause) -> str | None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            try:
                value = conn.execute(query).scalar()
            except OperationalError:
                return None  # no version table yet
    finally:
        engine.dispose()
    return None if value is None else str(value)


async def check_url(http: httpx.AsyncClient, name: str, url: str) -> Check:
    """The URL answers at all (any HTTP status): DNS, TLS and the network work."""
    import httpx

    started = time.monotonic()
    try:
        response = await http.get(url)
    except httpx.HTTPError as exc:
        reason = str(exc) or exc.__class__.__name__
        fix = f"check {URL_VARIABLES[name]} (unset it for Fal's own) and your network or proxy"
        return Check(name, "fail", f"{url} did not answer: {reason}"[:300], fix)
    took = time.monotonic() - started
    return Check(name, "ok", f"{url} answers (HTTP {response.status_code}, {took:.2f} s)")


async def check_key_accepted(http: httpx.AsyncClient, settings: Settings) -> Check:
    """Fal accepts the key: a status read of an unknown request answers 404, not 401/403."""
    import httpx

    url = f"{settings.queue_url}/{PROBE_ENDPOINT}/requests/{uuid.uuid4()}/status"
    headers = {"Authorization": f"Key {settings.key}"}
    try:
        response = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return Check("key accepted", "warn", f"not checked: {exc.__class__.__name__}")
    if response.status_code in (401, 403):
        fix = "check the key at fal.ai/dashboard/keys, then `falkit keys set`"
        refused = f"Fal refused the key (HTTP {response.status_code})"
        return Check("key accepted", "fail", refused, fix)
    return Check("key accepted", "ok", f"Fal accepts {settings.masked_key}")
