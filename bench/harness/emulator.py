"""The Fal emulator as a separate process (``python -m falkit emulator --port 0 --env``).

Its CPU time is its own, so a benchmark of falkit is not charged for serving the fake Fal.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from falkit.config import Settings

ENV_NAMES = frozenset(
    {
        "FALKIT_QUEUE_URL",
        "FALKIT_RUN_URL",
        "FALKIT_REST_URL",
        "FALKIT_CDN_URL",
        "FALKIT_API_URL",
        "FAL_API_KEY",
    }
)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    fields = text[text.rindex(")") + 2 :].split()  # the name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float:
    """Peak resident set size of process ``pid`` in MiB (VmHWM in Linux /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return 0.0


class EmulatorProcess:
    """Start ``falkit emulator`` in a subprocess for the ``with`` block, then stop it.

    ``base_url``, ``env`` (the exported variables) and ``pid`` are set once it listens.
    ``stats()`` / ``reset()`` use its ``/_emulator/stats`` route. On exit it is sent SIGTERM,
    and SIGKILL if it has not ended within ``stop_timeout`` seconds.

    ``plain_images`` (the default here) serves one cached picture per size and format with the
    prompt and seed in its metadata, so downloads cost the emulator almost nothing; pass False
    to have every image drawn (about 3 ms of emulator CPU per 1024x768 JPEG).
    """

    def __init__(
        self,
        latency: float = 1.0,
        concurrency: int = 2,
        training_seconds: float = 3.0,
        *,
        plain_images: bool = True,
        access_log: bool = False,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        python: str = sys.executable,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.latency = latency
        self.concurrency = concurrency
        self.training_seconds = training_seconds
        self.plain_images = plain_images
        self.access_log = access_log
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.python = python
        self.extra_env = extra_env or {}
        self.base_url = ""
        self.env: dict[str, str] = {}
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the emulator process is not running")
        return self._process.pid

    def command(self) -> list[str]:
        argv = [self.python, "-m", "falkit", "emulator", "--port", "0", "--env"]
        argv += ["--latency", str(self.latency), "--concurrency", str(self.concurrency)]
        argv += ["--training-seconds", str(self.training_seconds)]
        argv += ["--plain-images"] if self.plain_images else []
        return argv + (["--access-log"] if self.access_log else [])

    # ---- lifecycle ----

    def start(self) -> EmulatorProcess:
        """Start the process and wait (up to ``start_timeout``) for its ``export`` lines."""
        # open until stop(): it holds the child's stderr for error messages
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        child_env = {**os.environ, **self.extra_env}
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=child_env,
        )
        self._reader = threading.Thread(
            target=self._read_stdout, name="emulator-stdout", daemon=True
        )
        self._reader.start()
        try:
            self._wait_for_env()
        except BaseException:
            self.stop()
            raise
        queue_url = self.env["FALKIT_QUEUE_URL"]
        self.base_url = queue_url.removesuffix("/queue")
        return self

    def _read_stdout(self) -> None:
        """Hand stdout lines to start(), then keep draining so the child never blocks on it."""
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_env(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self.env.keys() >= ENV_NAMES:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"emulator printed no env lines within {self.start_timeout:g} s"
                    + self._stderr_tail()
                )
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self._process.wait(timeout=5) if self._process else None
                raise RuntimeError(
                    f"emulator exited ({code}) before listening" + self._stderr_tail()
                )
            name, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and name in ENV_NAMES:
                self.env[name] = value

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read()[-2000:]
        return f"; its stderr:\n{text}" if text else ""

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; the exit code."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.stop_timeout)
        if process is not None:
            self.returncode = process.returncode
            if self._reader is not None:
                self._reader.join(timeout=5)  # ends at the pipe's EOF
            if process.stdout is not None and not (self._reader and self._reader.is_alive()):
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return self.returncode

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- what benchmarks use ----

    def settings(self) -> Settings:
        """falkit settings pointing all four roles at this emulator, with its key."""
        from pydantic import SecretStr

        from falkit.config import EMULATOR_KEY, load_settings

        return load_settings().with_urls(self.base_url, api_key=SecretStr(EMULATOR_KEY))

    def stats(self) -> dict[str, Any]:
        """GET /_emulator/stats: submits, submits_by_endpoint, requests, jobs, webhooks."""
        response = httpx.get(f"{self.base_url}/_emulator/stats", timeout=30.0)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def reset(self) -> dict[str, Any]:
        """POST /_emulator/stats/reset: counters back to zero (jobs are kept); the new stats."""
        response = httpx.post(f"{self.base_url}/_emulator/stats/reset", timeout=30.0)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def cpu_seconds(self) -> float:
        """CPU seconds the emulator process has used so far."""
        return process_cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        """The emulator process's peak resident set size so far, in MiB (VmHWM)."""
        return process_peak_rss_mb(self.pid)
