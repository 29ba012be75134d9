"""Any model parameter: `-p NAME=VALUE` and batch-file columns reach Fal (the emulator's
recorded submits), checked by the catalog for known models, passed through for raw endpoints;
`falkit models show` lists every parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from falkit.catalog import MODELS
from falkit.cli.params import parse_value
from tests.cli.helpers import cli, generate


def submitted(emu: Any) -> list[dict[str, Any]]:
    """What Fal was sent (as the emulated model read it), oldest first."""
    return [job.params for job in emu.engine.jobs.values()]


def test_a_param_reaches_fal(emu: Any, env: dict[str, str]) -> None:
    generate(
        "a castle on a hill", "-m", "sdxl",
        "-p", "negative_prompt=blurry, text",
        "-p", "num_inference_steps=9",
        "-p", "expand_prompt=true",
        "-p", "image_size={\"width\": 512, \"height\": 384}",
    )  # fmt: skip
    (sent,) = submitted(emu)
    assert sent["negative_prompt"] == "blurry, text"
    assert sent["num_inference_steps"] == 9
    assert sent["expand_prompt"] is True
    assert sent["image_size"] == {"width": 512, "height": 384}


def test_short_names_work_in_p(emu: Any, env: dict[str, str]) -> None:
    generate("a fox", "-p", "steps=3", "-p", "guidance=2.5", "-p", "format=png")
    (sent,) = submitted(emu)
    assert (sent["num_inference_steps"], sent["guidance_scale"]) == (3, 2.5)
    assert sent["output_format"] == "png"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-p", "num_inference_steps=50"], ["num_inference_steps", "1 to 12"]),
        (["-p", "negative_prompt=x"], ["negative_prompt", "unknown field for flux-schnell"]),
        (["-m", "sdxl", "-p", "expand_prompt=maybe"], ["expand_prompt"]),
        (["--steps", "4", "-p", "num_inference_steps=8"], ["--steps", "-p num_inference_steps"]),
        (["--seed", "4", "-p", "seed=5"], ["--seed", "-p seed"]),
        (["-p", "steps=4", "-p", "num_inference_steps=8"], ["given twice"]),
        (["-p", "prompt=other"], ["PROMPT argument"]),
        (["-p", "steps"], ["NAME=VALUE"]),
    ],
)
def test_a_bad_param_is_refused_and_nothing_sent(
    emu: Any, env: dict[str, str], args: list[str], words: list[str]
) -> None:
    result = cli("generate", "a fox", *args)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.output
    assert emu.stats.submits == 0


def test_raw_endpoint_passes_any_param_through(emu: Any, env: dict[str, str]) -> None:
    answer = generate(
        "a fox", "-m", "fal-ai/flux/dev/image-to-image",
        "-p", "strength=0.8", "-p", "guidance_scale=7", "-p", "custom_flag=true",
    )  # fmt: skip
    (sent,) = submitted(emu)
    assert sent["guidance_scale"] == 7  # read by the emulated model
    journaled = json.loads(cli("jobs", "show", answer["job_id"], "--json").stdout)
    assert journaled["endpoint_id"] == "fal-ai/flux/dev/image-to-image"
    assert journaled["arguments"] == {
        "prompt": "a fox", "strength": 0.8, "guidance_scale": 7, "custom_flag": True
    }  # fmt: skip


def test_values_parse_as_json_else_text() -> None:
    assert parse_value("8") == 8
    assert parse_value("2.5") == 2.5
    assert parse_value("false") is False
    assert parse_value('"1984"') == "1984"
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("blurry, low quality") == "blurry, low quality"
    assert parse_value("NaN") == "NaN"  # never a float the catalog might take
    assert parse_value("") == ""


def test_batch_file_keys_and_columns_reach_fal(
    emu: Any, env: dict[str, str], tmp_path: Path
) -> None:
    jsonl = tmp_path / "in.jsonl"
    rows = [
        {"prompt": "a castle", "model": "sdxl", "negative_prompt": "fog", "expand_prompt": True},
        {"prompt": "a fox", "model": "fal-ai/flux/dev/image-to-image", "strength": 0.5},
    ]
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = cli("batch", "run", str(jsonl), "--json")
    assert result.exit_code == 0, result.output
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("prompt,model,negative_prompt,num_inference_steps\na tower,sdxl,rain,7\n")
    result = cli("batch", "run", str(csv_file), "--json")
    assert result.exit_code == 0, result.output
    sent = submitted(emu)
    castle = next(p for p in sent if p["prompt"] == "a castle")
    assert (castle["negative_prompt"], castle["expand_prompt"]) == ("fog", True)
    tower = next(p for p in sent if p["prompt"] == "a tower")
    assert (tower["negative_prompt"], tower["num_inference_steps"]) == ("rain", 7)
    assert emu.stats.submits_by_endpoint["fal-ai/flux/dev/image-to-image"] == 1


def test_batch_file_with_a_bad_key_is_refused(
    emu: Any, env: dict[str, str], tmp_path: Path
) -> None:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"prompt": "a fox", "negative_prompt": "fog"}) + "\n")
    result = cli("batch", "run", str(jsonl))
    assert result.exit_code == 2
    assert "negative_prompt" in result.stderr
    assert emu.stats.submits == 0


def test_models_show_lists_every_parameter() -> None:
    result = cli("models", "show", "sdxl", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {row["name"]: row for row in data["parameters"]}
    assert set(rows) == set(MODELS["sdxl"].input_model.model_fields)
    steps = rows["num_inference_steps"]
    assert (steps["type"], steps["allowed"], steps["default"]) == ("integer", "1 to 50", 25)
    assert steps["flag"] == "--steps"
    assert rows["negative_prompt"]["flag"] == "-p"
    assert "landscape_16_9" in rows["image_size"]["allowed"]
    assert rows["prompt"]["required"] is True


def test_models_show_text_pipe_and_errors() -> None:
    lines = cli("models", "show", "flux-schnell").stdout.splitlines()
    steps = next(line.split("\t") for line in lines if line.startswith("num_inference_steps"))
    assert steps[1:5] == ["integer", "1 to 12", "4", "--steps"]
    assert len(lines) == len(MODELS["flux-schnell"].input_model.model_fields)
    assert cli("models", "show", "fal-ai/flux/schnell").exit_code == 0
    unknown = cli("models", "show", "flux-ultra")
    assert unknown.exit_code == 2
    assert "flux-schnell" in unknown.stderr
    raw = cli("models", "show", "fal-ai/some/thing")
    assert raw.exit_code == 2
    assert "-p" in raw.stderr
