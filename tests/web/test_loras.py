"""LoRA training through the API: images or a zip uploaded, trained on the emulator, listed."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from tests.lora.helpers import image_bytes
from tests.web.helpers import Served, job_done, sse_messages


async def test_train_from_uploaded_images(web: Served, emu: Any) -> None:
    files = [("files", (f"img{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(4)]
    form = {"trigger_word": "TOK", "name": "me", "steps": "500"}
    answer = await web.client.post("/api/v1/loras", data=form, files=files)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert answer.headers["location"].endswith(f"/api/v1/jobs/{job_id}")
    events = sse_messages((await web.client.get(f"/api/v1/jobs/{job_id}/events")).text)
    assert events[-1]["data"]["type"] == "completed", events[-1]
    job = await job_done(web.client, job_id)
    assert job["kind"] == "training"
    assert job["arguments"]["steps"] == 500
    loras = (await web.client.get("/api/v1/loras")).json()
    assert [(item["name"], item["trigger_word"]) for item in loras] == [("me", "TOK")]
    assert not any((web.service.settings.home / "uploads").iterdir())  # upload removed


async def test_train_from_an_uploaded_zip(web: Served) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(4):
            archive.writestr(f"photos/p{i}.png", image_bytes(i, "PNG"))
            archive.writestr(f"photos/p{i}.txt", "a photo of [trigger]")
    files = [("files", ("../../evil name.zip", buffer.getvalue(), "application/zip"))]
    answer = await web.client.post("/api/v1/loras", data={"name": "zipped"}, files=files)
    assert answer.status_code == 202, answer.text
    job = await job_done(web.client, answer.json()["job_id"])
    assert job["status"] == "completed"
    assert "zipped" in [item["name"] for item in (await web.client.get("/api/v1/loras")).json()]


async def test_bad_uploads_are_422_and_nothing_is_sent(web: Served, emu: Any) -> None:
    too_few = [("files", (f"img{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(2)]
    answer = await web.client.post("/api/v1/loras", data={"trigger_word": "TOK"}, files=too_few)
    assert answer.status_code == 422
    not_images = [("files", (f"x{i}.jpg", b"not a picture", "image/jpeg")) for i in range(4)]
    answer = await web.client.post("/api/v1/loras", data={"trigger_word": "T"}, files=not_images)
    assert answer.status_code == 422
    wrong_kind = [("files", ("run.sh", b"echo", "text/x-sh"))]
    answer = await web.client.post("/api/v1/loras", data={"trigger_word": "T"}, files=wrong_kind)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "files.0"
    no_files = await web.client.post("/api/v1/loras", data={"trigger_word": "T"})
    assert no_files.status_code == 422
    assert emu.stats.submits == 0
    assert sum(emu.stats.requests.values()) == 0
