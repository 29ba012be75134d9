"""The LoRA lifecycle through `python -m falkit` processes against the emulator."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from falkit.service.loras import safetensors_header
from tests.hardening.reconcile_support import job_rows
from tests.integration.helpers import emulator_env, falkit
from tests.lora.helpers import make_folder, total_requests
from tests.processes import popen, wait_until


def test_train_then_generate_by_name_then_remove(emu: Any, photos: Path, tmp_path: Path) -> None:
    env = emulator_env(emu.base_url, tmp_path / "home")
    out = falkit(
        "lora", "train", str(photos), "--trigger-word", "TOK", "--name", "me", "--steps", "8",
        "--json", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert trained["name"] == "me"
    assert trained["status"] == "completed"
    assert safetensors_header(Path(trained["local_path"]))

    listed = json.loads(falkit("lora", "list", "--json", env=env).stdout)
    assert [(r["name"], r["trigger_word"]) for r in listed] == [("me", "TOK")]
    shown = json.loads(falkit("lora", "show", "me", "--json", env=env).stdout)
    assert shown["url"] == trained["url"]
    assert shown["params"]["steps"] == 8

    out = falkit("generate", "photo of TOK", "--lora", "me:0.8", "--json", env=env)
    assert out.returncode == 0, out.stderr
    generated = json.loads(out.stdout)
    assert generated["model"] == "flux-lora"
    with Image.open(generated["images"][0]["path"]) as img:
        assert img.size == (1024, 768)
    job = json.loads(falkit("jobs", "show", generated["job_id"], "--json", env=env).stdout)
    assert job["arguments"]["loras"] == [{"path": trained["url"], "scale": 0.8}]
    assert job["arguments"]["prompt"] == "photo of TOK"

    out = falkit("lora", "rm", "me", "--json", env=env)
    assert json.loads(out.stdout) == {"name": "me", "removed": True}
    assert not Path(trained["local_path"]).exists()
    assert json.loads(falkit("lora", "list", "--json", env=env).stdout) == []
    missing = falkit("lora", "show", "me", env=env)
    assert missing.returncode == 1
    assert "no LoRA named 'me'" in missing.stderr


def test_plain_output_and_bad_input_exit_code(emu: Any, photos: Path, tmp_path: Path) -> None:
    env = emulator_env(emu.base_url, tmp_path / "home")
    few = make_folder(tmp_path / "few", 2)
    out = falkit("lora", "train", str(few), "--trigger-word", "TOK", env=env)
    assert out.returncode == 2
    assert "only 2 image(s)" in out.stderr
    assert "Traceback" not in out.stderr
    assert total_requests(emu) == 0

    out = falkit("lora", "train", str(photos), "--trigger-word", "ZED", "--steps", "4", env=env)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path.name == "ZED.safetensors"
    assert path.exists()
    assert "dataset ok: 5 images" in out.stderr
    assert "--lora ZED" in out.stderr


def test_unknown_lora_name_in_generate(emu: Any, tmp_path: Path) -> None:
    env = emulator_env(emu.base_url, tmp_path / "home")
    out = falkit("generate", "photo of TOK", "--lora", "ghost", env=env)
    assert out.returncode == 2
    assert "loras.0: 'ghost' is not an http(s) URL" in out.stderr
    assert "registered LoRAs: none yet" in out.stderr
    assert total_requests(emu) == 0


def test_local_file_through_generate(emu: Any, tmp_path: Path) -> None:
    from tests.lora.helpers import safetensors_bytes

    env = emulator_env(emu.base_url, tmp_path / "home")
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(safetensors_bytes(seed=2))
    for prompt in ("first", "second"):
        out = falkit("generate", prompt, "--lora", f"{lora}:1.1", "--json", env=env)
        assert out.returncode == 0, out.stderr
    assert emu.stats.requests["upload"] == 1
    assert emu.stats.submits_by_endpoint == {"fal-ai/flux-lora": 2}


def test_sigkill_during_training_then_resume(emu: Any, photos: Path, tmp_path: Path) -> None:
    emu.engine.config.training_seconds = 4.0
    env = emulator_env(emu.base_url, tmp_path / "home")
    command = [sys.executable, "-m", "falkit", "lora", "train", str(photos)]
    command += ["--trigger-word", "TOK", "--name", "survivor", "--steps", "12", "--json"]
    proc = popen(
        command,
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
    assert not (tmp_path / "home" / "loras" / "survivor.safetensors").exists()
    assert json.loads(falkit("lora", "list", "--json", env=env).stdout) == []

    out = falkit("jobs", "resume", "--json", env=env)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert len(results) == 1
    assert results[0]["status"] == "completed"
    assert results[0]["name"] == "survivor"
    assert emu.stats.submits == 1, "resume must reattach, never resubmit"
    shown = json.loads(falkit("lora", "show", "survivor", "--json", env=env).stdout)
    assert shown["trigger_word"] == "TOK"
    assert Path(shown["local_path"]).exists()
    assert json.loads(falkit("jobs", "resume", "--json", env=env).stdout) == []
