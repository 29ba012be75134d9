"""SSE fan-out: 1,000 subscribers on one job's event stream of one `falkit serve`.

The Fal emulator runs in its own process; the server (uvicorn, the real app over a FalService)
runs in a thread of this process, with ``LiveJob.publish`` wrapped to note when each event is
published; the subscribers are plain asyncio sockets in two child processes (so their CPU is
not the server's). An event's delay is its arrival at a subscriber minus its publication (one
machine: CLOCK_MONOTONIC is shared by all processes). Only events published after every
subscriber is connected count. The reference is the same job watched by one subscriber alone.

    .venv/bin/python bench/sse_fanout.py          # BENCH_SUBSCRIBERS=1000 BENCH_JOB_SECONDS=10
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1000"))
JOB_SECONDS = float(os.environ.get("BENCH_JOB_SECONDS", "10"))
WORKERS = 2
STEPS = 50  # flux-dev: a log line and a step event per step, ~100 events over the job


# ---- subscribers (child processes) ----


async def _subscribe(host: str, port: int, path: str, out: list[Any]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    while (await reader.readline()) not in (b"\r\n", b""):  # status line and headers
        pass
    out.append(("connected", time.monotonic()))
    while line := await reader.readline():
        if line.startswith(b"id: "):
            out.append((int(line[4:]), time.monotonic()))
        elif b'"type":"completed"' in line or b'"type":"failed"' in line:
            break
    writer.close()


async def _subscribers(url: str, count: int) -> list[list[Any]]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    results: list[list[Any]] = [[] for _ in range(count)]
    tasks = []
    for out in results:
        tasks.append(
            asyncio.create_task(_subscribe(parts.hostname or "", parts.port or 80, parts.path, out))
        )
        await asyncio.sleep(0)  # spread the connects a little
    await asyncio.gather(*tasks)
    return results


def subscriber_main(url: str, count: int) -> None:
    results = asyncio.run(_subscribers(url, count))
    sys.stdout.write(json.dumps(results))


# ---- the server (a thread of this process) ----


class Server:
    """`falkit serve`'s app under uvicorn in a thread, with publication times noted."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.published: dict[tuple[str, int], float] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._server: Any = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        import uvicorn

        from falkit.service import FalService
        from falkit.service.handle import LiveJob
        from falkit.web.app import create_app

        original = LiveJob.publish

        def publish(live: Any, event: Any) -> Any:
            numbered = original(live, event)
            self.published[(live.job_id, numbered.seq)] = time.monotonic()
            return numbered

        LiveJob.publish = publish  # type: ignore[method-assign]
        async with FalService(self.settings) as service:
            config = uvicorn.Config(
                create_app(service), ws="none", log_config=None, log_level=None,
                access_log=False, backlog=4096, timeout_keep_alive=60, lifespan="on",
            )  # fmt: skip
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[self.sock])

    def __enter__(self) -> Server:
        self._thread.start()
        while self._server is None or not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


def measure(settings: Any, subscribers: int) -> dict[str, Any]:
    """Start one job, watch it with ``subscribers`` streams, return the delays (seconds)."""
    import httpx

    with Server(settings) as server:
        body = {"prompt": "fan-out", "model": "flux-dev", "num_inference_steps": STEPS, "seed": 1}
        job = httpx.post(f"{server.url}/api/v1/images", json=body, timeout=30).json()
        path = f"/api/v1/jobs/{job['job_id']}/events"
        shares = [
            subscribers // WORKERS + (1 if i < subscribers % WORKERS else 0) for i in range(WORKERS)
        ]
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--subscribe", server.url + path, str(share)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for share in shares
            if share
        ]
        streams: list[list[Any]] = []
        for child in children:
            out, _ = child.communicate(timeout=JOB_SECONDS * 10 + 120)
            streams += json.loads(out)
        published = {
            seq: at for (job_id, seq), at in server.published.items() if job_id == job["job_id"]
        }
    connected = max(item[1] for stream in streams for item in stream if item[0] == "connected")
    delays = [
        at - published[seq]
        for stream in streams
        for seq, at in stream
        if seq != "connected" and published.get(seq, 0.0) > connected
    ]
    complete = all(
        [s for s, _ in stream if s != "connected"] == sorted(published) for stream in streams
    )
    return {
        "subscribers": len(streams),
        "events": len(published),
        "delays": delays,
        "complete": complete,
    }


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--subscribe":
        subscriber_main(sys.argv[2], int(sys.argv[3]))
        return
    os.environ["FALKIT_HOME"] = tempfile.mkdtemp(prefix="falkit-bench-")
    from harness import EmulatorProcess, raise_fd_limit

    raise_fd_limit()
    with EmulatorProcess(latency=JOB_SECONDS, concurrency=4) as emu:
        alone = measure(emu.settings(), 1)
        many = measure(emu.settings(), SUBSCRIBERS)
    rows = []
    for name, run in (("1 subscriber (reference)", alone), (f"{SUBSCRIBERS} subscribers", many)):
        d = sorted(run["delays"])
        rows.append((name, run, _quantile(d, 0.5), _quantile(d, 0.99), d[-1]))
    events = many["events"]
    print(f"job: flux-dev, {STEPS} steps, {JOB_SECONDS:g} s on the emulator; {events} events")
    print(f"{'':28}{'p50':>10}{'p99':>10}{'max':>10}  measured deliveries  every stream complete")
    for name, run, p50, p99, top in rows:
        print(f"{name:28}{p50 * 1000:8.2f}ms{p99 * 1000:8.2f}ms{top * 1000:8.2f}ms  "
              f"{len(run['delays']):>19,}  {run['complete']}")  # fmt: skip
    ratio = rows[1][3] / rows[0][3] if rows[0][3] else float("inf")
    print(f"p99 ratio {SUBSCRIBERS} / 1 subscriber: {ratio:.1f}x")
    sys.exit(0 if many["complete"] and many["subscribers"] == SUBSCRIBERS else 1)


if __name__ == "__main__":
    main()
