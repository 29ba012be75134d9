"""Batch throughput: how close `generate_batch` gets to the account's concurrency limit.

N jobs of L seconds each, on an account that runs at most C at once, cannot finish sooner than
ceil(N / C) x L. This runs such a batch against the in-process emulator (latency L, concurrency
C) and prints the wall time of the whole batch (journaling every job, submitting, following,
downloading, manifest and contact sheet included) divided by that ideal (target: 1.10 or less),
and the HTTP requests made per job.

    BENCH_N=500 BENCH_LATENCY=1.0 BENCH_LIMIT=10 .venv/bin/python bench/batch_throughput.py

BENCH_CONCURRENCY sets the batch's own --concurrency (default 64, jobs kept submitted).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import tempfile
import time
from typing import Any

N = int(os.environ.get("BENCH_N", "500"))
LATENCY = float(os.environ.get("BENCH_LATENCY", "1.0"))
LIMIT = int(os.environ.get("BENCH_LIMIT", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
TARGET = 1.10


async def run_batch(base_url: str) -> tuple[Any, float]:
    from pydantic import SecretStr

    from falkit.config import EMULATOR_KEY, load_settings
    from falkit.service import FalService

    settings = load_settings().with_urls(base_url, api_key=SecretStr(EMULATOR_KEY))
    prompts = [f"benchmark harbour, variation {i}" for i in range(N)]
    async with FalService(settings) as service:
        start = time.perf_counter()
        result = await service.generate_batch(
            prompts, seeds=[1], concurrency=CONCURRENCY, defaults={"image_size": "square"}
        )
        return result, time.perf_counter() - start


def main() -> None:
    os.environ["FALKIT_HOME"] = tempfile.mkdtemp(prefix="falkit-bench-")
    from falkit.emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(latency=LATENCY, concurrency=LIMIT)) as emu:
        result, wall = asyncio.run(run_batch(emu.base_url))
        seen = dict(emu.stats.requests)
        submits = emu.stats.submits
    ideal = math.ceil(N / LIMIT) * LATENCY
    ratio = wall / ideal
    per_job = result.http_requests / max(result.submitted, 1)
    print(f"jobs N                      {N}  (completed {result.completed}, submits {submits})")
    print(f"job latency L               {LATENCY:.2f} s")
    print(f"account limit C             {LIMIT}   (batch --concurrency {CONCURRENCY})")
    print(f"ideal ceil(N/C) x L         {ideal:.2f} s")
    print(f"wall time                   {wall:.2f} s")
    print(f"wall / ideal                {ratio:.3f}  (target <= {TARGET:.2f})")
    print(f"HTTP requests per job       {per_job:.2f}  (emulator saw {seen})")
    ok = result.ok and submits == N and ratio <= TARGET
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
