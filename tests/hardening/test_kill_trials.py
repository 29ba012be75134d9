"""Kill -9 trials sized for CI (bench/kill_trials.py runs the full count): `falkit generate`
and `falkit batch` killed at random moments, then resume + reconcile: nothing paid twice,
nothing lost, nothing left unknown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, EmulatorServer

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture
def kill_trials(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # what `python bench/kill_trials.py` does
    import kill_trials

    return kill_trials


@pytest.fixture
def emu(kill_trials: Any) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(latency=0.3, concurrency=8, plain_images=True)
    with kill_trials.emulator(config, seed=5) as server:
        yield server


@pytest.mark.timeout(600)
def test_killed_runs_recover_without_duplicates_losses_or_unknowns(
    kill_trials: Any, emu: EmulatorServer, tmp_path: Path
) -> None:
    report = kill_trials.trials(
        emu.base_url, tmp_path / "home", runs=8, batches=2, batch_jobs=4, seed=20261201,
        answers=emu.app,
    )  # fmt: skip
    assert report.kills > 0
    assert report.journaled_jobs > 0
    assert report.submits == emu.stats.submits
    assert (report.duplicates, report.lost, report.unknown_left) == (0, 0, 0), report.details
