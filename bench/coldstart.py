"""Cold-start cost of `falkit --help` and `import falkit`, next to `python -c pass`.

Targets: `falkit --help` at most 0.25 s and `import falkit` at most 0.15 s above bare Python.
Each command runs several times in fresh processes; the median is reported.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 7


def median_seconds(argv: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    python = sys.executable
    base = median_seconds([python, "-c", "pass"])
    imp = median_seconds([python, "-c", "import falkit"])
    helptext = median_seconds([python, "-m", "falkit", "--help"])
    fal = median_seconds([python, "-c", "import fal_client"])
    print(f"python -c pass        {base:.3f} s")
    print(f"import falkit         {imp:.3f} s  (+{imp - base:.3f} s, target +0.150)")
    print(f"falkit --help         {helptext:.3f} s  (+{helptext - base:.3f} s, target +0.250)")
    print(f"import fal_client     {fal:.3f} s  (+{fal - base:.3f} s, official client, for scale)")
    ratio = (helptext - base) / max(fal - base, 1e-9)
    print(f"falkit --help overhead / import fal_client overhead = {ratio:.2f}")


if __name__ == "__main__":
    main()
