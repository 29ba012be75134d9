"""Browser tests' machinery: a real `falkit serve --emulator` and Debian's Chromium.

The server is the command itself in a subprocess (its first stdout line says where it
listens), with its own FALKIT_HOME. The browser is the distribution's Chromium
(``/usr/bin/chromium``, or FALKIT_CHROMIUM) driven by Playwright from pip; nothing is ever
downloaded (no `playwright install`): ``scripts/ensure-browser.sh`` installs the package when
it is missing, and without it these tests skip (fail under CI). Screenshots go to
FALKIT_SCREENSHOTS, or a temporary folder the tests print.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FALKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
_CLEARED = ("FAL_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "FALKIT_DATABASE_URL",
            "FALKIT_API_TOKEN", "FALKIT_PUBLIC_URL", "FALKIT_MAX_SPEND_USD", "FALKIT_EMULATOR",
            "FALKIT_STORAGE_URL")  # fmt: skip


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).is_file() and shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM} (scripts/ensure-browser.sh installs Debian's)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


class Serve:
    """`falkit serve --emulator --port 0` in a subprocess; ``url`` once it listens."""

    def __init__(self, home: Path, *, token: str | None = None, latency: float = 1.0) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(FALKIT_HOME=str(home), FALKIT_EMULATOR_LATENCY=str(latency),
                   FALKIT_CONFIG_DIR=str(home / "config"), NO_COLOR="1")  # fmt: skip
        if token:
            env["FALKIT_API_TOKEN"] = token
        self.home = home
        self.log = home / "serve.log"
        self._err = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "falkit", "serve", "--emulator", "--port", "0"],
            stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=home,
        )  # fmt: skip
        self.url = self._wait_for_url(timeout=60)

    def _wait_for_url(self, timeout: float) -> str:
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2).decode().strip()
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith("serving "):
                return line.removeprefix("serving ")
        self.stop()
        raise RuntimeError(f"falkit serve did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._err.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, folder: Path, name: str) -> Path:
    """A full-page screenshot of what the page shows now."""
    target = folder / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target
