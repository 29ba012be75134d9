"""Server-Sent Events: ids are seqs, Last-Event-ID resumes without loss, keep-alive, the end."""

from __future__ import annotations

from typing import Any

from falkit.web.options import WebOptions
from tests.web.helpers import Served, served, settings_for, sse_messages


async def _start(web: Served, **params: Any) -> str:
    answer = await web.client.post("/api/v1/images", json={"prompt": "a fox", **params})
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


async def test_events_carry_seq_ids_and_end_after_the_final_one(web: Served) -> None:
    job_id = await _start(web, seed=7)
    answer = await web.client.get(f"/api/v1/jobs/{job_id}/events")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-store"
    events = sse_messages(answer.text)
    types = [e["data"]["type"] for e in events]
    assert types[0] == "queued"
    assert "started" in types
    assert "step" in types
    assert types[-1] == "completed"
    assert types.count("completed") == 1
    seqs = [e["data"]["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert [e["id"] for e in events] == [str(s) for s in seqs]
    assert all(e["data"]["job_id"] == job_id for e in events)
    result = events[-1]["data"]["result"]
    assert result["seed"] == 7
    assert result["images"][0]["url"].startswith("http://127.0.0.1/images/")


async def test_last_event_id_resumes_without_loss_or_repeats(web: Served) -> None:
    job_id = await _start(web)
    url = f"/api/v1/jobs/{job_id}/events"
    everything = sse_messages((await web.client.get(url)).text)
    middle = everything[len(everything) // 2]["id"]
    rest = sse_messages((await web.client.get(url, headers={"Last-Event-ID": middle})).text)
    assert [e["id"] for e in rest] == [e["id"] for e in everything if int(e["id"]) > int(middle)]
    by_query = sse_messages((await web.client.get(url, params={"after": middle})).text)
    assert by_query == rest
    final = everything[-1]["id"]
    finished = await web.client.get(url, headers={"Last-Event-ID": final})
    assert finished.status_code == 204  # EventSource stops reconnecting
    junk = sse_messages((await web.client.get(url, headers={"Last-Event-ID": "junk"})).text)
    assert junk == everything


async def test_idle_streams_get_keep_alive_comments(emu: Any) -> None:
    emu.config.latency = 1.0
    async with served(settings_for(emu.base_url), WebOptions(sse_ping=0.05)) as web:
        job_id = await _start(web)
        text = (await web.client.get(f"/api/v1/jobs/{job_id}/events")).text
        assert ": ping" in text
        assert sse_messages(text)[-1]["data"]["type"] == "completed"


async def test_failed_job_stream_ends_with_failed(web: Served, emu: Any) -> None:
    from falkit.emulator import Fault

    emu.faults.add(Fault(route="submit", kind="job_error"))
    job_id = await _start(web)
    events = sse_messages((await web.client.get(f"/api/v1/jobs/{job_id}/events")).text)
    assert events[-1]["data"]["type"] == "failed"
    job = (await web.client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed"


async def test_unknown_and_never_sent_jobs(web: Served) -> None:
    assert (await web.client.get("/api/v1/jobs/j_none/events")).status_code == 404
    store = await web.service.store()
    pending = await store.create_job(
        kind="image", model="flux-schnell", endpoint_id="fal-ai/flux/schnell",
        arguments={"prompt": "left behind"}, estimated_cost=0.003,
    )  # fmt: skip
    answer = await web.client.get(f"/api/v1/jobs/{pending.id}/events")
    assert answer.status_code == 404
    assert "jobs resume" in answer.json()["message"]
    assert (await store.get_job(pending.id)).status == "pending"  # a read never submits


async def test_ended_job_from_the_journal_streams_its_end(emu: Any) -> None:
    settings = settings_for(emu.base_url)
    async with served(settings) as web:
        job_id = await _start(web)
        first = sse_messages((await web.client.get(f"/api/v1/jobs/{job_id}/events")).text)
    async with served(settings) as fresh:  # a restarted server: the job is in the journal
        events = sse_messages((await fresh.client.get(f"/api/v1/jobs/{job_id}/events")).text)
        assert [e["data"]["type"] for e in events] == ["completed"]
        assert (
            events[0]["data"]["result"]["images"][0]["sha256"]
            == (first[-1]["data"]["result"]["images"][0]["sha256"])
        )
