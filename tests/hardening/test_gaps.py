"""The five bugs of issue 11 that no test caught: each test here fails on its planted bug.

1. journaling moved after the POST (engine ``_post`` marking ``submitting`` after the submit);
2. a range check dropped for one model only (flux-lora's steps, say);
3. a budget that lets one extra job through (an off-by-one or a loose epsilon in ``fits``);
4. image files written in place instead of through a temporary file and a rename;
5. ``resume`` treating a job left ``submitting`` as pending (a second paid submit).

docs/testing.md lists how each was planted and seen to fail.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from falkit.catalog import MODELS
from falkit.emulator import EmulatorConfig, EmulatorServer, run_emulator
from falkit.errors import BudgetExceededError, SubmitUncertainError, ValidationError
from falkit.limits import MAX_PROMPT_CHARS, MAX_SEED
from falkit.request import ImageRequest
from falkit.service import downloads
from falkit.service.budget import Budget
from falkit.service.jobs import SubmitInProgressError
from falkit.service.submitter import submitter_id
from tests.hardening.reconcile_support import DEAD_SUBMITTER, gated_emulator, service_for


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.05, concurrency=4)) as server:
        yield server


# ---- 1. the journal says `submitting` before the POST leaves ----


async def test_the_row_is_submitting_while_the_post_is_at_fal() -> None:
    """The emulator holds the POST until told; meanwhile the journal already names the job
    ``submitting`` by this process (a crash now leaves a row that says so)."""
    server, gate = gated_emulator(EmulatorConfig(latency=0.05))
    with server:
        async with service_for(server) as service:
            handle = await service.start_image(service.request("held at the door", seed=1))
            store = await service.store()
            try:
                assert await asyncio.to_thread(gate.holding.wait, 30), "the POST never arrived"
                row = await store.get_job(handle.job_id)
            finally:
                gate.open()  # whatever the row says, let the POST go on
            assert row is not None
            assert (row.status, row.submitter, row.request_id) == (
                "submitting",
                submitter_id(),
                None,
            )
            result = await handle.result()
            row = await store.get_job(handle.job_id)
    assert row is not None
    assert (row.status, row.request_id) == ("completed", result.request_id)
    assert server.stats.submits == 1


# ---- 2. every model's ranges, bound by bound ----

# The catalog's ranges as the protocol sheet gives them (§10), written out here on purpose:
# a test that read them from the catalog would lose a dropped check along with the check.
INTEGER, FLOAT = 1, 0.01
COMMON = {"num_images": (1, 4, INTEGER), "seed": (0, MAX_SEED, INTEGER)}
RANGES: dict[str, dict[str, tuple[float, float, float]]] = {
    "flux-schnell": {
        **COMMON,
        "num_inference_steps": (1, 12, INTEGER),
        "guidance_scale": (1, 20, FLOAT),
    },
    "flux-dev": {
        **COMMON,
        "num_inference_steps": (1, 50, INTEGER),
        "guidance_scale": (1, 20, FLOAT),
    },
    "flux-pro": {
        **COMMON,
        "num_inference_steps": (1, 50, INTEGER),
        "guidance_scale": (1, 20, FLOAT),
    },
    "flux-pro-1.1": {**COMMON},
    "flux-realism": {
        **COMMON,
        "num_inference_steps": (1, 50, INTEGER),
        "guidance_scale": (1, 20, FLOAT),
        "strength": (0, 1, FLOAT),
    },
    "flux-lora": {
        **COMMON,
        "num_inference_steps": (1, 50, INTEGER),
        "guidance_scale": (0, 35, FLOAT),
    },
    "sdxl": {
        **COMMON,
        "num_images": (1, 8, INTEGER),
        "num_inference_steps": (1, 50, INTEGER),
        "guidance_scale": (0, 20, FLOAT),
    },
}
BOUNDS = [
    (model, name, low, high, step)
    for model, fields in RANGES.items()
    for name, (low, high, step) in fields.items()
]


def _value(number: float, step: float) -> float | int:
    return int(number) if step == INTEGER else round(number, 2)


def test_every_image_model_is_in_the_table() -> None:
    assert set(RANGES) == {name for name, spec in MODELS.items() if spec.kind == "image"}


@pytest.mark.parametrize(("model", "name", "low", "high", "step"), BOUNDS)
def test_each_bound_is_accepted_and_the_next_value_refused(
    model: str, name: str, low: float, high: float, step: float
) -> None:
    spec = MODELS[model]
    for inside in (low, high):
        wire = spec.validate({"prompt": "x", name: _value(inside, step)})
        assert wire[name] == _value(inside, step)
    for outside in (low - step, high + step):
        with pytest.raises(ValidationError) as caught:
            spec.validate({"prompt": "x", name: _value(outside, step)})
        assert caught.value.errors[0].field == name


@pytest.mark.parametrize("model", ["flux-lora", "sdxl"])
@pytest.mark.parametrize(("scale", "ok"), [(0.0, True), (2.0, True), (-0.01, False), (2.01, False)])
def test_lora_scales_are_bounded_for_every_model_that_takes_loras(
    model: str, scale: float, ok: bool
) -> None:
    params = {
        "prompt": "x",
        "loras": [{"path": "https://example.com/a.safetensors", "scale": scale}],
    }
    if ok:
        assert MODELS[model].validate(params)["loras"][0]["scale"] == scale
    else:
        with pytest.raises(ValidationError, match="scale"):
            MODELS[model].validate(params)


@pytest.mark.parametrize("model", sorted(RANGES))
def test_prompts_are_bounded_for_every_model(model: str) -> None:
    spec = MODELS[model]
    assert spec.validate({"prompt": "p" * MAX_PROMPT_CHARS})["prompt"]
    with pytest.raises(ValidationError, match="prompt"):
        spec.validate({"prompt": "p" * (MAX_PROMPT_CHARS + 1)})


def test_the_request_type_checks_flux_lora_like_the_catalog() -> None:
    """The path every front end takes: ImageRequest with LoRAs picks flux-lora and checks it."""
    lora = "https://example.com/style.safetensors"
    assert ImageRequest.build("x", loras=[lora], steps=50).prepare().model == "flux-lora"
    with pytest.raises(ValidationError, match="num_inference_steps"):
        ImageRequest.build("x", loras=[lora], steps=51).prepare()
    with pytest.raises(ValidationError, match="guidance_scale"):
        ImageRequest.build("x", loras=[lora], guidance_scale=35.01).prepare()


# ---- 3. a budget admits exactly what fits ----


@pytest.mark.parametrize(
    ("limit", "each", "fitting"),
    [
        (1.0, 0.25, 4),  # exactly at the limit: the 4th fits, the 5th does not
        (0.3, 0.1, 3),  # 0.1 * 3 is 0.30000000000000004: float noise must not refuse the 3rd
        (0.000786 * 20 + 0.0001, 0.000786, 20),
        (1.0, 0.3, 3),
        (0.0101, 0.0025, 4),
    ],
)
def test_a_budget_admits_as_many_jobs_as_fit_and_not_one_more(
    limit: float, each: float, fitting: int
) -> None:
    budget = Budget(limit=limit)
    for n in range(fitting):
        budget.reserve(f"j{n}", each)
    assert budget.in_flight == pytest.approx(each * fitting)
    with pytest.raises(BudgetExceededError, match="refused before submitting"):
        budget.reserve("one-more", each)
    assert not budget.holds("one-more")
    assert not budget.fits(each)


def test_a_budget_counts_spent_held_and_in_flight_alike() -> None:
    budget = Budget(limit=1.0)
    for job in ("spent", "held", "flying"):
        budget.reserve(job, 0.25)
    budget.settle("spent", None)
    budget.hold("held")
    assert (budget.spent, budget.held, budget.in_flight) == (0.25, 0.25, 0.25)
    budget.reserve("last", 0.25)
    with pytest.raises(BudgetExceededError):
        budget.reserve("extra", 0.01)
    budget.release("last")  # a job that failed at Fal costs nothing: its room comes back
    budget.reserve("again", 0.25)
    assert budget.remaining == 0.0


def test_a_budget_refuses_past_a_cent_fraction() -> None:
    """The tolerance is for float noise (a billionth), not for money: a job over the limit by
    a thousandth of a cent is refused."""
    budget = Budget(limit=0.01)
    budget.reserve("a", 0.005)
    assert budget.fits(0.005)
    assert not budget.fits(0.00501)
    assert not budget.fits(0.005 + 1e-7)


# ---- 4. images are written through a temporary file and a rename ----


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (20, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_image_is_renamed_into_place_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes()
    renames: list[tuple[Path, Path, bytes]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        assert not Path(dst).exists(), "the final name existed before its rename"
        renames.append((Path(src), Path(dst), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(downloads.os, "replace", replace)
    saved = downloads.store_file(data, "image/png", tmp_path / "images", "job_0")
    assert saved.path == tmp_path / "images" / "job_0.png"
    ((src, dst, written),) = renames
    assert dst == saved.path
    assert src.parent == dst.parent  # same folder: the rename is atomic
    assert src != dst
    assert written == data  # complete (and synced) before it got its name
    assert saved.path.read_bytes() == data
    assert sorted(p.name for p in saved.path.parent.iterdir()) == ["job_0.png"]


def test_a_write_that_fails_midway_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(downloads.os, "fsync", full_disk)
    folder = tmp_path / "images"
    with pytest.raises(OSError, match="No space"):
        downloads.store_file(png_bytes(), "image/png", folder, "job_0")
    assert list(folder.iterdir()) == []  # neither a half-written image nor a temporary file


def test_an_existing_image_is_replaced_whole(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "job_0.png").write_bytes(b"old")
    data = png_bytes()
    saved = downloads.store_file(data, "image/png", folder, "job_0")
    assert saved.path.read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == ["job_0.png"]


# ---- 5. resume never submits a job left `submitting` ----


def _dead_local_submitter() -> str:
    """This host, a process id nobody has (pid_max is at most 2^22)."""
    return f"{socket.gethostname()}:{2**22 + 7}:1"


@pytest.mark.parametrize("submitter", ["dead-here", "dead-elsewhere"])
async def test_resume_marks_a_dead_submitters_job_unknown_and_sends_nothing(
    emu: EmulatorServer, submitter: str
) -> None:
    """Its POST may have reached Fal: unknown, reconciled, never submitted blindly (the
    history is too fresh to tell here, so the job waits)."""
    claimant = _dead_local_submitter() if submitter == "dead-here" else DEAD_SUBMITTER
    async with service_for(emu, reconcile_after=600.0) as service:
        job = await service.create_job(ImageRequest.build("cut off", seed=1).prepare())
        store = await service.store()
        await store.mark_submitting(job.id, submitter=claimant)
        outcomes = await service.resume()
        row = await store.get_job(job.id)
    assert row is not None
    assert (row.status, row.request_id) == ("unknown", None)
    assert any(isinstance(outcome, SubmitUncertainError) for outcome in outcomes)
    assert emu.stats.submits == 0


async def test_resume_leaves_a_live_submitters_job_alone(emu: EmulatorServer) -> None:
    async with service_for(emu) as service:
        job = await service.create_job(ImageRequest.build("in flight", seed=2).prepare())
        store = await service.store()
        await store.mark_submitting(job.id, submitter=submitter_id())  # this live process
        outcomes = await service.resume()
        row = await store.get_job(job.id)
    assert row is not None
    assert (row.status, row.submitter) == ("submitting", submitter_id())
    assert [type(outcome) for outcome in outcomes] == [SubmitInProgressError]
    assert "left to it" in str(outcomes[0])
    assert emu.stats.submits == 0
