"""The benchmark harness (bench/harness) works end to end: an emulator process, the reference
client, the measurements. Small, so it runs in CI and the harness cannot rot unnoticed."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # what `python bench/x.py` does
    import harness

    return harness


def test_reference_client_against_an_emulator_process(harness: Any, tmp_path: Path) -> None:
    with harness.EmulatorProcess(latency=0.1, concurrency=4) as emu:
        assert set(emu.env) == {
            "FALKIT_QUEUE_URL", "FALKIT_RUN_URL", "FALKIT_REST_URL", "FALKIT_CDN_URL",
            "FALKIT_API_URL", "FAL_API_KEY",
        }  # fmt: skip
        assert emu.settings().queue_url == f"{emu.base_url}/queue"
        with harness.SocketSampler(interval=0.005) as sockets:
            result = asyncio.run(
                harness.run_reference(emu.base_url, 12, 6, poll_interval=0.05, out_dir=tmp_path)
            )
        stats = emu.stats()
        cpu = emu.cpu_seconds()
        assert emu.peak_rss_mb() > 10
        assert emu.reset()["submits"] == 0
        pid = emu.pid
    assert emu.returncode is not None  # stopped on exit
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert (result.completed, result.failed, result.images) == (12, 0, 12)
    assert result.requests == sum(result.requests_by_kind.values())
    assert result.requests_by_kind["submit"] == 12
    assert stats["submits"] == 12
    assert stats["requests"]["status"] == result.requests_by_kind["status"]
    assert stats["requests"]["file"] == 12
    assert stats["jobs"] == {"queued": 0, "running": 0, "completed": 12}
    assert len(list(tmp_path.glob("*.jpg"))) == 12
    assert cpu > 0
    assert 1 <= sockets.peak <= 6 + 2
    assert harness.peak_rss_mb() > 10


def test_reference_does_not_resubmit_when_the_answer_is_lost(harness: Any, tmp_path: Path) -> None:
    """A submit whose connection dies after sending is a failed job, never a second submit."""
    from falkit.emulator import EmulatorConfig, Fault, run_emulator

    with run_emulator(EmulatorConfig(latency=0.05)) as emu:
        emu.faults.add(Fault(route="submit", kind="drop_after"))
        emu.faults.add(Fault(route="status", kind="5xx", times=2))
        result = asyncio.run(
            harness.run_reference(emu.base_url, 3, 1, poll_interval=0.02, out_dir=tmp_path)
        )
        assert emu.stats.submits == 3  # the dropped one was processed: not sent again
    assert (result.completed, result.failed) == (2, 1)
    assert result.requests_by_kind["submit"] == 3
    assert "job 0" in result.errors[0]


def test_sampler_counts_sockets_and_start_fails_fast(harness: Any) -> None:
    before = harness.open_sockets()
    with harness.SocketSampler() as sampler, socket.socket(), socket.socket():
        sampler.sample()
    assert sampler.peak >= before + 2
    broken = harness.EmulatorProcess(start_timeout=20, python="/bin/false")
    with pytest.raises(RuntimeError, match="exited"):
        broken.start()
    assert broken.returncode == 1
