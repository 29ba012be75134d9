"""The MCP tools through the official SDK's in-process client, against the emulator."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr

from falkit.mcp.app import McpApp, ServerOptions
from falkit.mcp.server import create_server
from falkit.service import FalService
from tests.integration.helpers import emulator_settings
from tests.lora.helpers import total_requests
from tests.mcp.helpers import assert_images, data, ok, text

TOOLS = {
    "generate_image",
    "estimate_cost",
    "list_models",
    "get_job",
    "list_jobs",
    "cancel_job",
    "train_lora",
    "list_loras",
}


async def test_every_tool_and_parameter_is_described(connect: Any) -> None:
    async with connect() as client:
        tools = (await client.list_tools()).tools
        instructions = client.instructions or ""
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert len(tool.description or "") > 40, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert len(schema.get("description", "")) > 15, f"{tool.name}.{name}"
    generate = next(t for t in tools if t.name == "generate_image")
    assert "ctx" not in generate.input_schema["properties"]
    assert generate.input_schema["required"] == ["prompt"]
    assert "trigger word" in instructions
    assert "flux-realism: photorealism" in instructions


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_generate_returns_preview_file_and_progress(
    connect: Any, emu: Any, service: FalService, mode: str
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect(mode=mode) as client:
        result = await client.call_tool(
            "generate_image",
            {"prompt": "a lighthouse at dusk", "seed": 7, "image_size": "512x384"},
            progress_callback=on_progress,
        )
    (path,) = assert_images(result)
    answer = data(result)
    assert answer["done"] is True
    assert answer["seed"] == 7
    job = await service.get_job(answer["job_id"])
    assert job.status == "completed"
    assert job.images[0].local_path == answer["images"][0]["path"]
    assert path.resolve() == (service.settings.home / answer["images"][0]["path"]).resolve()
    assert emu.stats.submits == 1
    values = [v for v, _, _ in progress]
    assert values == sorted(values), "progress must never go down"
    messages = [m for _, _, m in progress]
    assert any(m and m.startswith("queued") for m in messages)
    assert any(m and m.startswith("step ") for m in messages)
    assert progress[-1][:2] == (100.0, 100.0)


async def test_bad_parameter_is_a_tool_error_and_nothing_is_sent(connect: Any, emu: Any) -> None:
    async with connect() as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "steps": 99})
        size = await client.call_tool("generate_image", {"prompt": "x", "image_size": "huge"})
    assert result.is_error
    assert "num_inference_steps" in text(result)
    assert "1 to 12 for flux-schnell" in text(result)
    assert size.is_error
    assert "square_hd" in text(size)
    assert total_requests(emu) == 0


async def test_unknown_lora_lists_the_library(connect: Any, emu: Any) -> None:
    async with connect() as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "loras": ["nosuch"]})
    assert result.is_error
    assert "'nosuch' is not an http(s) URL, a registered LoRA name" in text(result)
    assert "registered LoRAs: none yet" in text(result)
    assert emu.stats.submits == 0


async def test_missing_key_says_how_to_set_it(connect: Any, emu: Any) -> None:
    settings = emulator_settings(emu.base_url).model_copy(update={"api_key": None})
    async with FalService(settings) as keyless, connect(keyless) as client:
        result = await client.call_tool("generate_image", {"prompt": "a cat"})
        models = ok(await client.call_tool("list_models", {}))
    assert result.is_error
    assert "FAL_API_KEY" in text(result)
    assert '"env"' in text(result)
    assert "flux-schnell" in text(models)
    assert total_requests(emu) == 0


async def test_the_key_never_appears_in_answers(emu: Any) -> None:
    secret = "0123-distinctive-secret-key:abcdefabcdef"
    settings = emulator_settings(emu.base_url).model_copy(update={"api_key": SecretStr(secret)})
    seen: list[str] = []
    async with (
        FalService(settings) as svc,
        McpApp(svc, ServerOptions()) as app,
        Client(create_server(app)) as client,
    ):
        seen.append(client.instructions or "")
        for name, args in [
            ("generate_image", {"prompt": "a cat"}),
            ("generate_image", {"prompt": "a cat", "steps": 0}),
            ("list_jobs", {}),
            ("get_job", {"job_id": "nope"}),
            ("estimate_cost", {"prompt": "a cat"}),
        ]:
            result = await client.call_tool(name, args)
            seen.append(result.model_dump_json())
    assert emu.stats.submits == 1
    assert all(secret not in s and "distinctive" not in s for s in seen)


async def test_estimate_checks_without_sending(connect: Any, emu: Any) -> None:
    async with connect(max_spend_usd=1.0) as client:
        result = ok(
            await client.call_tool(
                "estimate_cost", {"prompt": "x", "model": "flux-dev", "image_size": "square"}
            )
        )
        bad = await client.call_tool("estimate_cost", {"prompt": "x", "model": "nope"})
    answer = data(result)
    assert answer["estimated_cost"] == pytest.approx(0.025)
    assert answer["endpoint_id"] == "fal-ai/flux/dev"
    assert answer["spent_usd"] == 0
    assert "Nothing was sent" in text(result)
    assert bad.is_error
    assert "unknown model 'nope'" in text(bad)
    assert total_requests(emu) == 0


async def test_list_and_cancel_jobs(connect: Any, emu: Any) -> None:
    emu.engine.config.latency = 30.0
    async with connect(wait_seconds=0.3) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a slow red barn"}))
        job_id = data(first)["job_id"]
        listed = ok(await client.call_tool("list_jobs", {"search": "red barn"}))
        none = ok(await client.call_tool("list_jobs", {"search": "zebra"}))
        cancelled = ok(await client.call_tool("cancel_job", {"job_id": job_id}))
        after = ok(await client.call_tool("get_job", {"job_id": job_id, "wait_seconds": 5}))
    assert [j["job_id"] for j in data(listed)["jobs"]] == [job_id]
    assert data(none)["jobs"] == []
    assert data(cancelled)["outcome"] in ("OK", "CANCELLATION_REQUESTED")
    assert data(after)["status"] == "cancelled"
    assert emu.stats.submits == 1


async def test_a_job_failing_at_fal_is_reported(connect: Any, emu: Any) -> None:
    from falkit.emulator import Fault

    emu.faults.add(Fault(route="submit", kind="job_error", error_type="request_timeout"))
    async with connect() as client:
        result = await client.call_tool("generate_image", {"prompt": "a storm"})
        jobs = ok(await client.call_tool("list_jobs", {"status": "failed"}))
        (job,) = data(jobs)["jobs"]
        again = ok(await client.call_tool("get_job", {"job_id": job["job_id"]}))
    assert result.is_error
    assert f"job {job['job_id']} failed" in text(result)
    assert data(again)["status"] == "failed"
    assert "ended failed" in text(again)
    assert emu.stats.submits == 1
