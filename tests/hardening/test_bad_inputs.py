"""Every bad input of issue 11, through the real CLI: exit 2, one line naming the field and the
fix, and nothing sent to Fal (an in-process emulator counts every request)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from falkit.emulator import EmulatorServer
from falkit.limits import MAX_PROMPT_CHARS
from tests.hardening.cli_support import (
    assert_well_behaved,
    cli_env,
    emulator,
    field_named,
    invoke,
)
from tests.integration.helpers import falkit
from tests.lora.helpers import make_folder

__all__ = ["emulator"]

HUGE = "9" * 5000


def _files(tmp: Path) -> dict[str, Path]:
    """Hostile batch files, one of each kind the issue lists."""
    files = {
        "deep.jsonl": "[" * 100_000 + "]" * 100_000 + "\n",
        "deep_object.jsonl": '{"prompt": "x", "extra": ' + "[" * 40 + "]" * 40 + "}\n",
        "huge_number.jsonl": '{"prompt": "x", "seed": ' + HUGE + "}\n",
        "huge_float.jsonl": '{"prompt": "x", "guidance_scale": 1.' + HUGE + "}\n",
        "nan.jsonl": '{"prompt": "x", "guidance_scale": NaN}\n',
        "surrogate.jsonl": '{"prompt": "\\ud800 lone half"}\n',
        "huge_field.csv": "prompt,seed\n" + "a" * 200_000 + ",1\n",
        "huge_number.csv": "prompt,seed\nx," + HUGE + "\n",
        "bad_lora.csv": "prompt,lora\nx,[not json\n",
        "seed_2_64.jsonl": '{"prompt": "x", "seed": 18446744073709551616}\n',
        "long_prompt.txt": "a" * (MAX_PROMPT_CHARS + 1) + "\n",
        "bad_model.jsonl": '{"prompt": "x", "model": "fal-ai/../../admin"}\n',
    }
    out = {}
    for name, text in files.items():
        out[name] = tmp / name
        out[name].write_text(text, encoding="utf-8", errors="surrogatepass")
    out["latin1.txt"] = tmp / "latin1.txt"
    out["latin1.txt"].write_bytes("café au lait\n".encode("latin-1"))
    out["binary.txt"] = tmp / "binary.txt"
    out["binary.txt"].write_bytes(bytes(range(256)) * 4)
    out["nul.txt"] = tmp / "nul.txt"
    out["nul.txt"].write_bytes(b"a cat\n\0\0\0\n")
    out["utf16.jsonl"] = tmp / "utf16.jsonl"
    out["utf16.jsonl"].write_bytes('{"prompt": "x"}\n'.encode("utf-16"))
    out["fifo.txt"] = tmp / "fifo.txt"
    os.mkfifo(out["fifo.txt"])
    return out


BATCH_CASES = [
    ("deep.jsonl", ["line 1", "nested more than 32"]),
    ("deep_object.jsonl", ["line 1", "nested more than 32"]),
    ("huge_number.jsonl", ["line 1", "5000 characters", "at most 64"]),
    ("huge_float.jsonl", ["line 1", "at most 64"]),
    ("nan.jsonl", ["line 1", "NaN is not a JSON number"]),
    ("surrogate.jsonl", ["line 1", "not text"]),
    ("huge_field.csv", ["not valid CSV", "field larger than field limit"]),
    ("huge_number.csv", ["line 2", "at most 64"]),
    ("bad_lora.csv", ["line 2", "not valid JSON"]),
    ("seed_2_64.jsonl", ["seed", "18446744073709551615"]),
    ("long_prompt.txt", ["prompt", "10000"]),
    ("bad_model.jsonl", ["model", "'..' segment"]),
    ("latin1.txt", ["line 1", "not UTF-8", "0xe9", "save the file as UTF-8"]),
    ("binary.txt", ["not UTF-8"]),
    ("nul.txt", ["line 2", "NUL byte"]),
    ("utf16.jsonl", ["not UTF-8"]),
    ("fifo.txt", ["input", "not a regular file"]),
]


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry_run"])
@pytest.mark.parametrize(("name", "words"), BATCH_CASES, ids=[c[0] for c in BATCH_CASES])
def test_bad_batch_files(
    emulator: EmulatorServer, tmp_path: Path, name: str, words: list[str], dry_run: bool
) -> None:
    path = _files(tmp_path)[name]
    args = ["batch", str(path), *(["--dry-run"] if dry_run else [])]
    outcome = invoke(emulator, args, cli_env(emulator, tmp_path / "home"))
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, *words), outcome.describe()


GENERATE_CASES: list[tuple[list[str], list[str]]] = [
    (["--model", "fal-ai/../../admin"], ["model", "'..' segment"]),
    (["--model", "fal-ai/./flux"], ["model", "'.' segment"]),
    (["--model", "fal-ai/%2e%2e/flux"], ["model", "'%2e%2e'"]),
    (["--model", "fal-ai/%2Fflux/dev"], ["model", "'%2Fflux'"]),
    (["--model", "fal-ai//dev"], ["model", "empty segment"]),
    (["--model", "fal-ai/flux dev"], ["model", "'flux dev'"]),
    (["--model", "fal-ai/flux?x=1"], ["model"]),
    (["--model", "fal-ai/" + "a" * 300], ["model", "at most 256"]),
    (["--seed", str(2**64)], ["seed", "18446744073709551615"]),
    (["--seed", "-1"], ["seed"]),
    (["--lora", "a" * 3000], ["loras.0", "not an http(s) URL"]),  # ENAMETOOLONG, not a crash
    (["--lora", "x/" * 3000 + "w.safetensors"], ["loras.0"]),
    (["--model", "someone/their-app", "--seed", str(2**64)], ["seed", "18446744073709551615"]),
    (["--model", "someone/their-app", "--guidance", "inf"], ["guidance_scale", "finite"]),
    (["--model", "someone/their-app", "--guidance", "9" * 400], ["guidance_scale", "finite"]),
    (["--seed", HUGE], ["--seed"]),
    (["--steps", HUGE], ["--steps"]),
    (["--timeout", "-1"], ["timeout", "seconds > 0"]),
    (["--timeout", "0"], ["timeout"]),
    (["--timeout", "nan"], ["timeout"]),
    (["--guidance", "nan"], ["guidance_scale"]),
    (["--guidance", "inf"], ["guidance_scale"]),
]


@pytest.mark.parametrize(
    ("extra", "words"), GENERATE_CASES, ids=[str(c[0])[:40] for c in GENERATE_CASES]
)
def test_bad_generate_options(
    emulator: EmulatorServer, tmp_path: Path, extra: list[str], words: list[str]
) -> None:
    outcome = invoke(emulator, ["generate", "a cat", *extra], cli_env(emulator, tmp_path / "h"))
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, *words), outcome.describe()


def test_a_ten_megabyte_prompt_is_not_sent(emulator: EmulatorServer, tmp_path: Path) -> None:
    outcome = invoke(emulator, ["generate", "a" * 10_000_000], cli_env(emulator, tmp_path / "h"))
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, "prompt", "at most 10000 characters")
    assert_well_behaved(outcome)


def _out_targets(tmp: Path) -> dict[str, Path]:
    a_file = tmp / "a-file.jpg"
    a_file.write_bytes(b"x")
    loop = tmp / "loop"
    loop.symlink_to(loop)
    return {
        "file": a_file,
        "under_a_file": a_file / "images",
        "link_loop": loop,
        "proc": Path("/proc/falkit-out"),
        "sys": Path("/sys/falkit-out/images"),
        "dev_null": Path("/dev/null"),
        "long_name": tmp / ("a" * 3000),
    }


@pytest.mark.parametrize("command", ["generate", "batch"])
@pytest.mark.parametrize(
    "target", ["file", "under_a_file", "link_loop", "proc", "sys", "dev_null", "long_name"]
)
def test_out_that_cannot_be_written_fails_before_submit(
    emulator: EmulatorServer, tmp_path: Path, command: str, target: str
) -> None:
    out = _out_targets(tmp_path)[target]
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    first = "a cat" if command == "generate" else str(prompts)
    outcome = invoke(
        emulator, [command, first, "--out", str(out)], cli_env(emulator, tmp_path / "h")
    )
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, "out:"), outcome.describe()


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to: mode 0555 stops a user, and root (which writes
    through permission bits) is stopped by sysfs, read-only for everyone."""
    if os.geteuid() == 0:
        return Path("/sys")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    return locked


def test_out_in_a_read_only_folder(emulator: EmulatorServer, tmp_path: Path) -> None:
    locked = _read_only_folder(tmp_path)
    outcome = invoke(
        emulator, ["generate", "a cat", "--out", str(locked / "x")], cli_env(emulator, tmp_path)
    )
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, "out:", "ermission denied")  # "Permission denied" from the OS


def test_out_that_will_be_created_still_works(emulator: EmulatorServer, tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder"
    outcome = invoke(
        emulator, ["generate", "a cat", "--out", str(out)], cli_env(emulator, tmp_path)
    )
    assert outcome.code == 0, outcome.describe()
    assert len(list(out.iterdir())) == 1


LIMIT_CASES = [
    ["jobs", "list", "--limit", "99999999999999999999"],
    ["jobs", "list", "--limit", "10001"],
    ["jobs", "list", "--limit", "0"],
    ["jobs", "list", "--limit", HUGE],
    ["batch", "list", "--limit", "99999999999999999999"],
    ["batch", "list", "--limit", "-5"],
    ["mcp", "--wait-seconds", "nan"],
    ["mcp", "--wait-seconds", "-1"],
    ["mcp", "--wait-seconds", "inf"],
    ["emulator", "--latency", "nan"],
    ["emulator", "--training-seconds", "inf"],
]


@pytest.mark.parametrize("args", LIMIT_CASES, ids=[" ".join(a)[:40] for a in LIMIT_CASES])
def test_numbers_out_of_range_are_usage_errors(
    emulator: EmulatorServer, tmp_path: Path, args: list[str]
) -> None:
    outcome = invoke(emulator, args, cli_env(emulator, tmp_path))
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()


def test_list_limits_in_range_work(emulator: EmulatorServer, tmp_path: Path) -> None:
    for args in (["jobs", "list", "--limit", "10000"], ["batch", "list", "--limit", "1"]):
        assert invoke(emulator, args, cli_env(emulator, tmp_path)).code == 0


ENV_CASES = [
    ({"FALKIT_QUEUE_URL": "notaurl"}, ["FALKIT_QUEUE_URL", "http"]),
    ({"FALKIT_QUEUE_URL": "ftp://queue.fal.run"}, ["FALKIT_QUEUE_URL"]),
    ({"FALKIT_RUN_URL": "https://fal.run?x=1"}, ["FALKIT_RUN_URL", "query"]),
    ({"FALKIT_CDN_URL": "http://host:99999"}, ["FALKIT_CDN_URL", "Port"]),
    ({"FALKIT_REST_URL": "http://exa mple.com"}, ["FALKIT_REST_URL", "spaces"]),
    ({"FALKIT_API_URL": "//no-scheme"}, ["FALKIT_API_URL"]),
    ({"FALKIT_EMULATOR": "maybe"}, ["FALKIT_EMULATOR"]),
    ({"FALKIT_EMULATOR_LATENCY": "abc"}, ["FALKIT_EMULATOR_LATENCY", "seconds"]),
    ({"FALKIT_EMULATOR_LATENCY": "nan"}, ["FALKIT_EMULATOR_LATENCY"]),
    ({"FALKIT_EMULATOR_LATENCY": "-3"}, ["FALKIT_EMULATOR_LATENCY"]),
    ({"FALKIT_EMULATOR_LATENCY": "1e309"}, ["FALKIT_EMULATOR_LATENCY"]),
]


@pytest.mark.parametrize(("env", "words"), ENV_CASES, ids=[str(c[0])[:40] for c in ENV_CASES])
def test_bad_settings_name_their_variable(
    emulator: EmulatorServer, tmp_path: Path, env: dict[str, str], words: list[str]
) -> None:
    args = ["generate", "a cat"]
    if "FALKIT_EMULATOR_LATENCY" in env:
        args.append("--emulator")
    outcome = invoke(emulator, args, cli_env(emulator, tmp_path, **env))
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, *words), outcome.describe()


def test_a_bad_setting_is_refused_by_every_command(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    env = cli_env(emulator, tmp_path, FALKIT_QUEUE_URL="queue.fal.run")
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    for args in (["batch", str(prompts)], ["jobs", "resume"], ["lora", "train", "https://x/y.zip"]):
        outcome = invoke(emulator, args, env)
        assert outcome.code == 2, outcome.describe()
        assert field_named(outcome, "FALKIT_QUEUE_URL"), outcome.describe()


def _special(tmp: Path) -> Callable[[str], Path]:
    folder = make_folder(tmp / "photos", 4)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "s.png"))
    sock.close()
    (tmp / "loop.zip").symlink_to(tmp / "loop.zip")
    return {"folder": folder, "loop_source": tmp / "loop.zip", "dev_zero": Path("/dev/zero")}.get  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("folder", ["pipe.jpg (a FIFO", "zero.png (a character device", "loop.jpg (a symbolic"]),
        ("loop_source", ["loop.zip", "symbolic link loop"]),
        ("dev_zero", ["/dev/zero", "character device"]),
    ],
)
def test_lora_train_refuses_special_files(
    emulator: EmulatorServer, tmp_path: Path, source: str, words: list[str]
) -> None:
    path = _special(tmp_path)(source)
    args = ["lora", "train", str(path), "--trigger-word", "TOK"]
    outcome = invoke(emulator, args, cli_env(emulator, tmp_path / "h"))
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, "source", *words), outcome.describe()


REAL_PROCESS_CASES = [
    (["batch", "{deep}"], {}),
    (["batch", "{latin1}", "--dry-run"], {}),
    (["generate", "a cat", "--model", "fal-ai/../../admin"], {}),
    (["jobs", "list", "--limit", "99999999999999999999"], {}),
    (["generate", "a cat", "--emulator"], {"FALKIT_EMULATOR_LATENCY": "abc"}),
    (["generate", "a cat"], {"FALKIT_QUEUE_URL": "queue.fal.run"}),
]


@pytest.mark.parametrize(
    ("args", "env"), REAL_PROCESS_CASES, ids=[" ".join(c[0])[:30] for c in REAL_PROCESS_CASES]
)
def test_in_a_real_process(
    emulator: EmulatorServer, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """`python -m falkit` as a user runs it: exit 2, one line, no traceback, nothing sent."""
    files = _files(tmp_path)
    argv = [a.format(deep=files["deep.jsonl"], latin1=files["latin1.txt"]) for a in args]
    before = emulator.stats.snapshot()["requests"]
    done = falkit(*argv, env=cli_env(emulator, tmp_path / "h", **env))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] or (
        "Invalid value" in done.stderr
    )
    assert emulator.stats.snapshot()["requests"] == before


def test_batch_resume_checks_its_folder_first(emulator: EmulatorServer, tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    env = cli_env(emulator, tmp_path / "h")
    first = invoke(emulator, ["batch", str(prompts), "--json"], env)
    assert first.code == 0, first.describe()
    batch_id = json.loads(first.stdout)["batch_id"]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    outcome = invoke(emulator, ["batch", "resume", batch_id, "--out", str(a_file)], env)
    assert_well_behaved(outcome)
    assert outcome.code == 2, outcome.describe()
    assert field_named(outcome, "out:", "not a folder"), outcome.describe()
