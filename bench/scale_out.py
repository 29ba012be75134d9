"""Scale-out: 10,000 jobs over 1, 2 and 4 `falkit worker` processes on one PostgreSQL.

Each run journals N one-image jobs as a batch, queues one ``expand_batch`` task (a worker
turns it into N ``run_job`` tasks) and waits until every job has ended. In the 4-worker run
one worker is killed (SIGKILL) once half the jobs are done: its jobs are taken over by the
others after its heartbeat is missed. The Fal emulator runs in its own process; its submit
counter tells duplicate submits (any submit beyond one per job). Printed per run: wall
time, jobs per second, lost jobs (not completed) and duplicate submits (targets: 0 and 0).

    .venv/bin/python bench/scale_out.py                  # N=10,000 (takes several minutes)
    BENCH_N=1000 .venv/bin/python bench/scale_out.py     # a quick look

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database ``test``), as the tests do.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import EmulatorProcess
from harness.cluster import Child, falkit_argv

N = int(os.environ.get("BENCH_N", "10000"))
LATENCY = float(os.environ.get("BENCH_LATENCY", "0.5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
HEARTBEAT = float(os.environ.get("BENCH_HEARTBEAT", "5"))
RUNS = tuple(int(n) for n in os.environ.get("BENCH_WORKERS", "1,2,4").split(","))
ADMIN = "postgresql://{user}@127.0.0.1:5432/test"


async def admin(sql: str) -> str:
    """Run SQL on the ``test`` database as the first user that works; that user."""
    import asyncpg

    for user in ("postgres", "root"):
        try:
            conn = await asyncpg.connect(ADMIN.format(user=user), timeout=5)
        except Exception:
            continue
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return user
    raise SystemExit("PostgreSQL not reachable at 127.0.0.1:5432 (database test)")


async def journal(url: str, batch_id: str, n: int) -> None:
    """N jobs of one batch in the journal (pending), and the batch's expansion queued."""
    from falkit.distributed.pg import connect
    from falkit.distributed.queue import enqueue_batch, queries_for
    from falkit.request import ImageRequest
    from falkit.store import JobStore, NewJob

    jobs = []
    for index in range(n):
        prepared = ImageRequest.build(
            f"scale-out harbour {index}", seed=index, image_size="square"
        ).prepare()
        jobs.append(
            NewJob("image", prepared.model, prepared.endpoint_id, prepared.arguments,
                   prepared.estimated_cost, batch_id, index)
        )  # fmt: skip
    async with await JobStore.open(url) as store:
        await store.create_jobs(jobs)
    conn = await connect(url, "bench")
    try:
        await enqueue_batch(queries_for(conn), batch_id)
    finally:
        await conn.close()


async def counts(url: str, batch_id: str) -> dict[str, int]:
    from falkit.distributed.pg import connect

    conn = await connect(url, "bench")
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM jobs WHERE batch_id = $1 GROUP BY status", batch_id
        )
    finally:
        await conn.close()
    return {row["status"]: int(row["n"]) for row in rows}


def start_workers(n: int, env: dict[str, str], tmp: Path) -> list[Child]:
    workers = []
    for index in range(n):
        argv = falkit_argv(
            "worker", "--concurrency", str(CONCURRENCY), "--heartbeat", str(HEARTBEAT)
        )
        child = Child(argv, {**env, "FALKIT_HOME": str(tmp / f"w{index}")},
                      tmp / f"w{index}.log", f"worker {index}")  # fmt: skip
        workers.append(child)
    for child in workers:
        child.wait_for("worker ready")
    return workers


async def one_run(emu: EmulatorProcess, url: str, n_workers: int, env: dict[str, str],
                  tmp: Path) -> dict[str, Any]:  # fmt: skip
    batch_id = f"scale-{n_workers}-{secrets.token_hex(3)}"
    emu.reset()
    workers = start_workers(n_workers, env, tmp)
    killed = n_workers < 4
    try:
        start = time.perf_counter()
        await journal(url, batch_id, N)
        while True:
            state = await counts(url, batch_id)
            ended = sum(state.get(s, 0) for s in ("completed", "failed", "cancelled"))
            if not killed and state.get("completed", 0) >= N // 2:
                workers[-1].kill()
                killed = True
            if ended >= N:
                break
            await asyncio.sleep(0.5)
        wall = time.perf_counter() - start
    finally:
        for child in workers:
            child.stop()
    stats = emu.stats()
    return {
        "workers": n_workers,
        "wall": wall,
        "per_second": N / wall,
        "completed": state.get("completed", 0),
        "lost": N - state.get("completed", 0),
        "duplicate_submits": stats["submits"] - N,
        "killed": n_workers == 4,
    }


async def main() -> None:
    name = f"falkit_bench_{secrets.token_hex(4)}"
    user = await admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{user}@127.0.0.1:5432/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="falkit-scale-"))
    results = []
    try:
        from falkit.store import JobStore

        await (await JobStore.open(url)).close()  # migrated: PgQueuer's schema installed
        with EmulatorProcess(latency=LATENCY, concurrency=4 * CONCURRENCY) as emu:
            env = {key: v for key, v in os.environ.items() if not key.startswith("FALKIT_")}
            env.update(emu.env, FALKIT_DATABASE_URL=url, FALKIT_RECONCILE_AFTER="5",
                       FALKIT_STORAGE_URL=str(tmp / "images"))  # fmt: skip
            for n_workers in RUNS:
                result = await one_run(emu, url, n_workers, env, tmp)
                results.append(result)
                print(
                    f"{n_workers} worker(s){' (one killed half-way)' if result['killed'] else ''}:"
                    f" {N} jobs in {result['wall']:.1f} s = {result['per_second']:.0f} jobs/s;"
                    f" lost {result['lost']}, duplicate submits {result['duplicate_submits']}",
                    flush=True,
                )
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    bad = [r for r in results if r["lost"] or r["duplicate_submits"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    asyncio.run(main())
