"""Tables that survive pipes and narrow terminals; readable show pages; job references."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.cli.helpers import cli, generate
from tests.processes import popen, run

LONG = (
    "an extraordinarily detailed watercolour of a lighthouse at dusk with seagulls, "
    "crashing waves and a lonely keeper"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def falkit_in_pty(args: list[str], env: dict[str, str], columns: int) -> str:
    """Run falkit with a pseudo-terminal as stdout (as a user's terminal), return its text."""
    leader, follower = os.openpty()
    proc = popen(
        [sys.executable, "-m", "falkit", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    return _ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def piped(command: str, env: dict[str, str], columns: int) -> str:
    """A shell pipeline, `falkit` meaning this interpreter's falkit."""
    line = command.replace("falkit", f"{sys.executable} -m falkit", 1)
    out = run(
        line, shell=True, env={**env, "COLUMNS": str(columns)}, capture_output=True, text=True
    )
    return out.stdout


@pytest.fixture
def two_jobs(env: dict[str, str]) -> list[dict[str, Any]]:
    first = generate(LONG, "--seed", "1", "--size", "640x480")
    return [first, generate("a red fox in snow", "-m", "flux-dev")]


@pytest.mark.parametrize("columns", [80, 200])
def test_grep_finds_a_job_by_a_word_of_its_prompt_when_piped(
    two_jobs: list[dict[str, Any]], env: dict[str, str], columns: int
) -> None:
    found = piped("falkit jobs list | grep seagulls", env, columns)
    (line,) = found.splitlines()
    cells = line.split("\t")
    assert cells[0] == two_jobs[0]["job_id"]  # the full id, not cut
    assert cells[1:3] == ["completed", "flux-schnell"]
    assert cells[-1] == LONG  # the whole prompt, on one line


@pytest.mark.parametrize("columns", [80, 200])
def test_terminal_table_wraps_and_keeps_every_column(
    two_jobs: list[dict[str, Any]], env: dict[str, str], columns: int
) -> None:
    text = falkit_in_pty(["jobs", "list"], env, columns)
    lines = text.splitlines()
    assert all(len(line) <= columns for line in lines)
    assert "…" not in text  # nothing cut with an ellipsis
    for title in ("id", "status", "model", "created", "cost", "prompt"):
        assert title in lines[0]
    assert any("seagulls" in line for line in lines)  # words wrap whole
    assert "flux-dev" in text
    assert "$0." in text
    short = next(line.split()[0] for line in lines if "fox" in line)
    assert two_jobs[1]["job_id"].startswith(short)
    assert len(short) < len(two_jobs[1]["job_id"])


def test_short_prefix_shown_is_a_job_reference(
    two_jobs: list[dict[str, Any]], env: dict[str, str]
) -> None:
    text = falkit_in_pty(["jobs", "list"], env, 100)
    short = next(line.split()[0] for line in text.splitlines() if "fox" in line)
    shown = json.loads(cli("jobs", "show", short, "--json").stdout)
    assert shown["job_id"] == two_jobs[1]["job_id"]


def test_short_prefixes_of_batch_jobs_stay_unique(env: dict[str, str], tmp_path: Any) -> None:
    """A batch's job ids differ only in their last characters: so do the prefixes shown."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\na blue bird\na green frog\n")
    assert cli("batch", "run", str(prompts)).exit_code == 0
    text = falkit_in_pty(["jobs", "list"], env, 120)
    shown = [line.split()[0] for line in text.splitlines() if line.startswith("j_")]
    assert len(shown) == 3
    found = {json.loads(cli("jobs", "show", short, "--json").stdout)["job_id"] for short in shown}
    assert len(found) == 3


def test_last_is_the_newest_job(two_jobs: list[dict[str, Any]]) -> None:
    shown = json.loads(cli("jobs", "show", "last", "--json").stdout)
    assert shown["job_id"] == two_jobs[1]["job_id"]


def test_ambiguous_prefix_names_the_candidates(two_jobs: list[dict[str, Any]]) -> None:
    result = cli("jobs", "show", "j_")
    assert result.exit_code == 2
    for job in two_jobs:
        assert job["job_id"] in result.stderr


def test_last_without_jobs_says_how_to_start_one(env: dict[str, str]) -> None:
    result = cli("jobs", "show", "last")
    assert result.exit_code == 1
    assert "falkit generate" in result.stderr


def test_filters_status_model_since(two_jobs: list[dict[str, Any]]) -> None:
    def ids(*args: str) -> list[str]:
        result = cli("jobs", "list", *args)
        assert result.exit_code == 0, result.output
        return [line.split("\t")[0] for line in result.stdout.splitlines()]

    schnell, dev = (job["job_id"] for job in two_jobs)
    assert ids("--model", "flux-dev") == [dev]
    assert ids("--model", "fal-ai/flux/schnell") == [schnell]
    assert ids("--status", "completed") == [dev, schnell]
    assert ids("--status", "failed") == []
    assert ids("--since", "1h") == [dev, schnell]
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert ids("--since", tomorrow) == []
    bad = cli("jobs", "list", "--status", "done")
    assert bad.exit_code == 2
    assert "completed" in bad.stderr
    assert cli("jobs", "list", "--since", "soon").exit_code == 2


def test_show_is_readable(two_jobs: list[dict[str, Any]]) -> None:
    text = cli("jobs", "show", two_jobs[0]["job_id"]).stdout
    assert "None" not in text
    assert "{" not in text
    assert "'" not in text
    assert re.search(rf"^prompt\s+{re.escape(LONG)}$", text, re.M)
    assert re.search(r"^image\s+\S+\.jpg \(\d+x\d+, image/jpeg\)$", text, re.M)
    assert re.search(r"^  seed\s+1$", text, re.M)
    assert re.search(r"^  image_size\s+640x480$", text, re.M)
    assert re.search(r"^cost\s+\$0\.\d{4}$", text, re.M)


def test_cancel_prints_a_sentence_and_the_code_in_json(two_jobs: list[dict[str, Any]]) -> None:
    result = cli("jobs", "cancel", "last")
    assert result.exit_code == 0
    assert "already completed" in result.stdout
    assert "ALREADY" not in result.stdout
    data = json.loads(cli("jobs", "cancel", "last", "--json").stdout)
    assert data == {"job_id": two_jobs[1]["job_id"], "outcome": "ALREADY_COMPLETED"}


def test_lora_list_and_show(env: dict[str, str]) -> None:
    asyncio.run(_register_lora())
    listed = cli("lora", "list").stdout.splitlines()
    assert listed[0].split("\t")[:2] == ["me", "TOK"]
    text = cli("lora", "show", "me").stdout
    assert "None" not in text
    assert "{" not in text
    assert re.search(r"^trigger word\s+TOK$", text, re.M)
    assert re.search(r"^  is_style\s+no$", text, re.M)


async def _register_lora() -> None:
    from falkit.service import FalService

    async with FalService() as service:
        store = await service.store()
        await store.add_lora(
            name="me",
            url="https://example.com/me.safetensors",
            trigger_word="TOK",
            config_url=None,
            local_path=None,
            job_id=None,
            params={"steps": 20, "is_style": False},
        )
