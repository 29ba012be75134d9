"""Child processes for the emulator's tests: `falkit emulator` with its `export` lines read back.

Children get the default SIGINT handler (pytest's parent may ignore it) and are always stopped:
the signal asked for, then terminate, then kill, each with a deadline. Nothing sleeps; waits
poll a queue or a process with deadlines.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.processes import default_sigint

DEADLINE = 30.0
"""Seconds any single wait may take before the test fails (generous: 2 shared cores)."""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any Fal, falkit or SSL_ variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALKIT_", "SSL_"))}
    return {**env, **extra}


def parse_exports(lines: list[str]) -> dict[str, str]:
    """``export NAME=value`` lines (values shell-quoted) as a dict, in order."""
    env: dict[str, str] = {}
    for line in lines:
        words = shlex.split(line)
        assert len(words) == 2, line
        assert words[0] == "export", line
        name, sep, value = words[1].partition("=")
        assert sep, line
        env[name] = value
    return env


class EmulatorChild:
    """``python -m falkit emulator ARGS`` with ``env``; stdout lines arrive on a queue."""

    def __init__(self, *args: str, env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "falkit", "emulator", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            preexec_fn=default_sigint,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()

    def exports(self, count: int) -> dict[str, str]:
        """The first ``count`` stdout lines (waiting for them), parsed as exports."""
        while len(self.stdout) < count:
            try:
                line = self._lines.get(timeout=DEADLINE)
            except queue.Empty:
                raise AssertionError(f"no export lines in {DEADLINE} s: {self.stderr()}") from None
            assert line is not None, f"emulator exited early: {self.stderr()}"
            self.stdout.append(line)
        return parse_exports(self.stdout[:count])

    def drain(self) -> list[str]:
        """Every stdout line, once the child has closed its stdout (it has exited)."""
        while (line := self._lines.get(timeout=DEADLINE)) is not None:
            self.stdout.append(line)
        self._lines.put(None)  # later calls return at once
        return self.stdout

    def stop(self, sig: int = signal.SIGINT) -> int | None:
        """Stop the child with ``sig``, or failing that terminate, then kill it. The exit code
        if ``sig`` stopped it (or it had already exited); None if it had to be forced."""
        try:
            if self.process.poll() is not None:
                return self.process.returncode
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.force()
                return None
        finally:
            self._stderr.close()

    def force(self) -> None:
        """Terminate, then kill after a deadline (for cleanup whatever the test did)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)
