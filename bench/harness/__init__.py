"""Benchmark harness: the Fal emulator in its own process, a reference client, measurements.

Bench scripts run as ``python bench/x.py``, which puts ``bench/`` on ``sys.path``, so they do::

    from harness import EmulatorProcess, run_reference, peak_rss_mb, SocketSampler

    with EmulatorProcess(latency=1.0, concurrency=64) as emu:
        settings = emu.settings()          # falkit Settings pointed at it
        ...                                # falkit's work
        print(emu.stats(), emu.cpu_seconds())
        emu.reset()
        result = asyncio.run(run_reference(emu.base_url, 2000, 64, out_dir=tmp))

The emulator's CPU is spent in its own process (read it with ``cpu_seconds()``), so it is not
charged to the process being measured.
"""

from harness.emulator import EmulatorProcess, process_cpu_seconds, process_peak_rss_mb
from harness.measure import SocketSampler, open_sockets, peak_rss_mb, raise_fd_limit
from harness.reference import ReferenceResult, run_reference

__all__ = [
    "EmulatorProcess",
    "ReferenceResult",
    "SocketSampler",
    "open_sockets",
    "peak_rss_mb",
    "process_cpu_seconds",
    "process_peak_rss_mb",
    "raise_fd_limit",
    "run_reference",
]
