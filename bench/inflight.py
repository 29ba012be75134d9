"""Thousands of jobs in flight in one FalService: every job Fal accepted completes.

5,000 one-image jobs are started at once on an emulated account that runs 10,000 at a time
(30-second jobs; the emulator in its own process). Printed: how many completed and failed,
the submits the emulator saw (exactly one per job), falkit's peak memory (target under 500 MB)
and the most sockets it had open at once (target: the stream cap plus a small constant), next
to the reference client doing the same 5,000 jobs by polling (same run, its own process).

    .venv/bin/python bench/inflight.py
    BENCH_N=1000 BENCH_LATENCY=10 .venv/bin/python bench/inflight.py   # smaller
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from harness import EmulatorProcess, SocketSampler, peak_rss_mb, raise_fd_limit, run_reference

N = int(os.environ.get("BENCH_N", "5000"))
LATENCY = float(os.environ.get("BENCH_LATENCY", "30"))
SERVER_CONCURRENCY = 10_000
RSS_TARGET = 500.0
SOCKET_SLACK = 24  # short-request pool (16) and a few more


async def falkit_inflight() -> dict[str, Any]:
    from falkit.config import EMULATOR_KEY, load_settings
    from falkit.service import FalService

    settings = load_settings().with_urls(
        os.environ["BENCH_EMULATOR"], api_key=_secret(EMULATOR_KEY)
    )
    start = time.perf_counter()
    async with FalService(settings) as service:
        requests = [
            service.request(f"in flight {i}", seed=i, image_size="square") for i in range(N)
        ]
        handles = [await service.start_image(request) for request in requests]
        started = time.perf_counter() - start
        results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
        engine = await service.engine()
        peak_streams = engine.follower.peak_streams
        stream_cap = engine.options.follow.stream_cap
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    return {
        "wall": time.perf_counter() - start,
        "started_in": started,
        "completed": len(results) - len(failures),
        "failed": len(failures),
        "errors": failures[:5],
        "peak_streams": peak_streams,
        "stream_cap": stream_cap,
        "rss_mb": peak_rss_mb(),
    }


async def reference_inflight() -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix="falkit-bench-ref-")
    result = await run_reference(
        os.environ["BENCH_EMULATOR"], N, N, poll_interval=1.0, out_dir=out, timeout=600
    )
    return {
        "wall": result.wall_seconds,
        "completed": result.completed,
        "failed": result.failed,
        "rss_mb": peak_rss_mb(),
    }


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def child(kind: str) -> None:
    work = falkit_inflight if kind == "falkit" else reference_inflight
    with SocketSampler() as sockets:
        figures = asyncio.run(work())
    figures["peak_sockets"] = sockets.peak
    print(json.dumps(figures))


def run_child(kind: str, base_url: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_EMULATOR": base_url}
    env["FALKIT_HOME"] = tempfile.mkdtemp(prefix="falkit-bench-")
    argv = [sys.executable, __file__, "--child", kind]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    raise_fd_limit()
    with EmulatorProcess(latency=LATENCY, concurrency=SERVER_CONCURRENCY) as emu:
        ours = run_child("falkit", emu.base_url)
        submits = emu.stats()["submits"]
        emu.reset()
        ref = run_child("reference", emu.base_url)
    cap = ours["stream_cap"]
    rss, sockets = ours["rss_mb"], ours["peak_sockets"]
    print(f"{N} one-image jobs of {LATENCY:g} s started at once, "
          f"account limit {SERVER_CONCURRENCY} ({os.cpu_count()} cores)")  # fmt: skip
    print(f"  falkit: completed {ours['completed']}, failed {ours['failed']}, "
          f"submits {submits} (all started in {ours['started_in']:.1f} s, "
          f"all done in {ours['wall']:.1f} s)")  # fmt: skip
    for error in ours["errors"]:
        print(f"    {error}")
    print(f"  peak RSS           falkit {rss:7.1f} MB   reference {ref['rss_mb']:7.1f} MB"
          f"   ratio {rss / ref['rss_mb']:.2f}   (target < {RSS_TARGET:.0f} MB)")  # fmt: skip
    print(f"  most sockets open  falkit {sockets:7d}      reference {ref['peak_sockets']:7d}"
          f"      ratio {sockets / max(1, ref['peak_sockets']):.3f}"
          f"   (target <= stream cap {cap} + {SOCKET_SLACK})")  # fmt: skip
    print(f"  status streams at once: {ours['peak_streams']} (cap {cap})")
    print(f"  wall               falkit {ours['wall']:7.1f} s    reference {ref['wall']:7.1f} s"
          f"    ratio {ours['wall'] / ref['wall']:.2f}")  # fmt: skip
    ok = (
        ours["completed"] == N
        and ours["failed"] == 0
        and submits == N
        and ours["rss_mb"] < RSS_TARGET
        and ours["peak_sockets"] <= cap + SOCKET_SLACK
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
