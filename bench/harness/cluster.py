"""A falkit cluster in child processes: workers, serve replicas, and moto's S3 server.

Used by tests/distributed and bench/scale_out.py. Every child gets the default SIGINT
handler back (pytest's parent may ignore it) and is always stopped: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

DEADLINE = 60.0
BUCKET = "falkit-images"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Child:
    """One command in a child process; its stdout lines arrive on a queue."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, name: str) -> None:
        self.name = name
        self.log = log
        self._stderr: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            preexec_fn=_default_sigint,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = DEADLINE) -> str:
        """The first stdout line starting with ``prefix`` (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: no {prefix!r} line in {timeout:g} s{self.tail()}"
                )
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{self.name} exited ({self.process.wait()}){self.tail()}")
            self.stdout.append(line)
            if line.startswith(prefix):
                return line.strip()

    def tail(self) -> str:
        self._stderr.flush()
        text = self.log.read_text(errors="replace")[-3000:]
        return f"; its stderr:\n{text}" if text else ""

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL, and reap it (a zombie would still look alive to ``is_alive``)."""
        self.process.kill()
        return self.process.wait(timeout=DEADLINE)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGCONT (a paused child cannot die), SIGTERM, then SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if not self._stderr.closed:
            self._stderr.close()
        return self.process.returncode


def falkit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "falkit", *args]


class MotoServer:
    """moto's S3 server on a free loopback port, with one versioned bucket (versions show
    how many times each image was written)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.child = Child(argv, {**os.environ}, log, "moto")

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "FALKIT_STORAGE_URL": f"s3://{BUCKET}/library",
        }

    def start(self) -> MotoServer:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                httpx.get(self.url, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.child.process.poll() is not None:
                    raise AssertionError(
                        "moto's S3 server did not start" + self.child.tail()
                    ) from None
                threading.Event().wait(0.1)
        s3 = self.client()
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    def versions(self, prefix: str = "") -> dict[str, int]:
        """How many versions of each key under ``library/<prefix>`` were written."""
        counts: dict[str, int] = {}
        pages = self.client().get_paginator("list_object_versions")
        for page in pages.paginate(Bucket=BUCKET, Prefix=f"library/{prefix}"):
            for version in page.get("Versions", []):
                counts[version["Key"]] = counts.get(version["Key"], 0) + 1
        return counts

    def stop(self) -> None:
        self.child.stop()
