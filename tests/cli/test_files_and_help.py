"""Files readable like the user's others, batch names that say what varies, --timeout that
leaves a running job alone, --version, shell completion, and help with examples and choices."""

from __future__ import annotations

import importlib.metadata
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from falkit import __version__
from falkit.catalog import MODELS
from falkit.cli import help as choices
from falkit.cli.app import app
from falkit.store.records import JOB_STATUSES
from falkit.types import IMAGE_SIZE_PRESETS
from tests.cli.helpers import cli, generate
from tests.processes import run


@pytest.fixture
def umask() -> Any:
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_images_and_copies_get_the_usual_mode(
    env: dict[str, str], tmp_path: Path, umask: int
) -> None:
    job = generate("a fox", "--out", str(tmp_path / "out"))
    image = Path(job["images"][0]["path"])
    assert mode(image) == 0o666 & ~umask
    (copy,) = (tmp_path / "out").iterdir()
    assert mode(copy) == 0o666 & ~umask


def test_batch_files_are_readable_and_named_by_what_varies(
    env: dict[str, str], tmp_path: Path, umask: int
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\n")
    folder = tmp_path / "batch"
    result = cli(
        "batch", "run", str(prompts), "--models", "flux-schnell,flux-dev",
        "--guidance", "3,4.5", "--seeds", "7", "--out", str(folder), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert len(names) == 4
    assert len(set(names)) == 4
    for model in ("flux-schnell", "flux-dev"):
        for guidance in ("g3", "g4.5"):
            assert sum(f"-{model}-{guidance}-a-red-fox-s7." in n for n in names) == 1, names
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.jsonl", "manifest.csv", "index.html"}
    assert all(mode(p) == 0o666 & ~umask for p in files), [(p, oct(mode(p))) for p in files]


def test_batch_names_without_sweeps_stay_short(env: dict[str, str], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\na blue bird\n")
    result = cli("batch", "run", str(prompts), "--seeds", "3", "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "b" / "images").iterdir())
    assert names == ["0000-a-red-fox-s3.jpg", "0001-a-blue-bird-s3.jpg"]


def test_batch_dry_run_with_emulator_names_the_emulator_folder(
    isolated_env: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\n")
    result = cli("batch", "run", str(prompts), "--dry-run", "--emulator", "--json")
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["folder"])
    assert folder.parent == isolated_env / "emulator" / "batches"
    plain = json.loads(cli("batch", "run", str(prompts), "--dry-run", "--json").stdout)
    assert Path(plain["folder"]).parent == isolated_env / "batches"


def test_timeout_says_the_job_is_still_running(emu: Any, env: dict[str, str]) -> None:
    emu.engine.config.latency = 60.0
    result = cli("generate", "a slow painting", "--timeout", "0.5")
    assert result.exit_code == 4
    assert "error" not in result.stderr.lower()
    assert "still running" in result.stderr
    assert "falkit jobs resume" in result.stderr
    job = json.loads(cli("jobs", "show", "last", "--json").stdout)
    assert job["job_id"] in result.stderr
    assert job["status"] in ("submitted", "running")
    as_json = cli("generate", "another slow one", "--timeout", "0.5", "--json")
    assert as_json.exit_code == 4
    data = json.loads(as_json.stdout)
    assert data["status"] == "running"
    assert data["request_id"]


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"falkit {__version__}\n"
    assert importlib.metadata.version("falkit") == __version__


def test_shell_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("falkit")
    base = {**os.environ, "_FALKIT_COMPLETE": "complete_bash", "HOME": str(tmp_path)}

    def complete(*words: str) -> list[str]:
        env = {**base, "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
        out = run([script], env=env, capture_output=True, text=True, timeout=60)
        return out.stdout.split()

    assert "jobs" in complete("falkit", "jo")
    assert {"list", "show", "cancel"} <= set(complete("falkit", "jobs", ""))
    assert "--status" in complete("falkit", "jobs", "list", "--st")
    # The script is for the shell falkit runs under, found up the process tree: run it from
    # bash (the `; true` keeps bash from exec-ing falkit in its place), whatever started pytest.
    shown = run(["bash", "-c", f"{script} --show-completion; true"], env={**os.environ},
                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.stderr == ""
    assert "_FALKIT_COMPLETE=complete_bash" in shown.stdout


def _commands(group: Any, prefix: str = "falkit") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, command in getattr(group, "commands", {}).items():
        full = f"{prefix} {name}"
        if getattr(command, "commands", None):
            out.extend(_commands(command, full))
        else:
            out.append((full, command))
    return out


#: Commands whose help another front end's owner writes (reported, not changed here).
NOT_OURS = {"falkit serve"}


def test_every_command_has_examples_in_its_help() -> None:
    root = get_command(app)
    missing = []
    for name, command in _commands(root):
        text = f"{command.help or ''}\n{command.epilog or ''}"
        if "Examples" not in text and name not in NOT_OURS:
            missing.append(name)
        elif "Examples" in text:
            assert name.split()[-1] in text or name.split()[-2] in text, name
    assert not missing


def test_choices_in_help_match_the_catalog_and_the_store() -> None:
    assert tuple(MODELS) == choices.MODELS
    assert tuple(m for m, s in MODELS.items() if s.kind == "image") == choices.IMAGE_MODELS
    assert tuple(IMAGE_SIZE_PRESETS) == choices.SIZE_PRESETS
    assert choices.JOB_STATUSES == JOB_STATUSES
    generate_help = cli("generate", "--help").stdout
    for word in ("flux-pro-1.1", "landscape_16_9", "png", "--param"):
        assert word in generate_help
    assert "cancelled" in cli("jobs", "list", "--help").stdout
