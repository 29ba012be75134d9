"""Tools a model cannot misuse: Fal's names, strict arguments, one-line errors, honest schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from mcp.types import Tool

from falkit.catalog import image_models
from falkit.types import IMAGE_SIZE_PRESETS
from tests.lora.helpers import total_requests
from tests.mcp.helpers import data, ok, text

IMAGE_PARAMS = {
    "prompt",
    "model",
    "image_size",
    "num_inference_steps",
    "guidance_scale",
    "seed",
    "num_images",
    "loras",
    "output_format",
    "negative_prompt",
    "enable_safety_checker",
    "safety_tolerance",
}


def one_line_error(result: Any) -> str:
    """The text of a tool error, which must be one line in the CLI's style."""
    assert result.is_error, text(result)
    message = text(result)
    assert "\n" not in message, message
    assert message.startswith("invalid input: "), message
    assert "validation error" not in message
    assert "Error executing tool" not in message
    return message


async def tools_by_name(client: Client) -> dict[str, Tool]:
    return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_unknown_or_misspelled_arguments_are_refused(connect: Any, emu: Any) -> None:
    async with connect() as client:
        misspelled = await client.call_tool(
            "generate_image", {"prompt": "a fox", "num_inference_step": 8}
        )
        unknown = await client.call_tool("estimate_cost", {"prompt": "a fox", "style": "noir"})
        job = await client.call_tool("get_job", {"id": "j_123"})
        odd = await client.call_tool("list_jobs", {"limit\n2": 3})
        training = await client.call_tool(
            "train_lora", {"source": "https://x.test/a.zip", "trigger": "TOK"}
        )
    message = one_line_error(misspelled)
    assert "num_inference_step: unknown argument; did you mean num_inference_steps?" in message
    assert "allowed: prompt, model, image_size, num_inference_steps" in message
    assert "short names: format, guidance, lora, size, steps" in message
    assert "style: unknown argument (allowed: prompt, model" in one_line_error(unknown)
    assert "id: unknown argument" in one_line_error(job)
    assert "(allowed: job_id, wait_seconds)" in text(job)
    assert "limit?2: unknown argument; did you mean limit?" in one_line_error(odd)
    assert "trigger: unknown argument; did you mean trigger_word?" in one_line_error(training)
    assert total_requests(emu) == 0


@pytest.mark.parametrize("tool", ["generate_image", "estimate_cost"])
async def test_steps_past_the_models_range_are_refused_with_the_range(
    connect: Any, emu: Any, tool: str
) -> None:
    async with connect() as client:
        schnell = await client.call_tool(tool, {"prompt": "x", "num_inference_steps": 50})
        dev = await client.call_tool(
            tool, {"prompt": "x", "model": "flux-dev", "num_inference_steps": 51}
        )
    assert "num_inference_steps" in one_line_error(schnell)
    assert "(allowed: 1 to 12 for flux-schnell)" in text(schnell)
    assert "(allowed: 1 to 50 for flux-dev)" in one_line_error(dev)
    assert total_requests(emu) == 0


async def test_estimate_checks_exactly_as_generate(connect: Any, emu: Any) -> None:
    async with connect() as client:
        schemas = await tools_by_name(client)
        guided = ok(
            await client.call_tool(
                "estimate_cost", {"prompt": "x", "model": "flux-dev", "guidance_scale": 7}
            )
        )
        too_high = await client.call_tool(
            "estimate_cost", {"prompt": "x", "model": "flux-dev", "guidance_scale": 21}
        )
        lora = await client.call_tool("estimate_cost", {"prompt": "x", "loras": ["nosuch"]})
    generate, estimate = schemas["generate_image"], schemas["estimate_cost"]
    assert estimate.input_schema == generate.input_schema
    assert data(guided)["arguments"]["guidance_scale"] == 7
    assert "guidance_scale" in one_line_error(too_high)
    assert "(allowed: 1 to 20 for flux-dev)" in text(too_high)
    assert "'nosuch' is not an http(s) URL, a registered LoRA name" in one_line_error(lora)
    assert "registered LoRAs: none yet" in text(lora)
    assert total_requests(emu) == 0


async def test_short_names_are_taken_as_fals_names(connect: Any, emu: Any) -> None:
    short = {"steps": 8, "guidance": 4.5, "size": "512x384", "format": "png", "lora": ["x.test"]}
    async with connect() as client:
        result = ok(
            await client.call_tool(
                "estimate_cost",
                {"prompt": "x", **{k: v for k, v in short.items() if k != "lora"}},
            )
        )
        twice = await client.call_tool(
            "estimate_cost", {"prompt": "x", "steps": 3, "num_inference_steps": 4}
        )
    arguments = data(result)["arguments"]
    assert arguments["num_inference_steps"] == 8
    assert arguments["guidance_scale"] == 4.5
    assert arguments["image_size"] == {"width": 512, "height": 384}
    assert arguments["output_format"] == "png"
    assert "num_inference_steps: given twice (as 'steps' and " in one_line_error(twice)
    assert total_requests(emu) == 0


async def test_every_parameter_reaches_the_request(connect: Any, emu: Any) -> None:
    sdxl = {
        "model": "sdxl",
        "image_size": {"width": 640, "height": 480},
        "num_inference_steps": 30,
        "guidance_scale": 6.0,
        "seed": 42,
        "num_images": 2,
        "output_format": "png",
        "negative_prompt": "blurry",
        "enable_safety_checker": False,
    }
    async with connect() as client:
        on_sdxl = ok(await client.call_tool("estimate_cost", {"prompt": "x", **sdxl}))
        on_pro = ok(
            await client.call_tool(
                "estimate_cost", {"prompt": "x", "model": "flux-pro", "safety_tolerance": 5}
            )
        )
        raw = ok(
            await client.call_tool(
                "estimate_cost", {"prompt": "x", "model": "acme/painter", "image_size": "800x600"}
            )
        )
    arguments = data(on_sdxl)["arguments"]
    expected = {k: v for k, v in sdxl.items() if k not in ("model", "output_format")}
    assert {k: arguments[k] for k in expected} == expected
    assert arguments["format"] == "png"  # sdxl's own name for it
    assert data(on_pro)["arguments"]["safety_tolerance"] == "5"
    assert data(raw)["endpoint_id"] == "acme/painter"
    assert data(raw)["arguments"]["image_size"] == {"width": 800, "height": 600}
    assert data(raw)["estimated_cost"] is None
    tested = {*sdxl, "safety_tolerance", "prompt"}
    assert tested | {"loras"} == IMAGE_PARAMS  # loras: test_lora.py
    assert total_requests(emu) == 0


async def test_negative_prompt_reaches_fal_on_sdxl_and_is_refused_on_flux(
    connect: Any, emu: Any
) -> None:
    async with connect() as client:
        flux = await client.call_tool(
            "generate_image", {"prompt": "a cat", "model": "flux-dev", "negative_prompt": "dogs"}
        )
        sent_before = total_requests(emu)
        sdxl = ok(
            await client.call_tool(
                "generate_image", {"prompt": "a cat", "model": "sdxl", "negative_prompt": "dogs"}
            )
        )
    message = one_line_error(flux)
    assert "negative_prompt: unknown field for flux-dev" in message
    assert sent_before == 0
    (job,) = emu.engine.jobs.values()
    assert job.params["negative_prompt"] == "dogs"
    assert data(sdxl)["done"] is True


async def test_wrong_types_are_one_line_errors(connect: Any, emu: Any) -> None:
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("generate_image", {}, "prompt: is required"),
        ("generate_image", {"prompt": "x", "seed": "abc"}, "seed: Input should be a valid int"),
        ("generate_image", {"prompt": "x", "image_size": 5}, "image_size: 5 is not accepted"),
        ("estimate_cost", {"prompt": "x", "output_format": "gif"}, "output_format: "),
        ("get_job", {"job_id": "j", "wait_seconds": -1}, "wait_seconds: Input should be greater"),
        ("list_jobs", {"limit": 0}, "limit: Input should be greater than or equal to 1"),
        ("list_jobs", {"status": "done"}, "status: Input should be 'pending'"),
        ("train_lora", {"source": "https://x.test/a.zip", "is_style": "maybe"}, "is_style: "),
    ]
    async with connect() as client:
        results = [await client.call_tool(tool, args) for tool, args, _ in calls]
    for (tool, args, expected), result in zip(calls, results, strict=True):
        assert expected in one_line_error(result), (tool, args, text(result))
    assert "(allowed: square_hd, square, " in text(results[2])
    assert "or WIDTHxHEIGHT or {width, height})" in text(results[2])
    assert "(allowed: jpeg, png)" in text(results[3])
    assert total_requests(emu) == 0


def walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema of a JSON schema, with where it is."""
    if isinstance(schema, dict):
        yield path, schema
        for key, value in schema.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from walk(value, f"{path}/{index}")


async def test_the_schemas_are_closed_titled_and_free_of_null(connect: Any) -> None:
    async with connect() as client:
        tools = await tools_by_name(client)
    for tool in tools.values():
        schema = tool.input_schema
        assert tool.title, tool.name
        assert schema["additionalProperties"] is False, tool.name
        assert tool.output_schema, tool.name
        assert tool.output_schema["type"] == "object", tool.name
        for name, prop in schema["properties"].items():
            assert prop.get("title"), f"{tool.name}.{name}"
        for where, sub in walk(schema):
            assert sub.get("type") != "null", f"{tool.name}{where}"
            assert not ("default" in sub and sub["default"] is None), f"{tool.name}{where}"


async def test_defaults_are_the_real_ones(connect: Any) -> None:
    async with connect(wait_seconds=7.5) as client:
        tools = await tools_by_name(client)
    assert tools["get_job"].input_schema["properties"]["wait_seconds"]["default"] == 7.5
    train = tools["train_lora"].input_schema["properties"]["steps"]
    assert (train["minimum"], train["maximum"], train["default"]) == (1, 10000, 1000)
    assert tools["list_jobs"].input_schema["properties"]["limit"]["default"] == 10


async def test_generate_image_schema_has_the_catalogs_enums_and_bounds(connect: Any) -> None:
    async with connect() as client:
        schema = (await tools_by_name(client))["generate_image"].input_schema
    props = schema["properties"]
    assert set(props) == IMAGE_PARAMS
    assert schema["required"] == ["prompt"]
    models, endpoint = props["model"]["anyOf"]
    assert models["enum"] == [spec.name for spec in image_models()]
    assert "flux-lora-training" not in models["enum"]
    assert endpoint["pattern"].startswith("^")
    presets, wxh, sized = props["image_size"]["anyOf"]
    assert presets["enum"] == list(IMAGE_SIZE_PRESETS)
    assert wxh["pattern"] == r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$"
    assert sized["required"] == ["width", "height"]
    steps = props["num_inference_steps"]
    assert (steps["type"], steps["minimum"], steps["maximum"]) == ("integer", 1, 50)
    assert "default" not in steps, "defaults differ per model: described, not declared"
    assert "flux-schnell: 1 to 12, default 4" in steps["description"]
    assert "Not taken by flux-pro-1.1" in steps["description"]
    guidance = props["guidance_scale"]
    assert (guidance["minimum"], guidance["maximum"]) == (0, 35)
    images = props["num_images"]
    assert (images["minimum"], images["maximum"], images["default"]) == (1, 8, 1)
    assert props["output_format"]["enum"] == ["jpeg", "png"]
    assert props["output_format"]["default"] == "jpeg"
    assert props["enable_safety_checker"]["default"] is True
    assert "Only sdxl takes it" in props["negative_prompt"]["description"]
    assert props["safety_tolerance"]["enum"] == ["1", "2", "3", "4", "5", "6"]
    assert "Only flux-pro, flux-pro-1.1 take it" in props["safety_tolerance"]["description"]
    assert "Only flux-lora, sdxl take it" in props["loras"]["description"]
    scale = props["loras"]["items"]["anyOf"][1]["properties"]["scale"]
    assert (scale["minimum"], scale["maximum"], scale["default"]) == (0, 2, 1)
    assert props["prompt"]["minLength"] == 1


async def test_a_schema_checking_client_agrees_with_the_server(connect: Any) -> None:
    """What the published schema allows, the server takes (on some model), and vice versa
    for names: a JSON-schema validator refuses exactly the unknown names the server refuses."""
    from jsonschema import Draft202012Validator

    async with connect() as client:
        schema = (await tools_by_name(client))["generate_image"].input_schema
    check = Draft202012Validator(schema)
    good = {"prompt": "x", "model": "fal-ai/flux/dev", "image_size": "1024x768", "seed": 1}
    assert not list(check.iter_errors(good))
    for bad in (
        {"prompt": "x", "num_inference_step": 4},
        {"prompt": "x", "model": "fal-ai/../secret"},
        {"prompt": "x", "image_size": "huge"},
        {"prompt": "x", "num_inference_steps": 51},
        {"prompt": "x", "model": None},
    ):
        assert list(check.iter_errors(bad)), bad
