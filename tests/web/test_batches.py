"""Batches through the API: prompts times sweeps within a budget, progress, per-job state, files."""

from __future__ import annotations

from typing import Any

from tests.web.helpers import Served, served, settings_for, sse_messages


async def test_batch_runs_and_shows_jobs_and_files(web: Served, emu: Any) -> None:
    body = {
        "prompts": ["a red fox", {"prompt": "a blue whale", "num_inference_steps": 2}],
        "seeds": "1-2",
        "budget": 1.0,
        "concurrency": 4,
    }
    answer = await web.client.post("/api/v1/batches", json=body)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    batch_id = started["batch_id"]
    assert started["total"] == 4
    assert answer.headers["location"].endswith(f"/api/v1/batches/{batch_id}")
    events = sse_messages((await web.client.get(started["links"]["events"])).text)
    assert events[-1]["data"]["type"] == "completed"
    assert any(e["data"]["type"] == "batch_progress" for e in events)
    assert events[-1]["data"]["result"]["completed"] == 4

    batch = (await web.client.get(f"/api/v1/batches/{batch_id}")).json()
    assert batch["status"] == "done"
    assert batch["counts"] == {"completed": 4}
    assert [job["seed"] for job in batch["jobs"]] == [1, 2, 1, 2]
    assert batch["jobs"][0]["images"][0]["url"].startswith("http://127.0.0.1/images/")
    assert set(batch["files"]) == {"manifest_jsonl", "manifest_csv", "contact_sheet", "html"}
    manifest = await web.client.get(batch["files"]["manifest_jsonl"])
    assert manifest.status_code == 200
    assert len(manifest.text.splitlines()) == 4
    sheet = await web.client.get(batch["files"]["contact_sheet"])
    assert sheet.headers["content-type"] == "image/png"
    page = await web.client.get(batch["files"]["html"])
    assert "default-src 'none'" in page.headers["content-security-policy"]
    files = started["links"]["files"]
    for path in ("../../falkit.db", "..%2f..%2ffalkit.db", "/etc/passwd"):
        assert (await web.client.get(files + path)).status_code == 404
    paged = (await web.client.get(f"/api/v1/batches/{batch_id}", params={"limit": 3})).json()
    assert len(paged["jobs"]) == 3
    assert paged["next_offset"] == 3

    again = await web.client.post("/api/v1/batches", json=body)  # the same batch: nothing new
    assert again.json()["batch_id"] == batch_id
    assert emu.stats.submits == 4


async def test_batch_refusals(web: Served, emu: Any) -> None:
    over = {"prompts": ["fox"], "models": "flux-dev", "seeds": "1-10", "budget": 0.05}
    answer = await web.client.post("/api/v1/batches", json=over)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "budget"
    bad = await web.client.post(
        "/api/v1/batches", json={"prompts": ["ok", {"prompt": "x", "steps": 99}]}
    )
    assert bad.status_code == 422
    assert "line 2" in bad.json()["message"] or "item 2" in bad.json()["message"]
    local = {"prompts": [{"prompt": "TOK", "loras": [{"path": "/etc/x.safetensors"}]}]}
    answer = await web.client.post("/api/v1/batches", json=local)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "prompts.0.loras.0.path"
    assert (await web.client.post("/api/v1/batches", json={"prompts": []})).status_code == 422
    assert (await web.client.get("/api/v1/batches/b_nope")).status_code == 404
    assert emu.stats.submits == 0
    store = await web.service.store()
    assert await store.list_batches() == []


async def test_batch_over_the_spend_cap_is_402(emu: Any) -> None:
    async with served(settings_for(emu.base_url), spend_cap=0.01) as web:
        body = {"prompts": ["fox"], "models": "flux-dev", "seeds": "1-4"}
        answer = await web.client.post("/api/v1/batches", json=body)
        assert answer.status_code == 402
        assert emu.stats.submits == 0
