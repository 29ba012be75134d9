"""The spending cap and the allowed folders: refusals happen before anything is submitted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from falkit.errors import ValidationError
from falkit.mcp.safety import AllowedDirs
from falkit.service import FalService
from tests.lora.helpers import total_requests
from tests.mcp.helpers import data, ok, text

ONE_IMAGE = 0.003 * 1024 * 768 / 1_000_000  # flux-schnell at its default size


async def test_a_job_over_the_cap_is_refused_before_submitting(
    connect: Any, emu: Any, service: FalService
) -> None:
    async with connect(max_spend_usd=ONE_IMAGE * 1.5) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a fox"}))
        second = await client.call_tool("generate_image", {"prompt": "another fox"})
        estimate = ok(await client.call_tool("estimate_cost", {"prompt": "x"}))
    assert data(first)["done"] is True
    assert second.is_error
    assert "refused before submitting" in text(second)
    assert "--max-spend-usd" in text(second)
    assert emu.stats.submits == 1
    assert len(await service.list_jobs()) == 1, "a refused job is not even journaled"
    assert data(estimate)["spent_usd"] == pytest.approx(ONE_IMAGE, rel=0.01)
    assert data(estimate)["fits_cap"] is False
    assert "the cap would refuse this job" in text(estimate)


async def test_jobs_in_flight_count_against_the_cap(connect: Any, emu: Any) -> None:
    emu.engine.config.latency = 5.0
    async with connect(max_spend_usd=ONE_IMAGE * 1.5, wait_seconds=0.2) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a slow fox"}))
        second = await client.call_tool("generate_image", {"prompt": "a second fox"})
    assert data(first)["done"] is False
    assert second.is_error
    assert emu.stats.submits == 1


async def test_calls_at_the_same_moment_cannot_both_slip_under_the_cap(
    connect: Any, emu: Any
) -> None:
    async with connect(max_spend_usd=ONE_IMAGE * 2.5) as client:
        ok(await client.call_tool("generate_image", {"prompt": "the first fox"}))
        results = await asyncio.gather(
            *(client.call_tool("generate_image", {"prompt": f"fox {i}"}) for i in range(3))
        )
    assert sorted(r.is_error for r in results) == [False, True, True]
    assert emu.stats.submits == 2


async def test_training_and_unpriced_models_respect_the_cap(
    connect: Any, emu: Any, photos: Path
) -> None:
    async with connect(max_spend_usd=1.0, allow_dirs=(photos,)) as client:
        training = await client.call_tool(
            "train_lora", {"source": str(photos), "trigger_word": "TOK"}
        )
        raw = await client.call_tool(
            "generate_image", {"prompt": "x", "model": "fal-ai/some-new-model"}
        )
    assert training.is_error
    assert "LoRA training is estimated at $2.0000" in text(training)
    assert raw.is_error
    assert "unknown" in text(raw)
    assert total_requests(emu) == 0


async def test_no_cap_means_no_refusal(connect: Any, emu: Any) -> None:
    async with connect() as client:
        for i in range(2):
            ok(await client.call_tool("generate_image", {"prompt": f"cat {i}"}))
    assert emu.stats.submits == 2


def test_allowed_dirs_resolve_before_checking(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    dirs = AllowedDirs([root, root / "sub"])
    assert dirs.roots == (root.resolve(), (root / "sub").resolve())
    assert dirs.check(root / "sub", field="source") == (root / "sub").resolve()
    assert dirs.check(root / "sub" / ".." / "new.zip", field="source") == root / "new.zip"
    for bad in (tmp_path / "secret", root / ".." / "secret", root / "escape", Path("/etc")):
        with pytest.raises(ValidationError, match="outside the folders") as info:
            dirs.check(bad, field="source")
        assert info.value.errors[0].field == "source"
    assert AllowedDirs([]).describe() == "none"
