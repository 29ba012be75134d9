"""`--data DIR`: jobs and files outlive the emulator process.

In-process: two engines on one folder, one after the other. As processes: a finished job, an
uploaded file, and jobs still running or queued at shutdown, across a real restart on a new port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from falkit.emulator import EmulatorConfig, create_app
from falkit.emulator.persist import JOURNAL, STOPPED, rebase

from .children import DEADLINE, EmulatorChild, clean_env
from .conftest import AUTH, make_zip

# ---- in process ----


async def open_app(folder: Path, **config: Any) -> httpx.AsyncClient:
    app = create_app(EmulatorConfig(**{"latency": 0.02, "data_dir": folder, **config}))
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://emulator", headers=AUTH)
    client.app = app  # type: ignore[attr-defined]
    return client


async def close_app(client: httpx.AsyncClient) -> None:
    await client.app.state.emulator.aclose()  # type: ignore[attr-defined]
    await client.aclose()


async def until_done(client: httpx.AsyncClient, status_url: str) -> dict[str, Any]:
    """The COMPLETED status, waited for on the SSE status stream (it ends there)."""
    stream = await client.get(f"{status_url}/stream", params={"logs": 1}, timeout=DEADLINE)
    events = [line for line in stream.text.splitlines() if line.startswith("data: ")]
    assert json.loads(events[-1][6:])["status"] == "COMPLETED"
    body: dict[str, Any] = (await client.get(status_url, params={"logs": 1})).json()
    return body


async def test_finished_job_and_its_image_survive_a_new_engine(tmp_path: Path) -> None:
    first = await open_app(tmp_path)
    handle = (await first.post("/queue/fal-ai/flux/dev", json={"prompt": "kept", "seed": 3})).json()
    status = await until_done(first, handle["status_url"])
    result = (await first.get(handle["response_url"])).json()
    image = (await first.get(result["images"][0]["url"])).content
    await close_app(first)

    second = await open_app(tmp_path)
    try:
        again = (await second.get(handle["status_url"], params={"logs": 1})).json()
        assert again == status  # same logs, metrics and URLs
        response = await second.get(handle["response_url"])
        assert response.status_code == 200
        assert response.headers["x-fal-billable-units"]
        assert response.json() == result
        assert (await second.get(result["images"][0]["url"])).content == image
        cancel = await second.put(handle["cancel_url"])
        assert cancel.json() == {"status": "ALREADY_COMPLETED"}
        history = second.app.state.emulator.jobs[handle["request_id"]]  # type: ignore[attr-defined]
        assert history.payload == {"prompt": "kept", "seed": 3}
        assert history.ended_at is not None
    finally:
        await close_app(second)


async def test_unfinished_jobs_end_with_an_error_and_a_torn_line_is_skipped(
    tmp_path: Path,
) -> None:
    first = await open_app(tmp_path, latency=600, concurrency=1)
    running = (await first.post("/queue/fal-ai/flux/dev", json={"prompt": "a"})).json()
    queued = (await first.post("/queue/fal-ai/flux/dev", json={"prompt": "b"})).json()
    await close_app(first)
    with (tmp_path / JOURNAL).open("a") as journal:
        journal.write('{"id": "torn-by-a-kill", "endpo')

    second = await open_app(tmp_path)
    try:
        for handle in (running, queued):
            status = (await second.get(handle["status_url"])).json()
            assert status["status"] == "COMPLETED"
            assert (status["error"], status["error_type"]) == STOPPED
            result = await second.get(handle["response_url"])
            assert result.status_code == 500
            assert result.json()["detail"] == STOPPED[0]
        stats = (await second.get("/_emulator/stats")).json()
        assert stats["jobs"] == {"queued": 0, "running": 0, "completed": 2}
    finally:
        await close_app(second)


async def test_uploads_and_training_outputs_are_kept_on_disk(tmp_path: Path) -> None:
    first = await open_app(tmp_path)
    token = (await first.post("/rest/storage/auth/token", json={})).json()
    bearer = {"Authorization": f"Bearer {token['token']}", "Content-Type": "application/zip"}
    archive = make_zip(4)
    upload = await first.post("/cdn/files/upload", content=archive, headers=bearer)
    url = upload.json()["access_url"]
    initiate = await first.post(
        "/rest/storage/upload/initiate", json={"file_name": "notes.txt", "content_type": ""}
    )
    signed, later = initiate.json()["upload_url"], initiate.json()["file_url"]
    assert (await first.put(signed, content=b"hello")).status_code == 200
    await close_app(first)

    name = url.rsplit("/", 1)[1]
    assert (tmp_path / "files" / name).read_bytes() == archive  # bytes on disk, not in memory
    second = await open_app(tmp_path)
    try:
        assert (await second.get(url)).content == archive
        kept = await second.get(later)
        assert kept.content == b"hello"
        assert kept.headers["content-type"].startswith("text/plain")
        unknown = await second.get(url.replace(name, "nope.zip"))
        assert unknown.status_code == 404
    finally:
        await close_app(second)


def test_rebase_moves_only_file_urls_of_the_old_base() -> None:
    old, new = "http://127.0.0.1:1/cdn", "https://127.0.0.1:2/cdn"
    body = {
        "images": [{"url": f"{old}/files/a.jpeg", "width": 1}],
        "other": "http://example.com/files/x",
        "n": [1, None, True],
    }
    moved = rebase(body, old, new)
    assert moved["images"] == [{"url": f"{new}/files/a.jpeg", "width": 1}]
    assert moved["other"] == body["other"]
    assert moved["n"] == [1, None, True]
    assert rebase(body, old, old) is body


# ---- as processes, across a restart ----


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[EmulatorChild] = []

    def launch(*args: str) -> EmulatorChild:
        child = EmulatorChild(
            *args,
            env=clean_env(FALKIT_HOME=str(tmp_path / "home")),
            stderr_path=tmp_path / f"stderr-{len(started)}.txt",
        )
        started.append(child)
        return child

    yield launch
    for child in started:
        child.force()


def wait_for(client: httpx.Client, status_url: str, until: str) -> dict[str, Any]:
    """The first status ``until`` (or later), read from the SSE status stream, within a deadline.

    The stream sends an event on every change, so nothing polls or sleeps.
    """
    order = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    deadline = time.monotonic() + DEADLINE
    with client.stream("GET", f"{status_url}/stream", params={"logs": 1}) as stream:
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, line
            if line.startswith("data: "):
                body: dict[str, Any] = json.loads(line[6:])
                if order.index(body["status"]) >= order.index(until):
                    return body
    raise AssertionError(f"the status stream of {status_url} ended before {until}")


@contextlib.contextmanager
def hold_port(port: int) -> Iterator[None]:
    """Keep ``port`` taken (if nobody else has it) while the block runs."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # already taken by someone else: as good
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def upload(client: httpx.Client, env: dict[str, str], data: bytes, kind: str) -> str:
    token = client.post(f"{env['FALKIT_REST_URL']}/storage/auth/token", json={}).json()
    headers = {"Authorization": f"Bearer {token['token']}", "Content-Type": kind}
    reply = client.post(f"{env['FALKIT_CDN_URL']}/files/upload", content=data, headers=headers)
    url: str = reply.json()["access_url"]
    return url


def test_a_job_finished_before_a_restart_is_fetched_after_it(start: Any, tmp_path: Path) -> None:
    data = tmp_path / "emulator-data"
    args = ("--port", "0", "--env", "--data", str(data), "--concurrency", "1")
    first = start(*args, "--latency", "0.05", "--training-seconds", "600")
    env = first.exports(6)
    with httpx.Client(headers=AUTH, timeout=DEADLINE) as client:
        queue = env["FALKIT_QUEUE_URL"]
        done = client.post(f"{queue}/fal-ai/flux/dev", json={"prompt": "kept", "seed": 9}).json()
        status = wait_for(client, done["status_url"], "COMPLETED")
        result = client.get(done["response_url"]).json()
        image = client.get(result["images"][0]["url"]).content
        archive = make_zip(4)
        archive_url = upload(client, env, archive, "application/zip")
        train = {"images_data_url": archive_url, "trigger_word": "TOK", "steps": 10}
        running = client.post(f"{queue}/fal-ai/flux-lora-fast-training", json=train).json()
        wait_for(client, running["status_url"], "IN_PROGRESS")
        queued = client.post(f"{queue}/fal-ai/flux/dev", json={"prompt": "waits"}).json()
        assert queued["queue_position"] == 0
    assert first.stop() == 0

    with hold_port(int(env["FALKIT_QUEUE_URL"].split(":")[2].split("/")[0])):
        second = start(*args)  # --port 0 gets another port now; the URLs must follow it
        env2 = second.exports(6)
    old_base, new_base = (e["FALKIT_QUEUE_URL"].removesuffix("/queue") for e in (env, env2))
    assert new_base != old_base

    def moved(url: str) -> str:
        return url.replace(old_base, new_base)

    with httpx.Client(headers=AUTH, timeout=DEADLINE) as client:
        after = client.get(moved(done["status_url"]), params={"logs": 1}).json()
        assert after["status"] == "COMPLETED"
        assert after["logs"] == status["logs"]
        assert after["metrics"] == status["metrics"]
        kept = client.get(moved(done["response_url"])).json()
        assert kept["images"][0]["url"] == moved(result["images"][0]["url"])
        assert {**kept, "images": None} == {**result, "images": None}
        assert client.get(kept["images"][0]["url"]).content == image
        assert client.get(moved(archive_url)).content == archive
        for handle in (running, queued):
            ended = client.get(moved(handle["status_url"])).json()
            assert (ended["status"], ended["error"]) == ("COMPLETED", STOPPED[0])
    assert second.stop() == 0
    assert "Traceback" not in second.stderr()
    assert f"jobs and files kept in {data}" in second.stderr()


def test_an_unusable_data_folder_is_one_line_with_the_fix(start: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    child = start("--port", "0", "--env", "--data", str(blocker / "data"))
    assert child.process.wait(timeout=DEADLINE) == 1
    assert child.stop() == 1
    err = child.stderr()
    assert f"cannot keep emulator data in {blocker / 'data'}" in err
    assert "Fix: pass --data a folder you can write to." in err
    assert "Traceback" not in err
