"""HTTP requests per generation for a 5-second job: falkit next to fal-client's `subscribe`.

Both run against the same in-process emulator (plain http; fal-client's four URL constants are
pointed at it, as fal-protocol.md §3.3 describes). Target: falkit 4 requests per job (submit,
stream, result, image) whatever the job length (it follows the SSE status stream, no polling).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

JOB_SECONDS = float(os.environ.get("BENCH_JOB_SECONDS", "5"))


def run_falkit(emu: object, base_url: str) -> tuple[int, float]:
    from pydantic import SecretStr

    from falkit.config import EMULATOR_KEY, load_settings
    from falkit.service import FalService

    async def go() -> None:
        settings = load_settings().with_urls(base_url, api_key=SecretStr(EMULATOR_KEY))
        async with FalService(settings) as service:
            await service.generate_image("a benchmark lighthouse", seed=1)

    emu.stats.reset()  # type: ignore[attr-defined]
    start = time.perf_counter()
    asyncio.run(go())
    return sum(emu.stats.requests.values()), time.perf_counter() - start  # type: ignore[attr-defined]


def run_fal_client(emu: object, base_url: str) -> tuple[int, float]:
    import fal_client
    import fal_client.client as fc

    fc.QUEUE_URL_FORMAT = f"{base_url}/queue/"
    fc.RUN_URL_FORMAT = f"{base_url}/run/"
    fc.REST_URL = f"{base_url}/rest"
    fc.CDN_URL = f"{base_url}/cdn"
    emu.stats.reset()  # type: ignore[attr-defined]
    start = time.perf_counter()
    client = fal_client.SyncClient(key="emulator-key:emulator-secret")
    result = client.subscribe(
        "fal-ai/flux/schnell",
        {"prompt": "a benchmark lighthouse", "seed": 1},
        with_logs=True,
        on_queue_update=lambda update: None,
    )
    import httpx

    httpx.get(result["images"][0]["url"]).raise_for_status()  # keep the image, like falkit does
    return sum(emu.stats.requests.values()), time.perf_counter() - start  # type: ignore[attr-defined]


def main() -> None:
    os.environ["FALKIT_HOME"] = tempfile.mkdtemp(prefix="falkit-bench-")
    from falkit.emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(latency=JOB_SECONDS, concurrency=2)) as emu:
        ours, our_time = run_falkit(emu, emu.base_url)
        theirs, their_time = run_fal_client(emu, emu.base_url)
    print(f"job length                  {JOB_SECONDS:.1f} s")
    print(f"falkit generate_image       {ours:4d} HTTP requests  ({our_time:.2f} s, incl. dl)")
    print(f"fal-client subscribe        {theirs:4d} HTTP requests  ({their_time:.2f} s, incl. dl)")
    print(f"ratio falkit / fal-client   {ours / max(theirs, 1):.3f}  (target: falkit = 4)")
    sys.exit(0 if ours <= 4 else 1)


if __name__ == "__main__":
    main()
