"""Workers die or stall mid-job: another finishes it, with one submit and one write."""

from __future__ import annotations

import signal
import time

import httpx

from tests.distributed.helpers import (
    Cluster,
    completed,
    start_image,
    submitted,
    submitter_pid,
    until,
)


async def test_kill_9_of_the_following_worker(cluster: Cluster) -> None:
    workers = {w.pid: w for w in (cluster.worker("w1"), cluster.worker("w2"))}
    _, url_a = cluster.replica("a")
    _, url_b = cluster.replica("b")
    job_id = await start_image(url_a, "a lighthouse, killed worker", seed=7)
    record = await until(lambda: submitted(cluster, job_id))
    workers[submitter_pid(record)].kill()
    killed = time.monotonic()
    await until(lambda: completed(cluster, job_id), timeout=30)
    assert time.monotonic() - killed < 30
    assert cluster.emulator.stats()["submits"] == 1
    await _stored_once(cluster, job_id)
    async with httpx.AsyncClient(base_url=url_b, timeout=30) as client:
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["status"] == "completed"
        image = await client.get(job["images"][0]["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] in ("image/jpeg", "image/png")
        assert image.content[:2] in (b"\xff\xd8", b"\x89P")


async def test_a_paused_worker_wakes_after_another_finished_its_job(cluster: Cluster) -> None:
    workers = {w.pid: w for w in (cluster.worker("w1"), cluster.worker("w2"))}
    _, url_a = cluster.replica("a")
    job_id = await start_image(url_a, "a lighthouse, paused worker", seed=8)
    record = await until(lambda: submitted(cluster, job_id))
    paused = workers[submitter_pid(record)]
    paused.signal(signal.SIGSTOP)
    try:
        done = await until(lambda: completed(cluster, job_id), timeout=30)
    finally:
        paused.signal(signal.SIGCONT)
    # The woken worker carries on with its (stale) run to its end: a second successful
    # run of the same queue task, which must neither submit nor write again.
    await until(lambda: f"job {job_id}: run ended" in paused.log.read_text(), timeout=30)
    assert cluster.emulator.stats()["submits"] == 1
    again = await cluster.job(job_id)
    assert again["completed_at"] == done["completed_at"]
    await _stored_once(cluster, job_id)


async def _stored_once(cluster: Cluster, job_id: str) -> None:
    images = await cluster.sql("SELECT local_path FROM images WHERE job_id = $1", job_id)
    assert len(images) == 1
    assert str(images[0]["local_path"]).startswith("s3://falkit-images/library/")
    versions = cluster.moto.versions()
    assert [count for key, count in versions.items() if job_id in key] == [1]


async def test_a_job_a_dead_worker_left_submitting_is_reconciled_not_stuck(
    cluster: Cluster,
) -> None:
    """A worker killed mid-POST leaves its job ``submitting``; the queue runs the job again:
    it becomes ``unknown``, is looked up in Fal's request history, and — never having arrived
    — is sent once after the safe delay. It must not end its queue task while unknown."""
    import socket

    _, url_a = cluster.replica("a")
    job_id = await start_image(url_a, "a lighthouse, dead submitter", seed=9)
    dead = f"{socket.gethostname()}:{_ended_pid()}:1"  # no worker has run it yet
    await cluster.sql(
        "UPDATE jobs SET status = 'submitting', submitter = $2 WHERE id = $1", job_id, dead
    )
    cluster.worker("w1")
    done = await until(lambda: completed(cluster, job_id), timeout=60)
    assert done["request_id"]
    assert cluster.emulator.stats()["submits"] == 1


def _ended_pid() -> int:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
