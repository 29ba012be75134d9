"""Security: loopback-only without a token, bearer and session with CSRF, upload limits, no
path out of the library, and the Fal key in no answer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from falkit.errors import ValidationError
from falkit.web.options import WebOptions, is_loopback
from tests.web.helpers import SECRET_KEY, TOKEN, Served, job_done, served, settings_for

# ---- who may call ----


def test_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ValidationError, match="FALKIT_API_TOKEN"):
        WebOptions(host="0.0.0.0")
    with pytest.raises(ValidationError, match="16 characters"):
        WebOptions(host="0.0.0.0", api_token="short")
    assert WebOptions(host="0.0.0.0", api_token=TOKEN).api_token == TOKEN
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.8.0.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "example.com", "10.0.0.1", ""))


async def test_without_a_token_only_loopback_hosts_and_same_site(web: Served) -> None:
    client = web.client
    assert (await client.get("/api/v1/jobs")).status_code == 200
    assert (await client.get("/api/v1/jobs", headers={"Host": "localhost:8000"})).status_code == 200
    rebound = await client.get("/api/v1/jobs", headers={"Host": "evil.example:8000"})
    assert rebound.status_code == 403  # DNS rebinding
    body = {"prompt": "fox"}
    cross = await client.post(
        "/api/v1/images", json=body, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    fetch = await client.post("/api/v1/images", json=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    same = await client.post("/api/v1/images", json=body, headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 202
    assert (await client.get("/healthz", headers={"Host": "evil.example"})).json()["ok"] is True


@pytest.fixture
async def guarded(emu: Any) -> Any:
    async with served(settings_for(emu.base_url), WebOptions(api_token=TOKEN)) as web:
        yield web


async def test_token_bearer(guarded: Served) -> None:
    client = guarded.client
    refused = await client.get("/api/v1/jobs")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    wrong = await client.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    # a token server may be reached under any host name (it is not loopback-only)
    named = await client.get(
        "/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}", "Host": "falkit.example"}
    )
    assert named.status_code == 200
    started = await client.post(
        "/api/v1/images", json={"prompt": "fox"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert started.status_code == 202  # bearer callers need no CSRF token
    assert (await client.get("/images/x.png")).status_code == 401


async def test_session_cookie_and_csrf(guarded: Served) -> None:
    client = guarded.client
    status = (await client.get("/api/v1/session")).json()
    assert status == {
        "auth_required": True, "authenticated": False, "csrf_token": None, "expires_at": None,
    }  # fmt: skip
    assert (await client.post("/api/v1/session", json={"token": "wrong"})).status_code == 401
    login = await client.post("/api/v1/session", json={"token": TOKEN})
    assert login.status_code == 200
    cookie = login.headers["set-cookie"].lower()
    assert "falkit_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http here
    csrf = login.json()["csrf_token"]
    assert (await client.get("/api/v1/jobs")).status_code == 200  # the cookie is enough to read
    assert (await client.get("/api/v1/session")).json()["csrf_token"] == csrf
    body = {"prompt": "fox"}
    assert (await client.post("/api/v1/images", json=body)).status_code == 403  # no CSRF
    bad = await client.post("/api/v1/images", json=body, headers={"X-CSRF-Token": "nope"})
    assert bad.status_code == 403
    good = await client.post("/api/v1/images", json=body, headers={"X-CSRF-Token": csrf})
    assert good.status_code == 202
    out = await client.request("DELETE", "/api/v1/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 200
    client.cookies.clear()
    assert (await client.get("/api/v1/jobs")).status_code == 401


async def test_session_cookie_is_secure_over_https(emu: Any) -> None:
    options = WebOptions(api_token=TOKEN)
    async with served(
        settings_for(emu.base_url), options, base_url="https://falkit.example"
    ) as web:
        login = await web.client.post("/api/v1/session", json={"token": TOKEN})
        assert "secure" in login.headers["set-cookie"].lower()


async def test_csrf_form_field_is_accepted(guarded: Served, tmp_path: Path) -> None:
    client = guarded.client
    csrf = (await client.post("/api/v1/session", json={"token": TOKEN})).json()["csrf_token"]
    form = {"csrf_token": csrf, "trigger_word": "TOK"}
    files = [("files", ("notes.exe", b"x", "application/octet-stream"))]
    answer = await client.post("/api/v1/loras", data=form, files=files)
    assert answer.status_code == 422  # past the gate: refused for its content, not for CSRF
    form["csrf_token"] = "nope"
    assert (await client.post("/api/v1/loras", data=form, files=files)).status_code == 403


# ---- limits ----


async def test_request_bodies_over_the_limits_are_413(emu: Any) -> None:
    options = WebOptions(max_json_bytes=2048, max_upload_bytes=64 * 1024)
    async with served(settings_for(emu.base_url), options) as web:
        client = web.client
        big = await client.post("/api/v1/images", json={"prompt": "x" * 5000})
        assert big.status_code == 413
        assert big.json()["error"] == "too_large"

        async def chunks() -> Any:  # no Content-Length: cut while reading
            for _ in range(10):
                yield b'{"prompt": "' + b"x" * 1000

        chunked = await client.post(
            "/api/v1/images", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        files = [("files", ("big.zip", os.urandom(100 * 1024), "application/zip"))]
        upload = await client.post("/api/v1/loras", data={"trigger_word": "TOK"}, files=files)
        assert upload.status_code == 413
        assert not (web.service.settings.home / "uploads").exists() or not any(
            (web.service.settings.home / "uploads").iterdir()
        )
        assert emu.stats.submits == 0


# ---- files ----


async def test_images_come_from_the_library_only(web: Served, tmp_path: Path) -> None:
    started = (await web.client.post("/api/v1/images", json={"prompt": "fox"})).json()
    job = await job_done(web.client, started["job_id"])
    url = job["images"][0]["url"]
    assert (await web.client.get(url)).status_code == 200
    root = web.service.settings.home / "images"
    secret = web.service.settings.home / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    (root / "link.png").symlink_to(secret)
    (root / "notes.txt").write_text("not an image")
    for path in (
        "/images/../secret.png", "/images/%2e%2e/secret.png", "/images/..%2fsecret.png",
        "/images/%2Fetc%2Fpasswd", "/images//etc/passwd", "/images/link.png",
        "/images/notes.txt", "/images/", "/images/nothing.png", "/images/%00.png",
        f"/images/{root.name}/../../secret.png",
    ):  # fmt: skip
        answer = await web.client.get(path)
        assert answer.status_code == 404, path
        assert b"not yours" not in answer.content


# ---- the key ----


async def test_the_fal_key_is_in_no_answer(web: Served) -> None:
    client = web.client
    started = (await client.post("/api/v1/images", json={"prompt": "fox"})).json()
    await job_done(client, started["job_id"])
    answers: list[httpx.Response] = [
        await client.get("/openapi.json"),
        await client.get("/api/v1/jobs"),
        await client.get(f"/api/v1/jobs/{started['job_id']}"),
        await client.get(f"/api/v1/jobs/{started['job_id']}/events"),
        await client.get("/api/v1/models"),
        await client.get("/api/v1/loras"),
        await client.get("/api/v1/session"),
        await client.post("/api/v1/estimate", json={"prompt": "fox"}),
        await client.post("/api/v1/images", json={"prompt": "fox", "steps": 999}),
        await client.get("/api/v1/jobs/nope"),
        await client.post("/webhooks/fal", content=b"{}"),
    ]
    for part in (SECRET_KEY, *SECRET_KEY.split(":")):
        for answer in answers:
            assert part not in answer.text, answer.request.url
            assert all(part not in value for value in answer.headers.values())
