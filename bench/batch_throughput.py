"""Batch throughput: falkit's `generate_batch` next to a minimal reference client, same run.

The Fal emulator runs in its own process (its CPU is not charged to either client), and each
client runs in a fresh child process, so peak memory and CPU are each its own. Two scenarios:

* N=2,000 one-second jobs, 64 in flight (account limit 64): falkit's wall time over the
  reference client's (a plain asyncio + httpx loop doing the same HTTP work — submit, poll,
  result, download to disk — with no journal). Target: at most 1.20. Also printed: falkit's
  peak RSS (target under 300 MB for this 2,000-image batch), SQL statements and HTTP requests
  per completed job (targets: at most 8, and 4).
* N=500 one-second jobs on an account limit of 10 (batch --concurrency 64): wall time over the
  floor ceil(N/10) x 1 s. Target: at most 1.10.

    .venv/bin/python bench/batch_throughput.py            # both scenarios
    BENCH_N=500 .venv/bin/python bench/batch_throughput.py   # a smaller first scenario
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from harness import EmulatorProcess, peak_rss_mb, raise_fd_limit, run_reference

N = int(os.environ.get("BENCH_N", "2000"))
LATENCY = float(os.environ.get("BENCH_LATENCY", "1.0"))
IN_FLIGHT = int(os.environ.get("BENCH_CONCURRENCY", "64"))
SMALL_N, SMALL_LIMIT = 500, 10
RATIO_TARGET, FLOOR_TARGET, RSS_TARGET, SQL_TARGET = 1.20, 1.10, 300.0, 8.0


# ---- the two clients, each run in a child process ----


async def falkit_batch(n: int, concurrency: int) -> dict[str, Any]:
    from falkit.config import EMULATOR_KEY, load_settings
    from falkit.service import FalService

    base = os.environ["BENCH_EMULATOR"]
    settings = load_settings().with_urls(base, api_key=_secret(EMULATOR_KEY))
    prompts = [f"benchmark harbour, variation {i}" for i in range(n)]
    cpu = time.process_time()
    async with FalService(settings) as service:
        store = await service.store()
        before = store.stats
        start = time.perf_counter()
        result = await service.generate_batch(
            prompts, seeds=[1], concurrency=concurrency, defaults={"image_size": "square"}
        )
        wall = time.perf_counter() - start
        sql = store.stats - before
    return {
        "wall": wall,
        "completed": result.completed,
        "failed": result.failed + result.unknown,
        "http_requests": result.http_requests,
        "statements": sql.statements,
        "transactions": sql.transactions,
        "cpu": time.process_time() - cpu,
        "rss_mb": peak_rss_mb(),
    }


async def reference(n: int, concurrency: int) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix="falkit-bench-ref-")
    cpu = time.process_time()
    result = await run_reference(os.environ["BENCH_EMULATOR"], n, concurrency, out_dir=out)
    return {
        "wall": result.wall_seconds,
        "completed": result.completed,
        "failed": result.failed,
        "http_requests": result.requests,
        "cpu": time.process_time() - cpu,
        "rss_mb": peak_rss_mb(),
    }


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def child(kind: str, n: int, concurrency: int) -> None:
    work = falkit_batch if kind == "falkit" else reference
    print(json.dumps(asyncio.run(work(n, concurrency))))


def run_child(kind: str, base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_EMULATOR": base_url}
    env["FALKIT_HOME"] = tempfile.mkdtemp(prefix="falkit-bench-")
    argv = [sys.executable, __file__, "--child", kind, str(n), str(concurrency)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# ---- the scenarios ----


def against_reference() -> bool:
    with EmulatorProcess(latency=LATENCY, concurrency=IN_FLIGHT) as emu:
        ref = run_child("reference", emu.base_url, N, IN_FLIGHT)
        emu.reset()
        ours = run_child("falkit", emu.base_url, N, IN_FLIGHT)
        submits = emu.stats()["submits"]
    ratio = ours["wall"] / ref["wall"]
    per_job = ours["statements"] / max(1, ours["completed"])
    requests = ours["http_requests"] / max(1, ours["completed"])
    print(f"N={N} jobs of {LATENCY:g} s, {IN_FLIGHT} in flight (account limit {IN_FLIGHT})")
    print(f"  ideal ceil(N/C) x L       {math.ceil(N / IN_FLIGHT) * LATENCY:8.2f} s")
    for name, row in (("reference client", ref), ("falkit batch", ours)):
        print(
            f"  {name:24s} {row['wall']:8.2f} s  cpu {row['cpu']:6.2f} s  "
            f"peak RSS {row['rss_mb']:6.1f} MB  {row['http_requests'] / N:5.2f} requests/job  "
            f"completed {row['completed']}"
        )
    print(f"  falkit / reference        {ratio:8.3f}   (target <= {RATIO_TARGET:.2f})")
    print(f"  falkit peak RSS           {ours['rss_mb']:8.1f} MB (target < {RSS_TARGET:.0f})")
    transactions = ours["transactions"] / max(1, ours["completed"])
    print(f"  SQL statements per job    {per_job:8.2f}   (target <= {SQL_TARGET:.0f}; "
          f"{transactions:.2f} transactions per job)")  # fmt: skip
    print(f"  HTTP requests per job     {requests:8.2f}   (emulator saw {submits} submits)")
    return (
        ours["completed"] == N
        and submits == N
        and ratio <= RATIO_TARGET
        and ours["rss_mb"] < RSS_TARGET
        and per_job <= SQL_TARGET
    )


def against_the_floor() -> bool:
    with EmulatorProcess(latency=LATENCY, concurrency=SMALL_LIMIT) as emu:
        ours = run_child("falkit", emu.base_url, SMALL_N, IN_FLIGHT)
        submits = emu.stats()["submits"]
    ideal = math.ceil(SMALL_N / SMALL_LIMIT) * LATENCY
    ratio = ours["wall"] / ideal
    print(f"N={SMALL_N} jobs of {LATENCY:g} s on an account limit of {SMALL_LIMIT}")
    print(f"  ideal ceil(N/C) x L       {ideal:8.2f} s")
    print(f"  falkit batch              {ours['wall']:8.2f} s  (submits {submits})")
    print(f"  wall / ideal              {ratio:8.3f}   (target <= {FLOOR_TARGET:.2f})")
    return ours["completed"] == SMALL_N and submits == SMALL_N and ratio <= FLOOR_TARGET


def main() -> None:
    raise_fd_limit()
    print(f"batch throughput on {os.cpu_count()} cores")
    first = against_reference()
    second = against_the_floor()
    sys.exit(0 if first and second else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
