"""What a benchmark measures about its own process: peak memory and sockets open at once."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
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


_SAMPLER = """
import os, stat, sys, time
pid, interval, share = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
fd_dir, peak, samples = f"/proc/{pid}/fd", 0, 0
os.set_blocking(0, False)
while True:
    started = time.perf_counter()
    count = 0
    try:
        names = os.listdir(fd_dir)
    except OSError:
        break
    for name in names:
        try:
            count += stat.S_ISSOCK(os.stat(f"{fd_dir}/{name}").st_mode)
        except OSError:
            pass
    peak, samples = max(peak, count), samples + 1
    if samples == 1:
        print("ready", flush=True)
    cost = time.perf_counter() - started
    time.sleep(max(interval, cost / share - cost))
    try:
        if os.read(0, 1) == b"":
            break
    except BlockingIOError:
        pass
print(peak, samples, flush=True)
"""


class SocketSampler:
    """The most sockets this process had open at once while the ``with`` block ran.

    A helper process stats every descriptor in ``/proc/<pid>/fd`` every ``interval`` seconds
    and keeps the maximum (``peak``; ``samples`` says how many it took). It is a process, not
    a thread: a thread's thousands of ``stat`` calls per sample would each hand the GIL back
    and forth with the busy event loop it measures, slowing both (measured: one sample per
    1.4 s at 5,000 sockets). With thousands of sockets a sample takes milliseconds, so the wait
    between samples stretches to keep the helper under ``max_share`` of a core. A burst shorter
    than the interval can be missed; the counts at entry and exit are always included.
    """

    def __init__(self, interval: float = 0.01, max_share: float = 0.1) -> None:
        self.interval = interval
        self.max_share = max_share
        self.peak = 0
        self.samples = 0
        self._process: subprocess.Popen[str] | None = None

    def sample(self) -> int:
        """Count now, from this process (also done on entry and exit)."""
        now = open_sockets()
        self.peak = max(self.peak, now)
        self.samples += 1
        return now

    def __enter__(self) -> SocketSampler:
        self.sample()
        argv = [sys.executable, "-c", _SAMPLER, str(os.getpid())]
        self._process = subprocess.Popen(
            [*argv, str(self.interval), str(self.max_share)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self._process.stdout.readline()  # "ready": the first sample is taken
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process = self._process
        if process is not None:
            out, _ = process.communicate(timeout=30)  # closing stdin stops it
            fields = out.split()
            if len(fields) == 2:
                self.peak = max(self.peak, int(fields[0]))
                self.samples += int(fields[1])
        self.sample()
