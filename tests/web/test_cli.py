"""`falkit serve` as a user runs it: a real process, the emulator inside, then stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.web.helpers import TOKEN


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALKIT_"))}
    return {**env, "FALKIT_HOME": str(home), "FALKIT_EMULATOR_LATENCY": "0.1", **extra}


def test_serve_emulator_answers_and_stops(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "falkit", "serve", "--emulator", "--port", "0"],
        env=_env(tmp_path / "home"), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{url}/healthz").json()["ok"] is True
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        started = httpx.post(f"{url}/api/v1/images", json={"prompt": "a lighthouse"})
        assert started.status_code == 202
        events = httpx.get(started.json()["links"]["events"], timeout=60).text
        assert '"type":"completed"' in events
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode in (0, 130), err
    assert "Traceback" not in err


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "falkit", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2
    assert "FALKIT_API_TOKEN" in result.stderr
    short = subprocess.run(
        [sys.executable, "-m", "falkit", "serve", "--port", "0"],
        env=_env(tmp_path / "home", FALKIT_API_TOKEN="short"),
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert short.returncode == 2
    assert TOKEN not in short.stderr


def test_help_does_not_load_the_web_stack() -> None:
    code = (
        "import sys\n"
        "from falkit.cli.app import app\n"
        "assert 'fastapi' not in sys.modules and 'falkit.web' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
