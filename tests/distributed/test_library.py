"""The gallery's zip and delete on a cluster: images live in the bucket, not on a replica's
disk, so any replica zips them and deletes them."""

from __future__ import annotations

import io
import zipfile

import httpx

from tests.distributed.helpers import Cluster, completed, start_image, until


async def test_any_replica_zips_and_deletes_a_jobs_images_in_the_bucket(cluster: Cluster) -> None:
    cluster.worker("w1")
    _, url_a = cluster.replica("a")
    _, url_b = cluster.replica("b")
    job_id = await start_image(url_a, "a lighthouse, zipped on B", seed=13, num_images=2)
    await until(lambda: completed(cluster, job_id), timeout=60)
    async with httpx.AsyncClient(base_url=url_b, timeout=30) as client:
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        served = [(await client.get(image["url"])).content for image in job["images"]]
        assert len(served) == 2

        archive = await client.get("/api/v1/archive", params={"job_id": job_id})
        assert archive.status_code == 200, archive.text
        zipped = zipfile.ZipFile(io.BytesIO(archive.content))
        names = zipped.namelist()
        assert len(names) == 2
        assert all(job_id in name and not name.startswith("/") for name in names)
        assert sorted(zipped.read(name) for name in names) == sorted(served)

        gone = await client.delete(f"/api/v1/jobs/{job_id}")
        assert gone.json() == {"deleted": [job_id], "files_removed": 2}
        for image in job["images"]:
            assert (await client.get(image["url"])).status_code == 404
        again = await client.get("/api/v1/archive", params={"job_id": job_id})
        assert again.status_code == 404
    assert await cluster.sql("SELECT 1 FROM images WHERE job_id = $1", job_id) == []
