"""`falkit emulator` as a separate process: `--env` lines once listening, clean stops."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from falkit.config import EMULATOR_KEY
from tests.processes import default_sigint, run

from .conftest import AUTH

NAMES = [
    "FALKIT_QUEUE_URL",
    "FALKIT_RUN_URL",
    "FALKIT_REST_URL",
    "FALKIT_CDN_URL",
    "FALKIT_API_URL",
    "FAL_API_KEY",
]
DEADLINE = 30.0


class Emulator:
    """A `python -m falkit emulator` child; stdout lines arrive on a queue."""

    def __init__(self, *args: str, stderr_path: Path) -> None:
        self.stderr_file = stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "falkit", "emulator", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            text=True,
            preexec_fn=default_sigint,
        )
        self.stderr_path = stderr_path
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_lines(self, count: int) -> list[str]:
        deadline = time.monotonic() + DEADLINE
        while len(self.stdout) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no env lines in {DEADLINE} s: {self.stderr()}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"emulator exited early: {self.stderr()}"
            self.stdout.append(line)
        return self.stdout[:count]

    def stderr(self) -> str:
        if not self.stderr_file.closed:
            self.stderr_file.flush()
        return self.stderr_path.read_text()

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=DEADLINE)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.stderr_file.close()
        while (line := self.lines.get(timeout=DEADLINE)) is not None:
            self.stdout.append(line)
        return code


@pytest.fixture
def start(tmp_path: Path) -> Iterator[type[Emulator]]:
    started: list[Emulator] = []

    class Started(Emulator):
        def __init__(self, *args: str) -> None:
            super().__init__(*args, stderr_path=tmp_path / f"stderr-{len(started)}.txt")
            started.append(self)

    yield Started
    for emulator in started:
        if emulator.process.poll() is None:
            emulator.process.kill()
            emulator.process.wait()


def _parse(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        assert line.endswith("\n")
        assert line.startswith("export ")
        name, _, value = line[len("export ") : -1].partition("=")
        env[name] = value
    return env


def test_env_lines_point_at_a_listening_emulator(start: type[Emulator]) -> None:
    emulator = start("--port", "0", "--env", "--latency", "0.05", "--concurrency", "3")
    lines = emulator.read_lines(6)
    env = _parse(lines)
    assert list(env) == NAMES
    assert env["FAL_API_KEY"] == EMULATOR_KEY
    base = env["FALKIT_QUEUE_URL"].removesuffix("/queue")
    assert base.startswith("http://127.0.0.1:")
    assert not base.endswith(":0")
    for name, role in zip(NAMES[:5], ["queue", "run", "rest", "cdn", "api"], strict=True):
        assert env[name] == f"{base}/{role}"

    # printed once listening: the first request needs no retry
    reply = httpx.post(
        f"{env['FALKIT_QUEUE_URL']}/fal-ai/flux/schnell", json={"prompt": "x"}, headers=AUTH
    )
    assert reply.status_code == 200
    assert reply.json()["status_url"].startswith(env["FALKIT_QUEUE_URL"] + "/")
    stats = httpx.get(f"{base}/_emulator/stats").json()
    assert stats["submits"] == 1
    assert stats["submits_by_endpoint"] == {"fal-ai/flux/schnell": 1}

    assert emulator.stop(signal.SIGINT) == 0
    assert emulator.stdout == lines  # nothing but the export lines on stdout
    err = emulator.stderr()
    assert f"Fal emulator on {base}" in err
    for line in lines:  # the banner repeats them, one per line, unwrapped
        assert f"  {line}" in err
    assert "Traceback" not in err
    assert "POST /queue" not in err  # no access log unless asked


def test_access_log_and_knobs_reach_the_server(start: type[Emulator]) -> None:
    emulator = start(
        "--port", "0", "--env", "--access-log", "--latency", "0", "--training-seconds", "0.5"
    )  # fmt: skip
    env = _parse(emulator.read_lines(6))
    run = httpx.post(
        f"{env['FALKIT_RUN_URL']}/fal-ai/flux/schnell", json={"prompt": "x"}, headers=AUTH
    )
    assert run.status_code == 200
    assert emulator.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "POST /run/fal-ai/flux/schnell" in emulator.stderr()
    assert len(emulator.stdout) == 6  # the access log stays off stdout


def test_busy_port_is_one_line_with_the_fix(start: type[Emulator]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        emulator = start("--port", str(port), "--env")
        code = emulator.process.wait(timeout=DEADLINE)
    assert code == 1
    assert emulator.stop() == 1
    assert emulator.stdout == []
    err = emulator.stderr()
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "pick another --port" in err
    assert "Traceback" not in err


def test_invalid_concurrency_is_a_usage_error(start: type[Emulator]) -> None:
    emulator = start("--port", "0", "--concurrency", "0")
    assert emulator.process.wait(timeout=DEADLINE) == 2
    assert "concurrency must be >= 1" in emulator.stderr()
    emulator.stop()


def test_help_lists_the_new_options() -> None:
    out = run(
        [sys.executable, "-m", "falkit", "emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    ).stdout
    options = ("--env", "--access-log", "--training-seconds", "--latency", "--concurrency")
    for option in (*options, "--tls", "--data"):
        assert option in out
