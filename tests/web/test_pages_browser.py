"""The web page in a real browser (Debian's Chromium under Playwright) against a real
`falkit serve --emulator`: generate with live progress, the gallery (search, star, compare,
delete), a job's page and remix, dropping an image on the form, training a LoRA, a batch.

One server and one browser for the module (CI-sized); tests run in order and build on each
other's jobs. Screenshots of each page are saved (see browser.py) and looked at by people.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.web.browser import Serve, chromium, chromium_missing, shot

pytestmark = pytest.mark.timeout(300)
WAIT = 30_000  # ms: the emulator answers in about a second; CI machines are shared


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = chromium_missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("FALKIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("falkit-home"))
    try:
        yield serve
    finally:
        serve.stop()


@pytest.fixture(scope="module")
def page(browser: Any, server: Serve) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield tab
    context.close()
    assert errors == [], errors  # no script error and no CSP refusal on any page


def _generate(page: Any, prompt: str, **fields: str) -> Any:
    from playwright.sync_api import expect

    page.goto("/")
    page.fill("#prompt", prompt)
    for name, value in fields.items():
        page.locator(f'#gen-form [name="{name}"]').fill(value)
    expect(page.locator("#estimate .cost")).to_contain_text("$")
    page.click("#gen-form button[type=submit]")
    card = page.locator(".run").first
    expect(card.locator(".prompt")).to_have_text(prompt)
    return card


def test_generate_shows_progress_and_the_image(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    card = _generate(page, "a lighthouse at dusk, oil painting", seed="42")
    expect(card.locator(".state")).to_have_text(re.compile(r"queued|running|downloading|done"))
    seen = card.locator(".state").text_content()
    if "done" not in seen:
        shot(page, shots, "progress")
    expect(card).to_have_class(re.compile(r"\bdone\b"))
    expect(card.locator(".images img")).to_have_count(1)
    assert card.locator("progress.steps").evaluate("p => p.value === p.max")
    assert float(card.locator(".elapsed").text_content().split()[0]) > 0
    assert "queued" in seen or "running" in seen or "step" in seen or "done" in seen
    assert card.locator(".images img").evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, shots, "generate")


def test_inline_errors_and_advanced_options(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    page.fill("#prompt", "a red fox")
    page.click(".advanced summary")
    page.fill('#gen-form [name="num_inference_steps"]', "99")
    expect(page.locator("#err-num_inference_steps")).to_contain_text("1 to 12 for flux-schnell")
    assert page.locator('#gen-form [name="num_inference_steps"]').get_attribute("max") == "12"
    page.select_option('#gen-form [name="model"]', "flux-dev")
    steps = page.locator('#gen-form [name="num_inference_steps"]')
    expect(steps).to_have_attribute("max", "50")  # the model's own range
    page.click(".advanced summary")
    page.fill('#gen-form [name="num_inference_steps"]', "60")
    expect(page.locator("#err-num_inference_steps")).to_contain_text("1 to 50 for flux-dev")
    shot(page, shots, "form-errors")
    page.fill('#gen-form [name="num_inference_steps"]', "20")
    expect(page.locator("#err-num_inference_steps")).to_be_empty()
    expect(page.locator("#estimate .cost")).to_contain_text("$0.0250")  # 0.79 MP, rounded up


def test_gallery_search_star_and_compare(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    card = _generate(page, "an owl in the snow", seed="7")
    expect(card).to_have_class(re.compile(r"\bdone\b"))
    page.goto("/gallery")
    expect(page.locator(".tile")).to_have_count(2)
    page.fill('#filters [name="q"]', "owl")
    expect(page.locator(".tile")).to_have_count(1)
    assert "q=owl" in page.url
    owl = page.locator(".tile").first
    owl.locator(".star").click()
    expect(owl.locator(".star")).to_have_class(re.compile(r"\bon\b"))
    page.fill('#filters [name="q"]', "")
    page.check('#filters [name="starred"]')
    expect(page.locator(".tile")).to_have_count(1)
    page.uncheck('#filters [name="starred"]')
    expect(page.locator(".tile")).to_have_count(2)
    for tile in page.locator(".tile .pick").all():
        tile.check()
    expect(page.locator("#selection .count")).to_have_text("2 selected")
    shot(page, shots, "gallery")
    page.click("#selection button[formaction='/compare']")
    expect(page.locator(".compare img")).to_have_count(2)
    expect(page.locator("tr.diff th", has_text="seed")).to_have_count(1)
    shot(page, shots, "compare")


def test_job_page_and_remix(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/gallery?q=lighthouse")
    page.locator(".tile a.pic").first.click()
    expect(page.locator(".prompt-text")).to_have_text("a lighthouse at dusk, oil painting")
    expect(page.locator("#cli")).to_contain_text("falkit generate 'a lighthouse at dusk")
    expect(page.locator("#cli")).to_contain_text("--seed 42")
    expect(page.locator("#python")).to_contain_text("fal.generate_image(")
    expect(page.locator("#a1111")).to_contain_text("Seed: 42")
    shot(page, shots, "job")
    page.click("text=Remix")
    expect(page.locator("#prompt")).to_have_value("a lighthouse at dusk, oil painting")
    expect(page.locator('#gen-form [name="seed"]')).to_have_value("42")
    expect(page.locator(".note")).to_contain_text("Remixing")
    shot(page, shots, "remix")
    page.go_back()
    page.click("text=New seed")
    page.wait_for_url(re.compile(r"/\?job=j_"))
    card = page.locator(".run").first
    expect(card).to_have_class(re.compile(r"\bdone\b"))


def _a1111_png() -> bytes:
    info = PngInfo()
    info.add_text(
        "parameters",
        "a castle on a hill <lora:detail:0.7>\nNegative prompt: blurry\n"
        "Steps: 9, Sampler: Euler a, CFG scale: 6, Seed: 1234, Size: 640x512, Model: sdxl",
    )
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_drop_an_image_on_the_form(page: Any, server: Serve, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    kept = next(p for p in sorted(server.home.rglob("*.jp*g")) if p.parent.parent.name == "images")
    page.goto("/")
    page.set_input_files("[data-load-image]", str(kept))
    expect(page.locator(".note").first).to_contain_text("Loaded falkit's record")
    expect(page.locator("#prompt")).not_to_have_value("")
    theirs = tmp_path / "a1111.png"
    theirs.write_bytes(_a1111_png())
    data = list(theirs.read_bytes())
    page.evaluate(
        """(bytes) => {
            const file = new File([new Uint8Array(bytes)], "a1111.png", {type: "image/png"});
            const drop = new DataTransfer();
            drop.items.add(file);
            const form = document.getElementById("gen-form");
            form.dispatchEvent(new DragEvent("drop", {dataTransfer: drop, bubbles: true}));
        }""",
        data,
    )
    expect(page.locator(".note").first).to_contain_text("Loaded A1111 parameters")
    expect(page.locator("#prompt")).to_have_value("a castle on a hill")
    expect(page.locator('#gen-form [name="model"]')).to_have_value("sdxl")
    expect(page.locator('#gen-form [name="num_inference_steps"]')).to_have_value("9")
    expect(page.locator('#gen-form [name="negative_prompt"]')).to_have_value("blurry")
    expect(page.locator('#gen-form [name="lora_path_0"]')).to_have_value("detail")
    expect(page.locator(".note", has_text="Sampler")).to_have_count(1)


def _training_images(folder: Path) -> list[str]:
    paths = []
    for index in range(4):
        path = folder / f"me-{index}.png"
        Image.new("RGB", (96, 96), (40 * index, 90, 160)).save(path)
        paths.append(str(path))
    return paths


def test_train_a_lora_from_the_form(page: Any, shots: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/loras")
    page.set_input_files('#train-form [name="files"]', _training_images(tmp_path))
    page.fill('#train-form [name="trigger_word"]', "TOK")
    page.fill('#train-form [name="name"]', "me")
    page.fill('#train-form [name="steps"]', "10")
    page.click("#train-form button[type=submit]")
    card = page.locator(".run").first
    expect(card.locator(".prompt")).to_have_text("Training me")
    expect(card).to_have_class(re.compile(r"\bdone\b"))
    expect(card.locator(".ready")).to_contain_text("“me” is in the library")
    expect(page.locator("#lora-table td b", has_text="me")).to_have_count(1)
    shot(page, shots, "loras")
    page.click("#lora-table a.btn")
    expect(page.locator('#gen-form [name="lora_path_0"]')).to_have_value("me")
    expect(page.locator('#gen-form [name="model"]')).to_have_value("flux-lora")
    expect(page.locator(".lora-row .trigger").first).to_contain_text("TOK")


def test_a_batch_from_its_page(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/batches")
    page.fill('#batch-form [name="prompts"]', "a red kite\na blue kite")
    page.fill('#batch-form [name="seeds"]', "1-2")
    page.fill('#batch-form [name="budget"]', "1")
    expect(page.locator("#batch-estimate")).to_contain_text("4 jobs")
    page.click("#batch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/batches/b_"))
    expect(page.locator(".batch-state")).to_have_attribute("data-status", "done")
    expect(page.locator(".batch-state tr td.status-completed")).to_have_count(4)
    expect(page.locator(".sheet img")).to_be_visible()
    assert page.locator(".sheet img").evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, shots, "batch")


def test_delete_from_the_gallery(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/gallery?q=owl")
    expect(page.locator(".tile")).to_have_count(1)
    page.locator(".tile .pick").first.check()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#selection button.danger")
    expect(page.locator(".note")).to_contain_text("Deleted 1 job(s), 1 image file(s)")
    expect(page.locator(".tile")).to_have_count(0)


def test_token_server_asks_once_and_forms_carry_csrf(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, shots: Path
) -> None:
    from playwright.sync_api import expect

    token = "browser-test-token-0123456789"
    serve = Serve(tmp_path_factory.mktemp("falkit-token-home"), token=token, latency=0.3)
    context = browser.new_context(base_url=serve.url, viewport={"width": 1200, "height": 800})
    try:
        tab = context.new_page()
        tab.goto("/gallery")
        expect(tab.locator("h1")).to_have_text("Log in")
        tab.fill('[name="token"]', "wrong-token-wrong-token")
        tab.click("button.primary")
        expect(tab.locator(".err")).to_have_text("Wrong token.")
        shot(tab, shots, "login")
        tab.fill('[name="token"]', token)
        tab.click("button.primary")
        tab.wait_for_url(re.compile(r"/gallery$"))
        tab.goto("/")
        tab.fill("#prompt", "a token-guarded fox")
        expect(tab.locator("#estimate .cost")).to_contain_text("$")
        tab.click("#gen-form button[type=submit]")
        expect(tab.locator(".run").first).to_have_class(re.compile(r"\bdone\b"))
        html = tab.content()
        assert token not in html
        cookies = context.cookies()
        assert any(c["name"] == "falkit_session" and c["httpOnly"] for c in cookies)
    finally:
        context.close()
        serve.stop()
