"""Putting input files where Fal's models can read them.

The main path is Fal's CDN v3: a short-lived upload token from the REST API (cached until it
expires), then the raw bytes to ``{cdn_url}/files/upload``. If that fails for any reason the
legacy storage is tried: ``storage/upload/initiate`` returns a signed upload URL and the public
file URL, and the bytes are PUT to the signed URL. Small inputs can skip both as a data URI.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.errors import ApiError, FalkitError, ValidationError

if TYPE_CHECKING:
    import httpx

    from falkit.client.http import FalHttp

logger = logging.getLogger("falkit.client")

#: Renew a cached token this long before Fal says it expires.
TOKEN_MARGIN = dt.timedelta(seconds=30)
DEFAULT_FILE_NAME = "upload.bin"


def data_uri(data: bytes, content_type: str) -> str:
    """``data:<type>;base64,<…>``: inline input that needs no upload (keep it small)."""
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def guess_content_type(path: Path) -> str:
    """The MIME type from a file name, or application/octet-stream."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class CdnToken:
    """A CDN v3 upload token and when it stops working."""

    token: str
    token_type: str
    expires_at: dt.datetime | None

    def __repr__(self) -> str:
        return f"CdnToken(token_type={self.token_type!r}, expires_at={self.expires_at})"

    @property
    def header(self) -> str:
        return f"{self.token_type} {self.token}"

    def usable(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and now + TOKEN_MARGIN < self.expires_at


def _parse_expiry(value: Any) -> dt.datetime | None:
    """``expires_at`` as an aware datetime (naive values are taken as UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(
            f"Fal's {what} answer is not a JSON object: {response.text[:200]!r}",
            status_code=response.status_code,
        )
    return body


def _field(body: dict[str, Any], name: str, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(f"Fal's {what} answer lacks {name!r}", body=body)
    return value


class Uploader:
    """Uploads bytes to Fal and returns the URL a model can read them from."""

    def __init__(self, http: FalHttp) -> None:
        self._http = http
        self._token: CdnToken | None = None
        self._lock = asyncio.Lock()

    async def upload(self, data: bytes, content_type: str, file_name: str | None = None) -> str:
        """CDN v3 first, the legacy initiate + PUT storage if that fails."""
        try:
            return await self._upload_cdn(data, content_type, file_name)
        except FalkitError as exc:
            logger.info("CDN upload failed (%s); falling back to initiate + PUT", exc)
        return await self._upload_initiate(data, content_type, file_name)

    async def token(self) -> CdnToken:
        """A CDN token, fetched once and reused until shortly before it expires."""
        async with self._lock:
            now = dt.datetime.now(dt.UTC)
            if self._token is None or not self._token.usable(now):
                self._token = await self._fetch_token()
            return self._token

    async def _fetch_token(self) -> CdnToken:
        rest = self._http.settings.rest_url
        response = await self._http.send(
            "token",
            "POST",
            f"{rest}/storage/auth/token",
            params={"storage_type": "fal-cdn-v3"},
            json={},
        )
        body = _json_object(response, "upload token")
        return CdnToken(
            token=_field(body, "token", "upload token"),
            token_type=str(body.get("token_type") or "Bearer"),
            expires_at=_parse_expiry(body.get("expires_at")),
        )

    async def _upload_cdn(self, data: bytes, content_type: str, file_name: str | None) -> str:
        token = await self.token()
        headers = {"Authorization": token.header, "Content-Type": content_type}
        if file_name:
            headers["X-Fal-File-Name"] = file_name
        try:
            response = await self._http.send(
                "upload",
                "POST",
                f"{self._http.settings.cdn_url}/files/upload",
                content=data,
                headers=headers,
            )
        except ApiError as exc:
            if exc.status_code in (401, 403):
                self._token = None  # refused: fetch a fresh one next time
            raise
        return _field(_json_object(response, "CDN upload"), "access_url", "CDN upload")

    async def _upload_initiate(self, data: bytes, content_type: str, file_name: str | None) -> str:
        rest = self._http.settings.rest_url
        response = await self._http.send(
            "upload",
            "POST",
            f"{rest}/storage/upload/initiate",
            params={"storage_type": "gcs"},
            json={"file_name": file_name or DEFAULT_FILE_NAME, "content_type": content_type},
        )
        body = _json_object(response, "upload initiate")
        upload_url = _field(body, "upload_url", "upload initiate")
        file_url = _field(body, "file_url", "upload initiate")
        await self._http.send(
            "upload", "PUT", upload_url, content=data, headers={"Content-Type": content_type}
        )
        return file_url

    async def upload_file(self, path: Path) -> str:
        """Upload a local file under its own name and guessed MIME type."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise ValidationError.field("path", f"cannot read {path}: {exc.strerror}") from None
        return await self.upload(data, guess_content_type(path), path.name)
