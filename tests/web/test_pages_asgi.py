"""The page's routes through an ASGI client (no browser): every page renders, the gate and the
login, CSRF on the page's own posts, the form's fields and errors, dropping an image, the
vendored htmx, no Fal key in any page."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from falkit.service import FalService
from falkit.web import pages
from falkit.web.app import create_app
from falkit.web.options import WebOptions
from falkit.web.pages_base import HTMX, STATIC
from tests.web.helpers import SECRET_KEY, TOKEN, job_done, settings_for

PAGES = ("/", "/gallery", "/loras", "/batches")


@contextlib.asynccontextmanager
async def page_client(emu: Any, options: WebOptions | None = None) -> AsyncIterator[Any]:
    async with FalService(settings_for(emu.base_url)) as service:
        app = create_app(service, options or WebOptions(), routers=pages.routers())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", timeout=60
        ) as client:
            try:
                yield client
            finally:
                await app.state.web.batches.aclose()


@pytest.fixture
async def ui(emu: Any) -> AsyncIterator[Any]:
    async with page_client(emu) as client:
        yield client


def _no_key(text: str) -> None:
    for part in (SECRET_KEY, *SECRET_KEY.split(":")):
        assert part not in text


async def test_every_page_renders_with_its_headers(ui: Any) -> None:
    for path in PAGES:
        answer = await ui.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert f'src="/static/{HTMX}"' in answer.text
        _no_key(answer.text)
    htmx = await ui.get(f"/static/{HTMX}")
    assert htmx.status_code == 200
    assert htmx.content == (STATIC / HTMX).read_bytes()
    assert (await ui.get("/static/../pages.py")).status_code == 404
    assert (await ui.get("/static/pages.py")).status_code == 404
    for missing in ("/jobs/j_nope", "/compare?job_id=j_a&job_id=j_b", "/batches/b_nope",
                    "/?remix=j_nope"):  # fmt: skip
        answer = await ui.get(missing)
        assert answer.status_code == 404
        assert "<h1>Not found</h1>" in answer.text
    paths = (await ui.get("/openapi.json")).json()["paths"]
    assert not any(p == "/" or p.startswith(("/ui/", "/gallery", "/static")) for p in paths)


async def test_form_fields_follow_the_catalog(ui: Any) -> None:
    schnell = (await ui.get("/")).text
    assert re.search(r'name="num_inference_steps"[^>]*max="12"', schnell)
    assert 'name="lora_path_0"' not in schnell  # flux-schnell takes no LoRAs
    dev = (await ui.post("/ui/fields", data={"model": "flux-dev", "prompt": "x"})).text
    assert re.search(r'name="num_inference_steps"[^>]*max="50"', dev)
    sdxl = (await ui.post("/ui/fields", data={"model": "sdxl"})).text
    assert 'name="negative_prompt"' in sdxl
    assert 'name="lora_path_0"' in sdxl


async def test_estimate_and_inline_errors(ui: Any, emu: Any) -> None:
    ok = await ui.post("/ui/estimate", data={"_form": "1", "prompt": "a fox", "model": "flux-dev",
                                             "enable_safety_checker": "true"})  # fmt: skip
    assert "≈ $0.0250" in ok.text
    base = {"_form": "1", "prompt": "a fox", "model": "flux-schnell"}
    bad = await ui.post("/ui/estimate", data={**base, "num_inference_steps": "99"})
    steps = r'id="err-num_inference_steps"[^>]*>must be 1 to 12 for flux-schnell<'
    assert re.search(steps, bad.text)
    seed = await ui.post("/ui/estimate", data={**base, "seed": "abc"})
    assert re.search(r'id="err-seed"[^>]*>[^<]+<', seed.text)
    empty = await ui.post("/ui/estimate", data={"_form": "1", "prompt": "", "model": "sdxl"})
    assert "$" in empty.text
    assert 'id="err-prompt" hx-swap-oob="true"></p>' in empty.text
    refused = await ui.post("/ui/generate", data={"_form": "1", "prompt": " ", "model": "sdxl"})
    assert refused.headers["hx-reswap"] == "none"
    assert re.search(r'id="err-prompt"[^>]*>[^<]+<', refused.text)
    assert emu.stats.submits == 0


async def test_generate_then_the_job_page_gallery_and_remix(ui: Any) -> None:
    started = await ui.post(
        "/ui/generate",
        data={"_form": "1", "prompt": "a red fox", "model": "sdxl", "seed": "9",
              "negative_prompt": "blurry", "enable_safety_checker": "true",
              "image_size": "custom", "image_width": "640", "image_height": "512"},
    )  # fmt: skip
    job_id = re.search(r'data-job="([^"]+)"', started.text)[1]
    assert f'data-events="/api/v1/jobs/{job_id}/events"' in started.text
    job = await job_done(ui, job_id)
    assert job["arguments"]["negative_prompt"] == "blurry"
    assert job["arguments"]["image_size"] == {"width": 640, "height": 512}
    assert "enable_safety_checker" not in job["arguments"]  # the default is left out
    detail = (await ui.get(f"/jobs/{job_id}")).text
    assert "falkit generate &#39;a red fox&#39; --model sdxl --size 640x512 --seed 9" in detail
    assert "-p negative_prompt=blurry" in detail
    assert "Seed: 9, Size: 640x512, Model: sdxl" in detail  # A1111 text read from the file
    remix = (await ui.get(f"/?remix={job_id}")).text
    assert 'value="9"' in remix
    assert ">blurry</textarea>" in remix
    assert 'name="image_width" min="64" max="14142" step="8" value="640"' in remix
    found = (await ui.get("/gallery", params={"q": "red fox"})).text
    assert f'href="/jobs/{job_id}"' in found
    assert f'href="/jobs/{job_id}"' not in (await ui.get("/gallery?q=nothing")).text
    star = await ui.post(f"/ui/jobs/{job_id}/star")
    assert "star on" in star.text
    assert f'href="/jobs/{job_id}"' in (await ui.get("/gallery?starred=1")).text


def _png_with(text: str) -> bytes:
    info = PngInfo()
    info.add_text("parameters", text)
    out = io.BytesIO()
    Image.new("RGB", (32, 32)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


async def test_dropping_an_image_fills_the_form(ui: Any) -> None:
    text = "a castle\nSteps: 12, CFG scale: 5, Seed: 77, Size: 768x512, Model: flux-dev"
    files = {"image": ("castle.png", _png_with(text), "image/png")}
    form = (await ui.post("/ui/parse-image", files=files)).text
    assert "Loaded A1111 parameters from castle.png." in form
    assert ">a castle</textarea>" in form
    assert re.search(r'<option value="flux-dev"\s+selected', form)
    assert re.search(r'name="num_inference_steps" value="12"', form)
    nothing = {"image": ("plain.png", _png_with(""), "image/png")}
    assert (
        "carries no generation parameters" in (await ui.post("/ui/parse-image", files=nothing)).text
    )
    junk = {"image": ("x.png", b"not an image", "image/png")}
    assert "not an image falkit can read" in (await ui.post("/ui/parse-image", files=junk)).text


async def test_token_pages_ask_for_login_and_posts_need_csrf(emu: Any) -> None:
    async with page_client(emu, WebOptions(api_token=TOKEN)) as ui:
        away = await ui.get("/gallery?q=x")
        assert away.status_code == 303
        assert away.headers["location"] == "/login?next=%2Fgallery%3Fq%3Dx"
        htmx = await ui.post("/ui/estimate", headers={"HX-Request": "true"})
        assert htmx.status_code == 401
        assert htmx.headers["hx-redirect"].startswith("/login")
        wrong = await ui.post("/login", data={"token": "nope", "next": "/gallery"})
        assert wrong.status_code == 401
        assert "Wrong token." in wrong.text
        evil = await ui.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert evil.status_code == 303
        assert evil.headers["location"] == "/"
        page = (await ui.get("/")).text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
        assert f'hx-headers=\'{{"X-CSRF-Token": "{csrf}"}}\'' in page
        assert TOKEN not in page
        data = {"_form": "1", "prompt": "a fox", "model": "flux-schnell"}
        assert (await ui.post("/ui/estimate", data=data)).status_code == 403
        allowed = await ui.post("/ui/estimate", data=data, headers={"X-CSRF-Token": csrf})
        assert allowed.status_code == 200
        assert "$" in allowed.text
        out = await ui.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert (await ui.get("/")).status_code == 303


async def test_a_form_post_with_origin_null_is_same_origin_only(ui: Any) -> None:
    data = {"_form": "1", "prompt": "a fox", "model": "flux-schnell"}
    same = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert (await ui.post("/ui/estimate", data=data, headers=same)).status_code == 200
    cross = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}
    assert (await ui.post("/ui/estimate", data=data, headers=cross)).status_code == 403
    bare = {"Origin": "null"}
    assert (await ui.post("/ui/estimate", data=data, headers=bare)).status_code == 403
    other = {"Origin": "http://evil.example"}
    assert (await ui.post("/ui/estimate", data=data, headers=other)).status_code == 403
