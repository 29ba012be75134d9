"""`falkit batch` as a user runs it: subprocesses against the emulator, kill -9 and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from falkit.emulator import Fault
from falkit.emulator.engine import RUNNING
from tests.batch.helpers import manifest, sha256, submitted_pairs
from tests.hardening.reconcile_support import job_rows
from tests.integration.helpers import emulator_env, falkit
from tests.processes import popen, wait_until


def prompts_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(f"a lighthouse in the style of painter {i}\n" for i in range(count)))
    return path


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    wait_until(condition, "the batch", timeout)


def window_full_of_long_jobs(emu: Any, db: Path, window: int, long: float) -> bool:
    """Every slot holds a long job, and every request the emulator took has its request id in
    the journal (so a kill now leaves no submit half-answered)."""
    jobs = list(emu.engine.jobs.values())
    running = [job for job in jobs if job.state == RUNNING]
    if len(running) != window or any(job.duration < long for job in running):
        return False
    journaled = {row["request_id"] for row in job_rows(db)}
    return {job.id for job in jobs} <= journaled


@pytest.mark.parametrize("how", ["resume", "rerun"])
def test_kill_9_mid_batch_then_carry_on(emu: Any, tmp_path: Path, how: str) -> None:
    emu.engine.config.concurrency = 4
    env = emulator_env(emu.base_url, tmp_path / "home")
    args = ["batch", str(prompts_file(tmp_path, 10)), "--seeds", "1-4", "--size", "square"]
    args += ["--concurrency", "4"]
    dry = json.loads(falkit(*args, "--dry-run", "--json", env=env).stdout)
    assert dry["total"] == 40

    proc = popen(
        [sys.executable, "-m", "falkit", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: emu.stats.submits >= 12)
        emu.engine.config.latency = 2.0  # jobs started from now on are still running at the kill
        db = tmp_path / "home" / "falkit.db"
        wait_for(lambda: window_full_of_long_jobs(emu, db, window=4, long=2.0))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    sent_before = emu.stats.submits
    assert 12 <= sent_before < 40
    emu.engine.config.latency = 0.05

    again = ["batch", "resume", dry["batch_id"]] if how == "resume" else args
    out = falkit(*again, "--json", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["batch_id"] == dry["batch_id"]
    assert (summary["completed"], summary["unknown"], summary["failed"]) == (40, 0, 0)
    assert summary["submitted_this_run"] == 40 - sent_before
    assert emu.stats.submits == 40
    assert emu.stats.submits_by_endpoint == {"fal-ai/flux/schnell": 40}
    assert len(set(submitted_pairs(emu))) == 40, "no job was submitted twice"
    folder = Path(summary["folder"])
    for row in manifest(folder):
        assert sha256(folder / row["images"][0]["path"]) == row["images"][0]["sha256"]


def test_dry_run_and_budget_refusal_send_nothing(emu: Any, tmp_path: Path) -> None:
    env = emulator_env(emu.base_url, tmp_path / "home")
    prompts = prompts_file(tmp_path, 5)
    out = falkit("batch", str(prompts), "--seeds", "1-4", "--size", "square", "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("20 jobs, estimated cost $0.0157 (dry run: nothing sent)")

    out = falkit("batch", "run", str(prompts), "--seeds", "1-4", "--budget", "0.01", env=env)
    assert out.returncode == 2
    assert "more than the budget of $0.0100" in out.stderr
    assert "Traceback" not in out.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "too many steps", "steps": 99}\n')
    out = falkit("batch", str(bad), env=env)
    assert out.returncode == 2
    assert "line 2: num_inference_steps" in out.stderr
    assert sum(emu.stats.requests.values()) == 0


def test_failures_are_reported_at_the_end_with_exit_code_1(emu: Any, tmp_path: Path) -> None:
    emu.faults.add(Fault(route="submit", kind="job_error", times=1))
    env = emulator_env(emu.base_url, tmp_path / "home")
    out_dir = tmp_path / "sheet"
    out = falkit("batch", str(prompts_file(tmp_path, 3)), "--size", "square", "--out",
                 str(out_dir), "--concurrency", "1", env=env)  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.strip() == str(out_dir)
    assert "2/3 completed, 1 failed" in out.stderr
    assert "#0 (line 1)" in out.stderr
    assert "failed:" in out.stderr
    assert "falkit batch resume b_" in out.stderr
    statuses = [row["status"] for row in manifest(out_dir)]
    assert statuses == ["failed", "completed", "completed"]

    listed = json.loads(falkit("batch", "list", "--json", env=env).stdout)
    assert len(listed) == 1
    assert listed[0]["jobs"] == {"failed": 1, "completed": 2}
    assert listed[0]["folder"] == str(out_dir)


def test_ctrl_c_lets_submits_on_the_wire_finish(emu: Any, tmp_path: Path) -> None:
    """Ctrl-C while POSTs are in flight: they are journaled, so the rerun has no unknown job."""
    emu.engine.config.concurrency = 4
    emu.faults.add(Fault(route="submit", kind="slow", delay=0.3, times=None))
    env = emulator_env(emu.base_url, tmp_path / "home")
    args = ["batch", str(prompts_file(tmp_path, 24)), "--size", "square", "--concurrency", "8"]
    proc = popen(
        [sys.executable, "-m", "falkit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: emu.stats.submits >= 6)
        # a POST is on the wire: arrived, and held by the slow fault before it is queued
        wait_for(lambda: emu.stats.requests["submit"] > emu.stats.submits)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "falkit batch resume b_" in stderr
    emu.faults.clear()

    out = falkit(*args, "--json", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["completed"], summary["unknown"]) == (24, 0)
    assert emu.stats.submits == 24
    assert len(set(submitted_pairs(emu))) == 24


def test_progress_line_live_and_plain() -> None:
    from io import StringIO

    from rich.console import Console

    from falkit.cli.batch_cmd import BatchView
    from falkit.events import BatchProgressEvent

    progress = BatchProgressEvent(
        "b_0123456789abcdef", total=10, done=4, running=2, queued=1, pending=2, failed=1,
        spent_usd=0.0123, elapsed=5.0, eta_seconds=5.0,
    )  # fmt: skip
    plain = StringIO()
    with BatchView(Console(file=plain, force_terminal=False, width=200)) as view:
        assert str(view.render()) == "preparing batch…"
        view.update(progress)
        line = str(view.render())
    assert line.startswith("4/10 done · 2 running · 1 queued · 2 to submit · 1 failed · $0.0123")
    assert "ETA " in line
    assert "batch b_0123456789abcdef: 10 jobs" in plain.getvalue()

    live = StringIO()
    with BatchView(Console(file=live, force_terminal=True, width=200)) as view:
        view.update(progress)
        view.interrupted()
    assert "falkit batch resume b_0123456789abcdef" in live.getvalue()
