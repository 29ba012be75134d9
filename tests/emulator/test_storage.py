"""Storage: CDN token + raw upload, initiate + PUT, files served back at the returned URLs."""

from __future__ import annotations

import datetime as dt

import httpx

from .conftest import engine_of


async def test_token_then_raw_upload(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/rest/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={}
    )
    assert reply.status_code == 200
    token = reply.json()
    assert token["token_type"] == "Bearer"
    assert token["base_url"] == "http://emulator/cdn"
    expires = dt.datetime.fromisoformat(token["expires_at"])
    assert expires.tzinfo is not None
    assert expires > dt.datetime.now(dt.UTC)
    headers = {
        "Authorization": f"Bearer {token['token']}",
        "Content-Type": "image/png",
        "X-Fal-File-Name": "cat.png",
    }
    upload = await client.post("/cdn/files/upload", content=b"\x89PNG fake", headers=headers)
    assert upload.status_code == 200
    url = upload.json()["access_url"]
    assert url.startswith("http://emulator/cdn/files/")
    assert url.endswith(".png")
    served = await client.get(url)
    assert served.content == b"\x89PNG fake"
    assert served.headers["content-type"] == "image/png"
    assert engine_of(client).stats.requests["upload"] == 1


async def test_upload_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    client.headers.pop("Authorization")
    bad = await client.post(
        "/cdn/files/upload", content=b"x", headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401
    assert (await client.post("/rest/storage/auth/token", json={})).status_code == 401


async def test_initiate_then_put(client: httpx.AsyncClient) -> None:
    body = {"file_name": "photos.zip", "content_type": "application/zip"}
    reply = await client.post(
        "/rest/storage/upload/initiate", params={"storage_type": "gcs"}, json=body
    )
    assert reply.status_code == 200
    upload_url, file_url = reply.json()["upload_url"], reply.json()["file_url"]
    assert file_url.endswith(".zip")
    assert (await client.get(file_url)).status_code == 404  # nothing uploaded yet
    put = await client.put(
        upload_url, content=b"PK zip", headers={"Content-Type": "application/zip"}
    )
    assert put.status_code == 200
    served = await client.get(file_url)
    assert served.content == b"PK zip"
    assert served.headers["content-type"] == "application/zip"
    again = await client.put(upload_url, content=b"other")
    assert again.status_code == 403  # the signed URL is single-use
    forged = await client.put(file_url + "?upload_token=guess", content=b"other")
    assert forged.status_code == 403


async def test_unknown_file_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/cdn/files/missing.png")
    assert response.status_code == 404
    assert response.json() == {"detail": "File not found"}


async def test_unknown_path_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]
