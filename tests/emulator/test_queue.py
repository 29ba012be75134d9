"""The queue protocol as Fal speaks it: URLs, codes, positions, logs, errors, cancel."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from .conftest import AUTH, ClientFactory, engine_of, submit, wait_done

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_submit_answers_fal_shape_with_subpath_stripped(client: httpx.AsyncClient) -> None:
    reply = await submit(client, "fal-ai/flux/dev", {"prompt": "x"})
    assert reply["status"] == "IN_QUEUE"
    assert reply["queue_position"] == 0
    assert UUID.match(reply["request_id"])
    root = f"http://emulator/queue/fal-ai/flux/requests/{reply['request_id']}"
    assert reply["response_url"] == root
    assert reply["status_url"] == f"{root}/status"
    assert reply["cancel_url"] == f"{root}/cancel"
    assert engine_of(client).stats.submits_by_endpoint == {"fal-ai/flux/dev": 1}


async def test_status_codes_and_bodies_through_the_lifecycle(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.3, concurrency=1)
    first = await submit(client, "fal-ai/flux/schnell", {"prompt": "one"})
    second = await submit(client, "fal-ai/flux/schnell", {"prompt": "two"})
    queued = await client.get(second["status_url"])
    assert queued.status_code == 202
    assert queued.json()["status"] == "IN_QUEUE"
    assert queued.json()["queue_position"] == 0
    running = await client.get(first["status_url"])
    assert running.status_code == 202
    assert running.json()["status"] == "IN_PROGRESS"
    assert running.json()["logs"] is None
    done = await wait_done(client, first["status_url"])
    assert done["logs"] is None
    assert done["metrics"]["inference_time"] >= 0.29
    assert "error" not in done
    final = await client.get(first["status_url"])
    assert final.status_code == 200
    for key in ("request_id", "response_url", "status_url", "cancel_url"):
        assert final.json()[key] == first[key]


async def test_positions_fall_as_jobs_start_with_concurrency_two(
    make_client: ClientFactory,
) -> None:
    client = await make_client(latency=0.15, concurrency=2)
    handles = [await submit(client, "fal-ai/flux/schnell", {"prompt": f"p{i}"}) for i in range(6)]
    states = [(await client.get(h["status_url"])).json() for h in handles]
    assert [s["status"] for s in states] == ["IN_PROGRESS"] * 2 + ["IN_QUEUE"] * 4
    assert [s["queue_position"] for s in states[2:]] == [0, 1, 2, 3]
    assert engine_of(client).running == 2
    seen: list[int] = []
    async with asyncio.timeout(30):  # polled (as a client would) until the last one starts
        while True:
            body = (await client.get(handles[5]["status_url"])).json()
            if body["status"] != "IN_QUEUE":
                break
            assert engine_of(client).running <= 2
            if not seen or seen[-1] != body["queue_position"]:
                seen.append(body["queue_position"])
            await asyncio.sleep(0.01)
    assert seen[0] == 3
    assert seen == sorted(set(seen), reverse=True)  # only ever falls
    assert seen[-1] <= 1
    await wait_done(client, handles[5]["status_url"])


@pytest.mark.parametrize("flag", ["1", "true", "True"])
async def test_logs_only_when_asked(make_client: ClientFactory, flag: str) -> None:
    client = await make_client(latency=0.6)
    handle = await submit(client, "fal-ai/flux/dev", {"prompt": "x", "num_inference_steps": 6})
    async with asyncio.timeout(30):  # running, with a first log line (not a guessed delay)
        while True:
            running = (await client.get(handle["status_url"], params={"logs": flag})).json()
            if running["status"] != "IN_QUEUE" and running["logs"]:
                break
            await asyncio.sleep(0.01)
    without = (await client.get(handle["status_url"], params={"logs": "0"})).json()
    assert without["logs"] is None
    assert (await client.get(handle["status_url"], params={"logs": "false"})).json()["logs"] is None
    assert running["status"] == "IN_PROGRESS"
    assert 0 < len(running["logs"]) < 9
    done = await wait_done(client, handle["status_url"] + f"?logs={flag}")
    messages = [entry["message"] for entry in done["logs"]]
    assert messages[0].startswith("Loading model fal-ai/flux/dev")
    assert [m for m in messages if m.startswith("step ")] == [f"step {k}/6" for k in range(1, 7)]
    assert messages[-1].startswith("Finished in")
    for entry in done["logs"]:
        assert set(entry) == {"message", "level", "source", "timestamp"}
        assert entry["level"] == "INFO"


async def test_moving_log_window_keeps_last_lines(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.05, log_window=3)
    handle = await submit(client, "fal-ai/flux/dev", {"prompt": "x", "num_inference_steps": 10})
    done = await wait_done(client, handle["status_url"] + "?logs=1")
    assert [e["message"] for e in done["logs"]][:2] == ["step 9/10", "step 10/10"]
    assert len(done["logs"]) == 3


async def test_status_result_cancel_accept_both_url_spellings(client: httpx.AsyncClient) -> None:
    handle = await submit(client, "fal-ai/flux/dev", {"prompt": "x"})
    rid = handle["request_id"]
    full = f"/queue/fal-ai/flux/dev/requests/{rid}"
    await wait_done(client, f"{full}/status")
    assert (await client.get(f"{full}/status")).json()["status"] == "COMPLETED"
    assert (await client.get(full)).status_code == 200
    assert (await client.get(handle["response_url"])).status_code == 200
    assert (await client.put(f"{full}/cancel")).status_code == 400
    wrong_app = await client.get(f"/queue/fal-ai/fast-sdxl/requests/{rid}/status")
    assert wrong_app.status_code == 404


async def test_not_found_and_not_ready(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.5)
    missing = "/queue/fal-ai/flux/requests/00000000-0000-4000-8000-000000000000"
    assert (await client.get(missing)).status_code == 404
    assert (await client.get(f"{missing}/status")).status_code == 404
    assert "not found" in (await client.get(missing)).json()["detail"]
    handle = await submit(client, "fal-ai/flux/dev", {"prompt": "x"})
    early = await client.get(handle["response_url"])
    assert early.status_code == 400
    assert "still" in early.json()["detail"]


async def test_invalid_input_is_accepted_then_422_at_result(client: httpx.AsyncClient) -> None:
    body = {"prompt": "x", "num_inference_steps": 28, "image_size": "huge"}
    handle = await submit(client, "fal-ai/flux/schnell", body)
    done = await wait_done(client, handle["status_url"])
    assert done["error_type"] in ("less_than_equal", "literal_error")
    result = await client.get(handle["response_url"])
    assert result.status_code == 422
    assert result.headers["x-fal-request-id"] == handle["request_id"]
    detail = result.json()["detail"]
    by_loc = {tuple(item["loc"]): item for item in detail}
    steps = by_loc[("body", "num_inference_steps")]
    assert steps["type"] == "less_than_equal"
    assert steps["ctx"] == {"le": 12}
    assert steps["input"] == 28
    assert steps["msg"] == "Input should be less than or equal to 12"
    size = by_loc[("body", "image_size")]
    assert size["input"] == "huge"
    assert "square_hd" in size["msg"]


async def test_missing_prompt_detail(client: httpx.AsyncClient) -> None:
    handle = await submit(client, "fal-ai/flux/dev", {})
    await wait_done(client, handle["status_url"])
    item = (await client.get(handle["response_url"])).json()["detail"][0]
    assert item["loc"] == ["body", "prompt"]
    assert item["type"] == "missing"


async def test_unknown_fields_are_ignored_like_fal(client: httpx.AsyncClient) -> None:
    handle = await submit(client, "fal-ai/flux/dev", {"prompt": "x", "some_new_field": 1})
    await wait_done(client, handle["status_url"])
    assert (await client.get(handle["response_url"])).status_code == 200


@pytest.mark.parametrize(
    ("endpoint", "detail"),
    [
        ("fal-ai/nonexistent-endpoint-xyz", "Application 'nonexistent-endpoint-xyz' not found"),
        ("someone/else/dev", "Application 'else' not found"),
        ("fal-ai/flux-lora-fast-training/other", "Path /other not found"),
    ],
)
async def test_unknown_apps_and_paths_404(
    client: httpx.AsyncClient, endpoint: str, detail: str
) -> None:
    response = await client.post(f"/queue/{endpoint}", json={"prompt": "x"})
    assert response.status_code == 404
    assert response.json() == {"detail": detail}
    assert engine_of(client).stats.submits == 0


async def test_uncatalogued_path_of_known_image_app_works(client: httpx.AsyncClient) -> None:
    handle = await submit(client, "fal-ai/flux/some-new-variant", {"prompt": "x"})
    assert "/queue/fal-ai/flux/requests/" in handle["status_url"]
    await wait_done(client, handle["status_url"])
    assert (await client.get(handle["response_url"])).json()["images"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Key "}, {"Authorization": "Bearer x"}])
async def test_missing_or_malformed_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    client.headers.pop("Authorization")
    response = await client.post("/queue/fal-ai/flux/dev", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "No user found for Key ID and Secret"}


async def test_configured_keys_only(make_client: ClientFactory) -> None:
    client = await make_client(api_keys={"good:key"})
    refused = await client.post("/queue/fal-ai/flux/dev", json={"prompt": "x"})
    assert refused.status_code == 401
    ok = await client.post(
        "/queue/fal-ai/flux/dev", json={"prompt": "x"}, headers={"Authorization": "Key good:key"}
    )
    assert ok.status_code == 200
    assert "good:key" not in repr(engine_of(client).config)


async def test_invalid_json_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/queue/fal-ai/flux/dev", content=b"{not json", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_cancel_queued_running_finished_unknown(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.4, concurrency=1)
    running = await submit(client, "fal-ai/flux/dev", {"prompt": "a"})
    queued = await submit(client, "fal-ai/flux/dev", {"prompt": "b"})
    behind = await submit(client, "fal-ai/flux/dev", {"prompt": "c"})
    assert (await client.get(behind["status_url"])).json()["queue_position"] == 1

    removed = await client.put(queued["cancel_url"])
    assert (removed.status_code, removed.json()) == (200, {"status": "OK"})
    assert (await client.get(behind["status_url"])).json()["queue_position"] == 0
    cancelled = (await client.get(queued["status_url"])).json()
    assert cancelled["status"] == "COMPLETED"
    assert cancelled["error_type"] == "cancelled"

    stopping = await client.put(running["cancel_url"])
    assert (stopping.status_code, stopping.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    ended = (await client.get(running["status_url"])).json()
    assert (ended["status"], ended["error_type"]) == ("COMPLETED", "cancelled")
    result = await client.get(running["response_url"])
    assert result.status_code == 400
    assert result.json()["error_type"] == "cancelled"
    assert (await client.get(behind["status_url"])).json()["status"] == "IN_PROGRESS"

    again = await client.put(running["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    unknown = await client.put(
        "/queue/fal-ai/flux/requests/00000000-0000-4000-8000-000000000000/cancel"
    )
    assert unknown.status_code == 404
    assert unknown.json()["status"] == "NOT_FOUND"


async def test_never_emits_other_statuses(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.05, concurrency=1)
    handles = [await submit(client, "fal-ai/flux/schnell", {"prompt": str(i)}) for i in range(4)]
    await client.put(handles[1]["cancel_url"])
    seen = set()
    for handle in handles:
        body = await wait_done(client, handle["status_url"])
        seen.add(body["status"])
    assert seen == {"COMPLETED"}


async def test_stats_count_requests_per_route(client: httpx.AsyncClient) -> None:
    engine = engine_of(client)
    handle = await submit(client, "fal-ai/flux/schnell", {"prompt": "x"})
    await wait_done(client, handle["status_url"])
    await client.get(handle["response_url"])
    assert engine.stats.requests["submit"] == 1
    assert engine.stats.requests["status"] >= 1
    assert engine.stats.requests["result"] == 1
    engine.stats.reset()
    assert engine.stats.submits == 0
    assert not engine.stats.requests


async def test_start_timeout_expires_queued_job(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.3, concurrency=1)
    first = await submit(
        client, "fal-ai/flux/dev", {"prompt": "a"}, headers={"X-Fal-Request-Timeout": "0.05"}
    )
    late = await submit(
        client, "fal-ai/flux/dev", {"prompt": "b"}, headers={"X-Fal-Request-Timeout": "0.1"}
    )
    patient = await submit(
        client, "fal-ai/flux/dev", {"prompt": "c"}, headers={"X-Fal-Request-Timeout": "5.0"}
    )
    expired = await wait_done(client, late["status_url"])
    assert (expired["error"], expired["error_type"]) == ("Request timed out", "request_timeout")
    result = await client.get(late["response_url"])
    assert result.status_code == 504
    assert result.headers["x-fal-request-timeout-type"] == "user"
    assert (await client.get(patient["status_url"])).json()["queue_position"] == 0
    for handle in (first, patient):  # started in time: unaffected
        await wait_done(client, handle["status_url"])
        assert (await client.get(handle["response_url"])).status_code == 200
