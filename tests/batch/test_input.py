"""Reading batch inputs, sweeping them, and checking every job before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falkit.errors import ValidationError
from falkit.service.batch_input import Sweep, expand, parse_seeds, read_requests
from falkit.service.batch_plan import BatchPlan, plan_batch


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def plan_of(*requests: Any, **sweep: Any) -> BatchPlan:
    expanded = expand(read_requests(list(requests)), Sweep.parse(**sweep))
    return plan_batch(expanded, "python")


def test_text_file_one_prompt_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.txt", "a red fox\n\n# a comment\n  a blue whale  \n")
    requests = read_requests(path)
    assert [(r.line, r.params) for r in requests] == [
        (1, {"prompt": "a red fox"}),
        (4, {"prompt": "a blue whale"}),
    ]


def test_jsonl_takes_any_parameter_and_short_names(tmp_path: Path) -> None:
    text = (
        '{"prompt": "fox", "model": "flux-dev", "steps": 20, "size": "512x512"}\n'
        "\n"
        '{"prompt": "whale", "guidance_scale": 4.5, "loras": "https://x/a.safetensors:0.7"}\n'
    )
    requests = read_requests(write(tmp_path, "r.jsonl", text))
    assert requests[0].line == 1
    assert requests[0].params == {
        "prompt": "fox",
        "model": "flux-dev",
        "num_inference_steps": 20,
        "image_size": "512x512",
    }
    assert requests[1].line == 3
    assert requests[1].params["loras"] == [{"path": "https://x/a.safetensors", "scale": 0.7}]


def test_csv_with_header_types_its_cells(tmp_path: Path) -> None:
    text = 'prompt,seed,guidance,size,num_images\nfox,7,3.5,square,\n"a, comma",8,,,2\n'
    requests = read_requests(write(tmp_path, "r.csv", text))
    assert [r.line for r in requests] == [2, 3]
    assert requests[0].params == {
        "prompt": "fox",
        "seed": 7,
        "guidance_scale": 3.5,
        "image_size": "square",
    }
    assert requests[1].params == {"prompt": "a, comma", "seed": 8, "num_images": 2}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("r.jsonl", '{"prompt": "ok"}\nnot json\n', "line 2: input: not valid JSON"),
        ("r.jsonl", '{"prompt": "ok"}\n{"seed": 3}\n', "line 2: prompt: missing or empty"),
        ("r.jsonl", '{"prompt": "ok", "size": "square", "image_size": "square"}\n', "given twice"),
        ("r.csv", "text,seed\nfox,1\n", "line 1: header: a CSV input needs a 'prompt' column"),
        ("r.txt", "\n# only comments\n", "no requests in the input"),
    ],
)
def test_unreadable_inputs_name_the_line(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        read_requests(write(tmp_path, name, text))


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("1-4", (1, 2, 3, 4)), ("1,5,9", (1, 5, 9)), ("1-3,10, 2", (1, 2, 3, 10)), ("7", (7,))],
)
def test_seed_lists(text: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["4-1", "a-b", "1,,x", "-3", ""])
def test_bad_seed_lists(text: str) -> None:
    with pytest.raises(ValidationError, match="seeds"):
        parse_seeds(text)


def test_sweeps_multiply_every_request_seeds_fastest() -> None:
    sweep = Sweep.parse(seeds="1-2", models="flux-schnell,flux-dev", guidance="3,4")
    expanded = expand(read_requests(["fox", {"prompt": "whale", "seed": 99}]), sweep)
    assert len(expanded) == 2 * 2 * 2 * 2
    first = [(r.params["model"], r.params["guidance_scale"], r.params["seed"]) for r in expanded]
    assert first[:4] == [
        ("flux-schnell", 3.0, 1),
        ("flux-schnell", 3.0, 2),
        ("flux-schnell", 4.0, 1),
        ("flux-schnell", 4.0, 2),
    ]
    assert {r.params["seed"] for r in expanded[8:]} == {1, 2}, "a sweep replaces the request's own"
    assert expanded[9].label == "item 2 (model=flux-schnell, guidance_scale=3.0, seed=2)"


def test_lora_scale_sweep_needs_loras_and_sets_every_scale() -> None:
    loras = [{"path": "https://x/a.safetensors", "scale": 1.0}, "https://x/b.safetensors"]
    expanded = expand(
        read_requests([{"prompt": "p", "loras": loras}]), Sweep.parse(lora_scales="0.5,1")
    )
    a, b = "https://x/a.safetensors", "https://x/b.safetensors"
    assert [r.params["loras"] for r in expanded] == [
        [{"path": a, "scale": 0.5}, {"path": b, "scale": 0.5}],
        [{"path": a, "scale": 1.0}, {"path": b, "scale": 1.0}],
    ]
    with pytest.raises(
        ValidationError, match="item 2: lora_scales: a LoRA scale sweep needs LoRAs"
    ):
        expand(read_requests([{"prompt": "p", "loras": loras}, "q"]), Sweep.parse(lora_scales="1"))


def test_every_error_of_every_job_is_reported_before_sending() -> None:
    with pytest.raises(ValidationError) as caught:
        plan_of("ok", {"prompt": "too strong", "guidance": 50}, {"prompt": "x", "bogus": 1},
                models="flux-schnell,flux-dev")  # fmt: skip
    fields = [e.field for e in caught.value.errors]
    assert fields == [
        "item 2 (model=flux-schnell): guidance_scale",
        "item 2 (model=flux-dev): guidance_scale",
        "item 3 (model=flux-schnell): bogus",
        "item 3 (model=flux-dev): bogus",
    ]
    assert "1 to 20" in str(caught.value)


def test_unknown_model_in_a_sweep_is_named() -> None:
    with pytest.raises(
        ValidationError, match="item 1 \\(model=flux-ultra\\): model: unknown model"
    ):
        plan_of("fox", models="flux-ultra")


def test_batch_id_is_a_hash_of_the_jobs() -> None:
    one = plan_of("fox", "whale", seeds="1-3")
    again = plan_of("fox", "whale", seeds="1-3")
    other = plan_of("fox", "whale", seeds="1-4")
    assert one.batch_id == again.batch_id
    assert one.batch_id != other.batch_id
    assert one.batch_id.startswith("b_")


def test_plan_prices_and_labels_what_varies() -> None:
    plan = plan_of({"prompt": "fox", "size": "square"}, models="flux-schnell,flux-dev", seeds="1,2")
    assert len(plan.jobs) == 4
    # schnell: 0.262144 MP x $0.003 (to the micro-dollar); dev: rounded up to 1 MP x $0.025
    assert plan.estimated_cost == pytest.approx(2 * 0.000786 + 2 * 0.025)
    assert plan.varying == ("model", "seed")
    assert [plan.label(i) for i in range(4)] == [
        "flux-schnell · seed 1",
        "flux-schnell · seed 2",
        "flux-dev · seed 1",
        "flux-dev · seed 2",
    ]


def test_raw_endpoint_has_no_price() -> None:
    plan = plan_of({"prompt": "fox", "model": "someone/custom-model"})
    assert plan.estimated_cost is None
