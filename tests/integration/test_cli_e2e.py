"""The CLI as a process against the emulator: generate, list, show, kill -9 and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from tests.hardening.reconcile_support import job_rows
from tests.integration.helpers import emulator_env, falkit
from tests.processes import popen, wait_until


def test_generate_json_then_list_and_show(emu: Any, tmp_path: Path) -> None:
    env = emulator_env(emu.base_url, tmp_path / "home")
    out = falkit(
        "generate", "a lighthouse at dusk", "--size", "640x480", "--seed", "5", "--json", env=env
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {
        "job_id",
        "request_id",
        "status",
        "model",
        "endpoint_id",
        "seed",
        "images",
        "cost_usd",
        "timings",
    }
    assert data["seed"] == 5
    image = data["images"][0]
    assert set(image) >= {"path", "url", "width", "height", "content_type", "sha256"}
    with Image.open(image["path"]) as img:
        assert img.size == (640, 480)

    listed = json.loads(falkit("jobs", "list", "--json", env=env).stdout)
    assert [j["job_id"] for j in listed] == [data["job_id"]]
    found = json.loads(falkit("jobs", "list", "--search", "LIGHTHOUSE", "--json", env=env).stdout)
    assert len(found) == 1
    shown = json.loads(falkit("jobs", "show", data["job_id"], "--json", env=env).stdout)
    assert shown["images"][0]["sha256"] == image["sha256"]


def test_plain_output_is_paths(emu: Any, tmp_path: Path) -> None:
    env = emulator_env(emu.base_url, tmp_path / "home")
    out = falkit("generate", "two moons", "-n", "2", "--out", str(tmp_path / "out"), env=env)
    assert out.returncode == 0, out.stderr
    paths = [Path(line) for line in out.stdout.splitlines()]
    assert len(paths) == 2
    assert all(p.parent == tmp_path / "out" and p.exists() for p in paths)


def test_sigkill_after_submit_then_resume(emu: Any, tmp_path: Path) -> None:
    emu.engine.config.latency = 4.0
    env = emulator_env(emu.base_url, tmp_path / "home")
    proc = popen(
        [sys.executable, "-m", "falkit", "generate", "a slow painting", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    db = tmp_path / "home" / "falkit.db"
    wait_until(lambda: any(row["request_id"] for row in job_rows(db)), "the request id journaled")
    assert emu.stats.submits == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert emu.stats.submits == 1
    assert not list((tmp_path / "home").glob("images/*/*.jpg"))

    emu.engine.config.latency = 0.2
    out = falkit("jobs", "resume", "--json", env=env)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert len(results) == 1
    assert results[0]["status"] == "completed"
    assert Path(results[0]["images"][0]["path"]).exists()
    assert emu.stats.submits == 1, "resume must reattach, never resubmit"
    again = json.loads(falkit("jobs", "resume", "--json", env=env).stdout)
    assert again == []


def test_emulator_flag_needs_no_key(tmp_path: Path) -> None:
    env = emulator_env("http://unused", tmp_path / "home")
    del env["FAL_API_KEY"]
    env["FALKIT_EMULATOR_LATENCY"] = "0.2"
    out = falkit("generate", "a demo picture", "--emulator", env=env)
    assert out.returncode == 0, out.stderr
    assert "placeholder" in out.stderr
    path = Path(out.stdout.strip())
    assert path.exists()
    assert (tmp_path / "home" / "emulator") in path.parents


def _start_generate(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return popen(
        [sys.executable, "-m", "falkit", "generate", "a slow painting", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_ctrl_c_non_interactive_leaves_the_job_for_resume(emu: Any, tmp_path: Path) -> None:
    emu.engine.config.latency = 4.0
    env = emulator_env(emu.base_url, tmp_path / "home")
    proc = _start_generate(env)
    wait_until(lambda: emu.stats.requests["stream"], "the status stream to open")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "left running" in err
    assert "falkit jobs resume" in err
    assert emu.stats.requests["cancel"] == 0
    emu.engine.config.latency = 0.2
    out = falkit("jobs", "resume", "--json", env=env)
    assert json.loads(out.stdout)[0]["status"] == "completed"
    assert emu.stats.submits == 1


def test_timeout_leaves_the_job_for_resume(emu: Any, tmp_path: Path) -> None:
    emu.engine.config.latency = 3.0
    env = emulator_env(emu.base_url, tmp_path / "home")
    out = falkit("generate", "a patient painting", "--timeout", "0.5", env=env)
    assert out.returncode == 4  # still running: not a failure, not done
    assert "error" not in out.stderr.lower()
    assert "still running" in out.stderr
    assert "falkit jobs resume" in out.stderr
    listed = json.loads(falkit("jobs", "list", "--json", env=env).stdout)
    assert listed[0]["status"] in ("submitted", "running")
    resumed = falkit("jobs", "resume", "--json", env=env)
    assert json.loads(resumed.stdout)[0]["status"] == "completed"
    assert emu.stats.submits == 1
