"""`falkit keys` (a 0600 key file read after the environment and .env, shown masked) and
`falkit doctor` (one line per check, exit 1 with the fix when one fails)."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from falkit.config import load_settings
from falkit.keyfile import key_path, write_key
from tests.cli.helpers import cli
from tests.integration.helpers import falkit

KEY = "f00dcafe-1234-5678-9abc-def012345678:0123456789abcdef0123456789abwxyz"
MASKED = "key_…wxyz"


def test_keys_set_writes_a_0600_file_and_shows_it_masked(isolated_env: Path) -> None:
    result = cli("keys", "set", input=KEY + "\n")
    assert result.exit_code == 0, result.output
    path = key_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"fal": KEY}
    assert not list(path.parent.glob(".*.part"))  # written atomically, nothing left over
    shown = cli("keys", "show")
    assert shown.exit_code == 0
    assert shown.stdout == f"{MASKED}  from key file ({path})\n"
    for result_ in (result, shown, cli("keys", "show", "--json"), cli("keys", "path")):
        assert KEY not in result_.output
        assert KEY[-12:] not in result_.output
    assert cli("keys", "path").stdout.strip() == str(path)
    assert load_settings().key == KEY


def test_precedence_environment_then_dotenv_then_key_file(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_key("from-the-key-file-1111")
    assert load_settings().key == "from-the-key-file-1111"
    (tmp_path / ".env").write_text("FAL_KEY=from-the-dotenv-2222\n")
    assert load_settings().key == "from-the-dotenv-2222"
    assert "from .env (FAL_KEY in" in cli("keys", "show").stdout
    monkeypatch.setenv("FAL_API_KEY", "from-the-environment-3333")
    assert load_settings().key == "from-the-environment-3333"
    assert cli("keys", "show").stdout == "key_…3333  from environment (FAL_API_KEY)\n"
    note = cli("keys", "set", input="another-key-file-key-4444\n")
    assert "FAL_API_KEY" in note.stderr  # told which key wins
    assert load_settings().key == "from-the-environment-3333"


def test_key_id_and_secret_in_the_environment_beat_the_key_file(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_key("from-the-key-file-1111")
    monkeypatch.setenv("FAL_KEY_ID", "id-5555")
    monkeypatch.setenv("FAL_KEY_SECRET", "secret-6666")
    assert load_settings().key == "id-5555:secret-6666"
    assert "FAL_KEY_ID + FAL_KEY_SECRET" in cli("keys", "show").stdout


def test_no_key_anywhere_says_how_to_set_one(isolated_env: Path) -> None:
    result = cli("keys", "show")
    assert result.exit_code == 3
    assert "falkit keys set" in result.stderr
    assert cli("keys", "set", input="\n").exit_code == 2
    assert cli("keys", "set", input="two words\n").exit_code == 2
    assert not key_path().exists()


def test_a_broken_key_file_is_named(isolated_env: Path) -> None:
    key_path().parent.mkdir(parents=True)
    key_path().write_text("{not json")
    result = cli("keys", "show")
    assert result.exit_code == 2
    assert str(key_path()) in result.stderr
    assert "falkit keys set" in result.stderr


def test_the_stored_key_is_used_for_jobs_and_never_written_elsewhere(
    emu: Any, env: dict[str, str], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.engine.config.api_keys = {KEY}
    monkeypatch.delenv("FAL_API_KEY")
    assert cli("keys", "set", input=KEY + "\n").exit_code == 0
    result = cli("generate", "a fox", "--json")
    assert result.exit_code == 0, result.output
    doctor = cli("doctor")
    assert doctor.exit_code == 0, doctor.output
    assert MASKED in doctor.stdout
    for output in (result.output, doctor.output):
        assert KEY not in output
    for path in isolated_env.rglob("*"):
        if path.is_file() and path != key_path():
            assert KEY.encode() not in path.read_bytes(), path


def test_doctor_all_good_against_the_emulator(emu: Any, env: dict[str, str]) -> None:
    out = falkit("doctor", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    names = [line.split()[1] for line in lines[:-1]]
    assert names[:3] == ["key", "home", "database"]
    assert {"queue_url", "run_url", "rest_url", "cdn_url"} <= set(names)
    assert all(line.startswith("ok") for line in lines[:-1])
    assert lines[-1] == "all good"
    assert "key_…cret from environment (FAL_API_KEY)" in out.stdout
    assert "key accepted" in out.stdout


def test_doctor_reports_the_database_schema(emu: Any, env: dict[str, str]) -> None:
    assert cli("generate", "a fox").exit_code == 0  # creates the library
    data = json.loads(cli("doctor", "--json").stdout)
    database = next(c for c in data["checks"] if c["name"] == "database")
    assert "schema 000" in database["detail"]
    assert "current" in database["detail"]


def test_doctor_reports_a_dead_url_with_the_fix(emu: Any, env: dict[str, str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    dead = {**env, "FALKIT_RUN_URL": f"http://127.0.0.1:{port}/run"}
    out = falkit("doctor", "--timeout", "5", env=dead)
    assert out.returncode == 1
    (line,) = [line for line in out.stdout.splitlines() if " run_url " in line]
    assert line.startswith("FAIL")
    assert "fix: check FALKIT_RUN_URL" in line
    assert out.stdout.splitlines()[-1] == "1 problem"


def test_doctor_reports_a_refused_key(emu: Any, env: dict[str, str]) -> None:
    emu.engine.config.api_keys = {"some-other-key"}
    data = json.loads(cli("doctor", "--json").stdout)
    assert data["ok"] is False
    check = next(c for c in data["checks"] if c["name"] == "key accepted")
    assert check["level"] == "fail"
    assert "falkit keys set" in check["fix"]


def test_doctor_without_a_key_fails_with_the_fix(isolated_env: Path) -> None:
    result = cli("doctor", "--json", "--timeout", "0.5")
    assert result.exit_code == 1
    key = json.loads(result.stdout)["checks"][0]
    assert (key["name"], key["level"]) == ("key", "fail")
    assert "falkit keys set" in key["fix"]
