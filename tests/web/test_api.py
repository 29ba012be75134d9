"""The API through an ASGI client against the emulator: images, jobs, estimate, models, cancel."""

from __future__ import annotations

import hashlib
from typing import Any

from falkit.web.options import WebOptions
from tests.web.helpers import Served, job_done, served, settings_for, sse_messages


async def test_generate_follow_and_fetch_the_image(web: Served, emu: Any) -> None:
    answer = await web.client.post(
        "/api/v1/images", json={"prompt": "a red fox in snow", "seed": 42, "image_size": "square"}
    )
    assert answer.status_code == 202, answer.text
    started = answer.json()
    job_id = started["job_id"]
    assert answer.headers["location"] == started["links"]["job"]
    assert started["links"]["job"].endswith(f"/api/v1/jobs/{job_id}")
    assert started["links"]["events"].endswith(f"/api/v1/jobs/{job_id}/events")

    events = sse_messages((await web.client.get(started["links"]["events"])).text)
    assert events[-1]["data"]["type"] == "completed"

    job = (await web.client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == job["state"] == "completed"
    generate_keys = {
        "job_id", "request_id", "status", "model", "endpoint_id", "seed", "images", "cost_usd",
        "estimated_cost_usd", "timings", "prompt",
    }  # fmt: skip
    assert generate_keys <= set(job)
    assert job["seed"] == 42
    assert job["prompt"] == "a red fox in snow"
    [image] = job["images"]
    assert image["url"].startswith("http://127.0.0.1/images/")
    assert image["fal_url"].startswith(emu.base_url)
    served_image = await web.client.get(image["url"])
    assert served_image.status_code == 200
    assert served_image.headers["content-type"] == image["content_type"]
    assert hashlib.sha256(served_image.content).hexdigest() == image["sha256"]


async def test_invalid_input_is_422_with_fields_and_nothing_is_sent(web: Served, emu: Any) -> None:
    bad = {"prompt": "fox", "model": "flux-schnell", "num_inference_steps": 99, "nonsense": 1}
    answer = await web.client.post("/api/v1/images", json=bad)
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "validation_error"
    fields = {item["field"]: item for item in body["errors"]}
    assert fields["num_inference_steps"]["allowed"] == "1 to 12 for flux-schnell"
    assert "nonsense" in fields
    assert (await web.client.post("/api/v1/images", json={"prompt": "  "})).status_code == 422
    schema_error = await web.client.post("/api/v1/images", json={"prompt": "x", "seed": "abc"})
    assert schema_error.status_code == 422
    assert schema_error.json()["errors"][0]["field"] == "seed"
    assert (await web.client.post("/api/v1/images", json={"model": "sdxl"})).status_code == 422
    assert emu.stats.submits == 0
    assert sum(emu.stats.requests.values()) == 0
    assert (await web.client.get("/api/v1/jobs")).json()["jobs"] == []


async def test_local_lora_files_are_refused(web: Served, emu: Any, tmp_path: Any) -> None:
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    answer = await web.client.post(
        "/api/v1/images", json={"prompt": "photo of TOK", "loras": [{"path": str(weights)}]}
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "loras.0.path"
    assert sum(emu.stats.requests.values()) == 0


async def test_spend_cap_is_402_before_anything_is_sent(emu: Any) -> None:
    async with served(settings_for(emu.base_url), spend_cap=0.01) as web:
        big = {"prompt": "fox", "model": "flux-dev", "image_size": "square_hd", "num_images": 4}
        answer = await web.client.post("/api/v1/images", json=big)
        assert answer.status_code == 402
        assert answer.json()["error"] == "budget_exceeded"
        assert emu.stats.submits == 0
        estimate = (await web.client.post("/api/v1/estimate", json=big)).json()
        assert estimate["spend_cap"]["limit_usd"] == 0.01
        assert estimate["estimated_cost_usd"] > 0.01


async def test_no_key_is_503_and_reads_still_work(emu: Any) -> None:
    settings = settings_for(emu.base_url).model_copy(update={"api_key": None})
    async with served(settings) as web:
        answer = await web.client.post("/api/v1/images", json={"prompt": "fox"})
        assert answer.status_code == 503
        assert "FAL_API_KEY" in answer.json()["message"]
        assert (await web.client.get("/api/v1/jobs")).status_code == 200
        assert (await web.client.get("/api/v1/models")).status_code == 200


async def test_estimate_and_models(web: Served, emu: Any) -> None:
    estimate = await web.client.post(
        "/api/v1/estimate", json={"prompt": "fox", "model": "flux-dev", "steps": 20}
    )
    assert estimate.status_code == 200
    body = estimate.json()
    assert body["model"] == "flux-dev"
    assert body["arguments"]["num_inference_steps"] == 20
    assert body["estimated_cost_usd"] > 0
    models = {m["name"]: m for m in (await web.client.get("/api/v1/models")).json()}
    steps = models["flux-schnell"]["input_schema"]["properties"]["num_inference_steps"]
    assert steps["maximum"] == 12
    assert models["flux-lora"]["takes_loras"] is True
    assert emu.stats.submits == 0


async def test_list_search_filter_and_page(web: Served) -> None:
    ids = []
    for prompt in ("a red fox", "a blue whale", "a red barn"):
        answer = await web.client.post("/api/v1/images", json={"prompt": prompt, "seed": 1})
        ids.append(answer.json()["job_id"])
    for job_id in ids:
        await job_done(web.client, job_id)
    red = (await web.client.get("/api/v1/jobs", params={"search": "RED"})).json()
    assert {job["prompt"] for job in red["jobs"]} == {"a red fox", "a red barn"}
    first = (await web.client.get("/api/v1/jobs", params={"limit": 2})).json()
    assert [job["job_id"] for job in first["jobs"]] == ids[::-1][:2]
    assert first["next_offset"] == 2
    rest = (await web.client.get("/api/v1/jobs", params={"limit": 2, "offset": 2})).json()
    assert [job["job_id"] for job in rest["jobs"]] == [ids[0]]
    assert rest["next_offset"] is None
    done = (await web.client.get("/api/v1/jobs", params={"status": "completed"})).json()
    assert len(done["jobs"]) == 3
    other = (await web.client.get("/api/v1/jobs", params={"model": "flux-dev"})).json()
    assert other["jobs"] == []
    assert (await web.client.get("/api/v1/jobs", params={"status": "nope"})).status_code == 422
    assert (await web.client.get("/api/v1/jobs/j_nope")).status_code == 404
    by_request = (await web.client.get(f"/api/v1/jobs/{ids[0]}")).json()["request_id"]
    assert (await web.client.get(f"/api/v1/jobs/{by_request}")).json()["job_id"] == ids[0]


async def test_cancel_a_queued_job(emu: Any) -> None:
    emu.config.latency = 30.0
    emu.config.concurrency = 1
    async with served(settings_for(emu.base_url), WebOptions()) as web:
        first = (await web.client.post("/api/v1/images", json={"prompt": "busy"})).json()
        second = (await web.client.post("/api/v1/images", json={"prompt": "waits"})).json()
        await job_done_or_queued(web, second["job_id"])
        answer = await web.client.post(f"/api/v1/jobs/{second['job_id']}/cancel")
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "OK"
        ended = await job_done(web.client, second["job_id"])
        assert ended["status"] == "cancelled"
        events = sse_messages(
            (await web.client.get(f"/api/v1/jobs/{second['job_id']}/events")).text
        )
        assert events[-1]["data"]["type"] == "cancelled"
        again = await web.client.post(f"/api/v1/jobs/{second['job_id']}/cancel")
        assert again.json()["outcome"] == "ALREADY_CANCELLED"
        await web.client.post(f"/api/v1/jobs/{first['job_id']}/cancel")


async def job_done_or_queued(web: Served, job_id: str) -> None:
    from tests.web.helpers import until

    async def queued() -> bool:
        state = (await web.client.get(f"/api/v1/jobs/{job_id}")).json()["state"]
        return state in ("queued", "running")

    await until(queued)
