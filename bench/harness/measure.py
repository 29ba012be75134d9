"""What a benchmark measures about its own process: peak memory and sockets open at once."""

from __future__ import annotations

import os
import resource
import stat
import sys
import threading
import time
from types import TracebackType


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (getrusage's ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def open_sockets(fd_dir: str = "/proc/self/fd") -> int:
    """How many of this process's file descriptors are sockets right now (Linux /proc)."""
    count = 0
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return 0
    for name in names:
        try:
            if stat.S_ISSOCK(os.stat(f"{fd_dir}/{name}").st_mode):
                count += 1
        except OSError:  # closed between listdir and stat
            continue
    return count


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise the soft open-files limit towards ``wanted`` (up to the hard limit); the new soft
    limit. Children started afterwards (the emulator process) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class SocketSampler:
    """A thread sampling ``open_sockets()`` every ``interval`` seconds; ``peak`` is the most
    sockets seen open at once while the ``with`` block ran (sampled, so a burst shorter than
    the interval can be missed).

    One sample stats every descriptor (a few ms with thousands open), so the wait between
    samples stretches to ``max_share`` of the time: the sampler never takes more than about
    that share of a core from the process it measures.
    """

    def __init__(
        self, interval: float = 0.01, fd_dir: str = "/proc/self/fd", max_share: float = 0.1
    ) -> None:
        self.interval = interval
        self.fd_dir = fd_dir
        self.max_share = max_share
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        now = open_sockets(self.fd_dir)
        self.peak = max(self.peak, now)
        self.samples += 1
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.sample()
            cost = time.perf_counter() - started
            self._stop.wait(max(self.interval, cost / self.max_share - cost))

    def __enter__(self) -> SocketSampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="socket-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()
