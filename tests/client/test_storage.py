"""Uploads: CDN v3 with a cached token, the initiate + PUT fallback, data URIs."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import httpx
import pytest

from falkit.client import FalClient, data_uri
from falkit.errors import AuthenticationError, ValidationError
from tests.client.fakes import KEY, FakeFal

TOKEN = "/storage/auth/token"
CDN_UPLOAD = "/files/upload"
INITIATE = "/storage/upload/initiate"
SIGNED = "https://storage.googleapis.com/bucket/upload-123"
FILE_URL = "https://storage.googleapis.com/falserverless/files/cat.png"
ACCESS_URL = "https://v3.fal.media/files/rabbit/abc.png"


def token(expires_in: float = 3600, name: str = "cdn-token-1") -> httpx.Response:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)
    return httpx.Response(
        200,
        json={
            "token": name,
            "token_type": "Bearer",
            "base_url": "https://v3.fal.media",
            "expires_at": expires.isoformat(),
        },
    )


def cdn_ok() -> httpx.Response:
    return httpx.Response(200, json={"access_url": ACCESS_URL})


def initiate_ok() -> httpx.Response:
    return httpx.Response(200, json={"upload_url": SIGNED, "file_url": FILE_URL})


async def test_cdn_upload_with_token(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", TOKEN, token()).on("POST", CDN_UPLOAD, cdn_ok())
    url = await client.upload(b"\x89PNG...", "image/png", "cat.png")

    assert url == ACCESS_URL
    token_request, upload_request = fal.requests
    assert (
        str(token_request.url) == "https://rest.fal.ai/storage/auth/token?storage_type=fal-cdn-v3"
    )
    assert token_request.headers["authorization"] == f"Key {KEY}"
    assert json.loads(token_request.content) == {}
    assert str(upload_request.url) == "https://v3.fal.media/files/upload"
    assert upload_request.headers["authorization"] == "Bearer cdn-token-1"
    assert upload_request.headers["content-type"] == "image/png"
    assert upload_request.headers["x-fal-file-name"] == "cat.png"
    assert upload_request.content == b"\x89PNG..."
    assert client.stats.as_dict() == {"total": 2, "token": 1, "upload": 1}


async def test_token_is_cached_until_it_expires(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", TOKEN, token(3600)).on("POST", CDN_UPLOAD, cdn_ok())
    for _ in range(3):
        await client.upload(b"x", "text/plain")
    assert fal.count("POST", TOKEN) == 1
    assert fal.count("POST", CDN_UPLOAD) == 3


async def test_an_expiring_token_is_renewed(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", TOKEN, token(5, "old"), token(3600, "new")).on("POST", CDN_UPLOAD, cdn_ok())
    await client.upload(b"x", "text/plain")
    await client.upload(b"x", "text/plain")
    await client.upload(b"x", "text/plain")
    assert fal.count("POST", TOKEN) == 2  # "old" expired within the safety margin
    uploads = [r for r in fal.requests if r.url.path == CDN_UPLOAD]
    assert [r.headers["authorization"] for r in uploads] == [
        "Bearer old",
        "Bearer new",
        "Bearer new",
    ]


async def test_no_file_name_sends_no_name_header(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", TOKEN, token()).on("POST", CDN_UPLOAD, cdn_ok())
    await client.upload(b"x", "text/plain")
    assert "x-fal-file-name" not in fal.requests[-1].headers


@pytest.mark.parametrize(
    "cdn_failure",
    [
        httpx.Response(500, json={"detail": "cdn down"}),
        httpx.Response(200, json={"unexpected": True}),
        httpx.ConnectError("refused"),
    ],
    ids=["500", "no-access-url", "unreachable"],
)
async def test_cdn_failure_falls_back_to_initiate_and_put(
    fal: FakeFal, client: FalClient, cdn_failure: httpx.Response | Exception
) -> None:
    fal.on("POST", TOKEN, token()).on("POST", CDN_UPLOAD, cdn_failure)
    fal.on("POST", INITIATE, initiate_ok()).on("PUT", "/bucket/upload-123", httpx.Response(200))
    url = await client.upload(b"data", "image/png", "cat.png")

    assert url == FILE_URL
    initiate = next(r for r in fal.requests if r.url.path == INITIATE)
    assert str(initiate.url) == "https://rest.fal.ai/storage/upload/initiate?storage_type=gcs"
    assert json.loads(initiate.content) == {"file_name": "cat.png", "content_type": "image/png"}
    assert initiate.headers["authorization"] == f"Key {KEY}"
    put = fal.requests[-1]
    assert (put.method, str(put.url)) == ("PUT", SIGNED)
    assert put.content == b"data"
    assert put.headers["content-type"] == "image/png"
    assert "authorization" not in put.headers  # the signed URL is not Fal's: no key


async def test_token_failure_also_falls_back(fal: FakeFal, client: FalClient) -> None:
    fal.on(
        "POST", TOKEN, httpx.Response(503, json={"detail": "x"}, headers={"x-fal-request-id": "r"})
    )
    fal.on("POST", INITIATE, initiate_ok()).on("PUT", "/bucket/upload-123", httpx.Response(200))
    assert await client.upload(b"data", "application/octet-stream") == FILE_URL
    initiate = next(r for r in fal.requests if r.url.path == INITIATE)
    assert json.loads(initiate.content)["file_name"] == "upload.bin"


async def test_both_paths_failing_raises_the_fallbacks_error(
    fal: FakeFal, client: FalClient
) -> None:
    fal.on(
        "POST", TOKEN, httpx.Response(401, json={"detail": "No user found for Key ID and Secret"})
    )
    fal.on(
        "POST",
        INITIATE,
        httpx.Response(401, json={"detail": "No user found for Key ID and Secret"}),
    )
    with pytest.raises(AuthenticationError, match="FAL_API_KEY"):
        await client.upload(b"data", "image/png")
    assert fal.count("PUT", "/bucket/upload-123") == 0


async def test_a_refused_token_is_dropped_from_the_cache(fal: FakeFal, client: FalClient) -> None:
    fal.on("POST", TOKEN, token(3600, "revoked"), token(3600, "fresh"))
    fal.on("POST", CDN_UPLOAD, httpx.Response(401, json={"detail": "bad token"}), cdn_ok())
    fal.on("POST", INITIATE, initiate_ok()).on("PUT", "/bucket/upload-123", httpx.Response(200))
    assert await client.upload(b"x", "text/plain") == FILE_URL
    assert await client.upload(b"x", "text/plain") == ACCESS_URL
    assert fal.count("POST", TOKEN) == 2


async def test_upload_file_uses_the_name_and_guessed_type(
    fal: FakeFal, client: FalClient, tmp_path: Path
) -> None:
    path = tmp_path / "photos.zip"
    path.write_bytes(b"PK\x03\x04zip")
    fal.on("POST", TOKEN, token()).on("POST", CDN_UPLOAD, cdn_ok())
    assert await client.upload_file(path) == ACCESS_URL
    upload = fal.requests[-1]
    assert upload.headers["x-fal-file-name"] == "photos.zip"
    assert upload.headers["content-type"] == "application/zip"
    assert upload.content == b"PK\x03\x04zip"


async def test_upload_file_that_is_missing_names_the_path(
    fal: FakeFal, client: FalClient, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=r"nope\.png"):
        await client.upload_file(tmp_path / "nope.png")
    assert fal.requests == []


def test_data_uri_round_trips() -> None:
    uri = data_uri(b"\x00\x01binary", "image/png")
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == b"\x00\x01binary"
