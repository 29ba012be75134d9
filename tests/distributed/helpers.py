"""Driving a test cluster: starting its processes, reading the journal and the queue."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from falkit.config import EMULATOR_KEY

DEADLINE = 60.0


class Cluster:
    """Workers and replicas started on demand; every one stopped at the end."""

    def __init__(self, kit: Any, db_url: str, moto: Any, emulator: Any, tmp: Path) -> None:
        self.kit, self.db_url, self.moto, self.emulator, self.tmp = kit, db_url, moto, emulator, tmp
        self.children: list[Any] = []
        self.public_url: str | None = None

    def env(self, name: str) -> dict[str, str]:
        home = self.tmp / name
        env = {key: value for key, value in os.environ.items() if not key.startswith("FALKIT_")}
        env.update(self.emulator.env)
        env.update(self.moto.env)
        env.update(
            FAL_API_KEY=EMULATOR_KEY,
            FALKIT_HOME=str(home),
            FALKIT_CONFIG_DIR=str(self.tmp / f"{name}-config"),
            FALKIT_DATABASE_URL=self.db_url,
            FALKIT_JWKS_URL=f"{self.emulator.env['FALKIT_REST_URL']}/.well-known/jwks.json",
            FALKIT_RECONCILE_AFTER="2",
        )
        if self.public_url:
            env["FALKIT_PUBLIC_URL"] = self.public_url
        return env

    def worker(self, name: str, *args: str) -> Any:
        argv = self.kit.falkit_argv("worker", "--heartbeat", "3", *args)
        child = self.kit.Child(argv, self.env(name), self.tmp / f"{name}.log", name)
        self.children.append(child)
        child.wait_for("worker ready")
        return child

    def replica(self, name: str, port: int = 0) -> tuple[Any, str]:
        argv = self.kit.falkit_argv("serve", "--no-worker", "--port", str(port))
        child = self.kit.Child(argv, self.env(name), self.tmp / f"{name}.log", name)
        self.children.append(child)
        url = child.wait_for("serving ").split()[-1]
        return child, url

    def stop(self) -> None:
        for child in self.children:
            child.stop()

    # ---- reading the shared state ----

    async def sql(self, query: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.db_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def job(self, job_id: str) -> Any:
        rows = await self.sql("SELECT * FROM jobs WHERE id = $1", job_id)
        return rows[0] if rows else None


async def until(check: Callable[[], Any], timeout: float = DEADLINE, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, with a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g}s")
        await asyncio.sleep(every)


async def start_image(url: str, prompt: str, **params: Any) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.post("/api/v1/images", json={"prompt": prompt, **params})
        assert answer.status_code == 202, answer.text
        job_id: str = answer.json()["job_id"]
        return job_id


async def submitted(cluster: Cluster, job_id: str) -> Any:
    """The job's row once it has a request id (Fal accepted it), else None."""
    record = await cluster.job(job_id)
    return record if record is not None and record["request_id"] else None


async def completed(cluster: Cluster, job_id: str) -> Any:
    """The job's row once it is completed, else None."""
    record = await cluster.job(job_id)
    return record if record is not None and record["status"] == "completed" else None


def submitter_pid(record: Any) -> int:
    """The pid in a journaled ``host:pid:start`` submitter."""
    return int(str(record["submitter"]).rsplit(":", 2)[1])
