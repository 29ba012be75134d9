"""Start-up cost: `falkit --help`, `import falkit`, and a whole `falkit generate` of a 1 s job.

Targets: `falkit --help` at most 0.25 s and `import falkit` at most 0.15 s above bare Python;
`falkit generate` of a 1-second job on the emulator (its own process) ends within 0.6 s of the
job's length (median of 5), shown next to the same job run by a warm in-process FalService.
Each command runs several times in fresh processes; medians are reported, and `import
fal_client` (the official client) is timed for scale.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from harness import EmulatorProcess

RUNS = 7
GENERATE_RUNS = 5
JOB_SECONDS = 1.0
GENERATE_TARGET = 0.6


def median_seconds(argv: list[str], runs: int = RUNS, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def in_process(settings: Any) -> float:
    """Median wall time of warm generate_image calls (the service already open)."""
    from falkit.service import FalService

    async def go() -> float:
        samples = []
        async with FalService(settings) as service:
            await service.generate_image("warm-up", seed=0)
            for index in range(GENERATE_RUNS):
                start = time.perf_counter()
                await service.generate_image("a lighthouse at dusk", seed=index + 1)
                samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return asyncio.run(go())


def generate_figures() -> tuple[float, float]:
    home = tempfile.mkdtemp(prefix="falkit-bench-")
    os.environ["FALKIT_HOME"] = home
    with EmulatorProcess(latency=JOB_SECONDS, concurrency=8) as emu:
        env = {**os.environ, **emu.env, "FALKIT_HOME": home}
        argv = [sys.executable, "-m", "falkit", "generate", "a lighthouse at dusk", "--json"]
        median_seconds(argv, runs=1, env=env)  # creates the library once, as a first run would
        cli = median_seconds(argv, runs=GENERATE_RUNS, env=env)
        warm = in_process(emu.settings())
    return cli, warm


def main() -> None:
    python = sys.executable
    base = median_seconds([python, "-c", "pass"])
    imp = median_seconds([python, "-c", "import falkit"])
    helptext = median_seconds([python, "-m", "falkit", "--help"])
    fal = median_seconds([python, "-c", "import fal_client"])
    cli, warm = generate_figures()
    print(f"start-up on {os.cpu_count()} cores")
    print(f"python -c pass        {base:.3f} s")
    print(f"import falkit         {imp:.3f} s  (+{imp - base:.3f} s, target +0.150)")
    print(f"falkit --help         {helptext:.3f} s  (+{helptext - base:.3f} s, target +0.250)")
    print(f"import fal_client     {fal:.3f} s  (+{fal - base:.3f} s, official client, for scale)")
    ratio = (helptext - base) / max(fal - base, 1e-9)
    print(f"falkit --help overhead / import fal_client overhead = {ratio:.2f}")
    over = cli - JOB_SECONDS
    print(f"falkit generate, {JOB_SECONDS:g} s job  {cli:.3f} s  (+{over:.3f} s over the job, "
          f"target +{GENERATE_TARGET:.1f}; median of {GENERATE_RUNS})")  # fmt: skip
    print(f"in-process, warm      {warm:.3f} s  (+{warm - JOB_SECONDS:.3f} s over the job)")
    ok = helptext - base <= 0.25 and cli - JOB_SECONDS <= GENERATE_TARGET
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
