"""The library routes: star, filters, a zip of images, delete (rows and files, never outside)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from tests.web.helpers import Served, job_done


async def _generated(web: Served, prompt: str, **params: Any) -> dict[str, Any]:
    answer = await web.client.post("/api/v1/images", json={"prompt": prompt, **params})
    assert answer.status_code == 202, answer.text
    return await job_done(web.client, answer.json()["job_id"])


async def test_star_filter_zip_and_delete(web: Served, tmp_path: Path) -> None:
    fox = await _generated(web, "a red fox", num_images=2, seed=1)
    owl = await _generated(web, "an owl", seed=2)
    assert fox["starred"] is False
    starred = await web.client.post(f"/api/v1/jobs/{fox['job_id']}/star", json={"starred": True})
    assert starred.status_code == 200
    assert starred.json()["starred"] is True
    only = (await web.client.get("/api/v1/jobs", params={"starred": "true"})).json()["jobs"]
    assert [j["job_id"] for j in only] == [fox["job_id"]]
    later = (await web.client.get("/api/v1/jobs", params={"until": "2000-01-01"})).json()
    assert later["jobs"] == []

    archive = await web.client.get(
        "/api/v1/archive", params=[("job_id", fox["job_id"]), ("job_id", owl["job_id"])]
    )
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert len(names) == 3
    assert all(not n.startswith("/") and ".." not in n for n in names)
    missing = await web.client.get("/api/v1/archive", params={"job_id": "j_nope"})
    assert missing.status_code == 404

    paths = [Path(i["path"]) for i in fox["images"]]
    assert all(p.is_file() for p in paths)
    gone = await web.client.delete(f"/api/v1/jobs/{fox['job_id']}")
    assert gone.json() == {"deleted": [fox["job_id"]], "files_removed": 2}
    assert not any(p.exists() for p in paths)
    assert (await web.client.get(f"/api/v1/jobs/{fox['job_id']}")).status_code == 404
    bulk = await web.client.post("/api/v1/jobs/delete", json={"job_ids": [owl["job_id"], "j_x"]})
    assert bulk.json() == {"deleted": [owl["job_id"]], "files_removed": 1}


async def test_delete_never_touches_files_outside_the_library(web: Served, tmp_path: Path) -> None:
    job = await _generated(web, "a kite")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    store = await web.service.store()
    from tests.store.helpers import on_connection

    def point_outside(conn: Any) -> None:
        from sqlalchemy import update

        from falkit.store.models import images

        conn.execute(update(images).values(local_path=str(outside)))

    await on_connection(store, point_outside, write=True)
    answer = await web.client.delete(f"/api/v1/jobs/{job['job_id']}")
    assert answer.json()["files_removed"] == 0
    assert outside.read_bytes() == b"keep me"


async def test_an_unfinished_job_is_not_deleted(web: Served) -> None:
    answer = await web.client.post("/api/v1/images", json={"prompt": "slow"})
    job_id = answer.json()["job_id"]
    refused = await web.client.post("/api/v1/jobs/delete", json={"job_ids": [job_id]})
    assert refused.status_code == 409
    assert "cancel it first" in refused.json()["message"]
    await job_done(web.client, job_id)
